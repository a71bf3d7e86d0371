"""The access-token cache of SessionService (issue 13 item 5, "never clear a whole cache on a miss"):
an unknown refresh token leaves it alone; reuse of a refresh token drops only its own family's tokens.

The cache is given a long TTL here so that nothing leaves it by age during a test (the assertions are
about what the service removes, not about time).
"""

from __future__ import annotations

import pytest
from cachetools import TTLCache
from support.services import new_user

from strongroom.crypto import tokens
from strongroom.errors import Unauthenticated


def test_misses_and_reuse_never_clear_other_cached_tokens(make_core):
    core = make_core()
    sessions = core.sessions
    sessions._cache = TTLCache(maxsize=1000, ttl=3600)  # nothing expires by age during the test
    alice, bob = new_user(core), new_user(core)
    a = sessions.issue(alice)
    b = sessions.issue(bob)
    assert sessions.resolve(a.access_token).id == alice.user_id
    assert sessions.resolve(b.access_token).id == bob.user_id
    assert sessions.resolve_cached(b.access_token).id == bob.user_id

    # an unknown (well-formed) refresh token is refused and removes nothing from the cache
    with pytest.raises(Unauthenticated):
        sessions.refresh(tokens.new_token(sessions.refresh_prefix), "127.0.0.1")
    assert sessions.resolve_cached(a.access_token).id == alice.user_id
    assert sessions.resolve_cached(b.access_token).id == bob.user_id

    # alice's refresh token used twice: her family is revoked and its tokens leave the cache, bob's stay
    rotated = sessions.refresh(a.refresh_token, "127.0.0.1")
    assert sessions.resolve(rotated.access_token).id == alice.user_id  # cached now too
    with pytest.raises(Unauthenticated):
        sessions.refresh(a.refresh_token, "127.0.0.1")
    assert sessions.resolve_cached(a.access_token) is False
    assert sessions.resolve_cached(rotated.access_token) is False
    assert sessions.resolve(rotated.access_token) is None  # revoked in the database
    assert sessions.resolve_cached(b.access_token).id == bob.user_id


def test_the_cache_is_bounded_by_size(make_core):
    sessions = make_core().sessions
    assert isinstance(sessions._cache, TTLCache) and 0 < sessions._cache.maxsize <= 1_000_000


@pytest.mark.parametrize("after", [0, 1])
def test_a_token_logged_out_while_it_is_resolved_is_not_cached_alive(make_core, after):
    """A logout that commits while a resolve of its token is reading (after the resolve's statement ``after``):
    the resolve may answer with what it read (the request came before the logout), but it must not leave the
    token cached as alive afterwards (it did: the logout dropped it, then the resolve put it back)."""
    from support.interleave import commit_after

    core = make_core()
    sessions = core.sessions
    sessions._cache = TTLCache(maxsize=1000, ttl=3600)  # nothing leaves the cache by age during the test
    alice = new_user(core)
    pair = sessions.issue(alice)
    with commit_after(core.db.engine, after, lambda: sessions.logout(alice, pair.access_token)):
        sessions.resolve(pair.access_token)
    assert sessions.resolve_cached(pair.access_token) in (False, None)
    assert sessions.resolve(pair.access_token) is None
