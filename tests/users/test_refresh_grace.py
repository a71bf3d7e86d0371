"""A refresh token used again within a grace period (a browser's pages renewing at once: the console) gets a pair of
its own in the same family, in the database, so it holds in any process; outside the grace, or where no grace is
given (the API), a reuse ends the family. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from support.services import new_user

from strongroom.db import utcnow
from strongroom.errors import Unauthenticated
from strongroom.models import AuthSession


def test_a_reuse_within_the_grace_gets_its_own_pair_in_the_family(make_core):
    core = make_core()
    pair = core.sessions.issue(new_user(core))
    first = core.sessions.refresh(pair.refresh_token, "203.0.113.1", reuse_grace_seconds=30)
    # another process (a second core: no memory shared) brings the same spent token a moment later
    other = make_core()
    second = other.sessions.refresh(pair.refresh_token, "203.0.113.1", reuse_grace_seconds=30)
    assert second.access_token != first.access_token and second.refresh_token != first.refresh_token
    for renewed in (first, second):  # both pairs live, one family
        assert core.sessions.resolve(renewed.access_token) is not None
    with core.db.session() as session:
        rows = session.query(AuthSession).filter(AuthSession.family_id.in_(
            session.query(AuthSession.family_id).filter(
                AuthSession.access_hash == core.hasher.token(first.access_token)))).all()
        assert len(rows) == 3 and all(r.revoked_at is None for r in rows)
    # each new refresh token rotates as usual
    core.sessions.refresh(second.refresh_token, None, reuse_grace_seconds=30)


def test_a_reuse_after_the_grace_or_without_one_ends_the_family(make_core):
    core = make_core()
    principal = new_user(core)
    for grace in (0.0, 30.0):
        pair = core.sessions.issue(principal)
        renewed = core.sessions.refresh(pair.refresh_token, None, reuse_grace_seconds=grace)
        if grace:  # redeemed longer ago than the grace
            with core.db.session() as session:
                session.execute(update(AuthSession)
                                .where(AuthSession.refresh_hash == core.hasher.token(pair.refresh_token))
                                .values(rotated_at=utcnow() - timedelta(seconds=grace + 1)))
        with pytest.raises(Unauthenticated):
            core.sessions.refresh(pair.refresh_token, None, reuse_grace_seconds=grace)
        assert core.sessions.resolve(renewed.access_token) is None  # the family is over
        with pytest.raises(Unauthenticated):
            core.sessions.refresh(renewed.refresh_token, None, reuse_grace_seconds=grace)


def test_a_signed_out_session_gets_no_grace(make_core):
    core = make_core()
    principal = new_user(core)
    pair = core.sessions.issue(principal)
    renewed = core.sessions.refresh(pair.refresh_token, None, reuse_grace_seconds=30)
    core.sessions.logout(principal, renewed.access_token)
    with pytest.raises(Unauthenticated):
        core.sessions.refresh(pair.refresh_token, None, reuse_grace_seconds=30)
