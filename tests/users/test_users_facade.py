"""The users capability's async façades (strongroom/users/interfaces.py: Users and Sessions): every call's
database work runs in a worker thread, never on the event loop, and keeps the contract (admins manage users;
a session ends at logout). In process, on a fresh SQLite and PostgreSQL database each."""

from __future__ import annotations

import asyncio

import pytest
from support.services import new_user
from support.threads import SessionThreads

from strongroom.enums import AuthMethod
from strongroom.errors import Conflict, Forbidden, NotFound, SignInRefused, ValidationFailed
from strongroom.principal import Principal
from strongroom.users import Sessions, Users


def test_users_and_sessions_run_off_the_event_loop_and_keep_the_contract(make_core, monkeypatch):
    core = make_core()
    admin_user = core.users.create("root", "password-123", is_admin=True)
    admin = Principal(user_id=admin_user.id, username="root", is_admin=True, client_ip="127.0.0.1")
    someone = new_user(core)
    users: Users = core.user_service
    sessions: Sessions = core.session_service
    threads = SessionThreads(core, monkeypatch)

    async def scenario() -> None:
        mark = threads.mark()
        bob = await users.create(admin, "bob", "password-456", email="bob@example.com", usage_level="premier")
        threads.assert_off_loop(mark, "create")
        assert bob.username == "bob" and bob.usage_level == "premier"
        with pytest.raises(Conflict):
            await users.create(admin, "bob", "password-456")
        with pytest.raises(ValidationFailed):
            await users.create(admin, "carol", "short")
        with pytest.raises(Forbidden):  # only admins manage users
            await users.create(someone, "dave", "password-789")

        mark = threads.mark()
        assert (await users.get(admin, bob.id)).username == "bob"
        assert (await users.get_by_public_id(admin, bob.public_id)).id == bob.id
        assert (await users.by_username(admin, "bob")).id == bob.id
        assert await users.public_ids([bob.id, 10**9]) == {bob.id: bob.public_id}
        assert await users.usernames(admin, [bob.id, admin.user_id]) == {bob.id: "bob", admin.user_id: "root"}
        assert [u.username for u in (await users.list(admin, limit=50)).items][:1] == ["root"]
        threads.assert_off_loop(mark, "get, get_by_public_id, by_username, public_ids, usernames, list")
        mark = threads.mark()
        assert await users.public_ids([]) == {}  # nothing to look up: no database work at all
        assert threads.mark() == mark
        with pytest.raises(NotFound):  # a user reads only itself
            await users.get(someone, bob.id)
        with pytest.raises(Forbidden):
            await users.list(someone)

        mark = threads.mark()
        assert (await users.set_usage_level(admin, bob.id, "basic")).usage_level == "basic"
        await users.set_password(admin, bob.id, "password-new")
        threads.assert_off_loop(mark, "set_usage_level, set_password")

        principal = await users.sign_in("bob", "password-new", "127.0.0.1", scheme=AuthMethod.PASSWORD_GRANT)
        assert principal.user_id == bob.id
        with pytest.raises(SignInRefused):
            await users.sign_in("bob", "password-456", "127.0.0.1", scheme=AuthMethod.PASSWORD_GRANT)

        mark = threads.mark()
        pair = await sessions.issue(principal)
        snap = await sessions.resolve(pair.access_token)
        assert snap is not None and snap.id == bob.id
        await sessions.logout(principal, pair.access_token)
        threads.assert_off_loop(mark, "issue, resolve, logout")
        assert await sessions.resolve(pair.access_token) is None  # the session is over
        assert await sessions.resolve("not-a-token") is None
        await sessions.logout(principal, None)  # nothing to end: not an error

        mark = threads.mark()
        await users.delete(admin, bob.id)
        threads.assert_off_loop(mark, "delete")
        with pytest.raises(NotFound):
            await users.get(admin, bob.id)
        with pytest.raises(Forbidden):  # not oneself
            await users.delete(admin, admin.user_id)

    asyncio.run(scenario())
