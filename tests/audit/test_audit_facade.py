"""The audit capability's async façade (strongroom/audit/interfaces.py): reading the log and recording a refusal
run in a worker thread, never on the event loop; a caller reads only what it may. In process, on a fresh SQLite
and PostgreSQL database each."""

from __future__ import annotations

import asyncio

from support.services import new_user
from support.threads import SessionThreads

from strongroom.audit import Audit
from strongroom.principal import Principal


def test_the_audit_log_runs_off_the_event_loop_and_shows_each_caller_its_own(make_core, monkeypatch):
    core = make_core()
    alice, bob = new_user(core), new_user(core)
    admin_user = core.users.create("root", "password-123", is_admin=True)
    admin = Principal(user_id=admin_user.id, username="root", is_admin=True)
    audit: Audit = core.audit_log
    threads = SessionThreads(core, monkeypatch)

    async def scenario() -> None:
        mark = threads.mark()
        await audit.record_now("auth.authorize", "refused", principal=alice, target="api_key:x",
                               details={"reason": "forbidden"})
        await audit.record_now("auth.authorize", "refused", principal=bob)
        threads.assert_off_loop(mark, "record_now")

        mark = threads.mark()
        mine = await audit.list(alice, action="auth.authorize")
        threads.assert_off_loop(mark, "list")
        assert [(e.actor_user_id, e.outcome, e.target) for e in mine.items] == [
            (alice.user_id, "refused", "api_key:x")]
        everyone = await audit.list(admin, action="auth.authorize", outcome="refused")
        assert {e.actor_user_id for e in everyone.items} == {alice.user_id, bob.user_id}
        only_bob = await audit.list(admin, action="auth.authorize", user_id=bob.user_id)
        assert [e.actor_user_id for e in only_bob.items] == [bob.user_id]
        newest_first = await audit.list(admin, limit=1)
        assert len(newest_first.items) == 1 and newest_first.next_cursor

    asyncio.run(scenario())


def test_recording_never_raises(make_core, monkeypatch):
    """A database fault while auditing a refusal is logged, not raised (it must not turn a 403 into a 500)."""
    core = make_core()

    def broken(*args, **kwargs):
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(core.db, "session", broken)
    asyncio.run(core.audit_log.record_now("auth.authorize", "refused"))
