"""State changes of exchange accounts racing other changes (issue 13 item 7), in process on SQLite and
PostgreSQL. A validator that waits for the test holds a revalidation between its read and its write,
so the interleavings are forced, not hoped for."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import pytest
from support.services import Outcome, new_user

from strongroom.accounts import AccountQuery
from strongroom.errors import Conflict, InvalidCredentials, NotFound


class HeldGateway:
    """Answers like the exchange would; for the credentials in ``held`` it first waits until released."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.reached = threading.Event()
        self.release = threading.Event()
        self.invalid: set[str] = set()

    async def validate(self, info: Any, credentials: dict[str, str]) -> Outcome:
        if credentials["api_key"] in self.held:
            self.reached.set()
            assert await anyio.to_thread.run_sync(self.release.wait, 30), "the test never released the validation"
        if credentials["api_key"] in self.invalid:
            raise InvalidCredentials("the exchange rejected the credentials")
        return Outcome()

    async def aclose(self) -> None:
        pass


def creds() -> dict[str, str]:
    tag = uuid.uuid4().hex
    return {"api_key": f"key-{tag}", "secret": f"secret-{tag}"}


def held_revalidation(core: Any, principal: Any, account_id: int, validator: HeldGateway) -> Any:
    """Start a revalidation in a thread (its own event loop) and return its future once it is inside the gateway."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(asyncio.run, core.accounts.revalidate(principal, account_id))
    assert validator.reached.wait(30), "the revalidation never reached the exchange"
    pool.shutdown(wait=False)
    return future


def test_a_revalidation_racing_a_disconnect_does_not_bring_the_account_back(make_core):
    validator = HeldGateway()
    core = make_core(gateway=validator)
    principal = new_user(core)
    old = creds()
    account = asyncio.run(core.accounts.connect(principal, "binance", old))
    validator.held.add(old["api_key"])
    future = held_revalidation(core, principal, account.id, validator)
    asyncio.run(core.accounts.disconnect(principal, account.id))
    validator.release.set()
    with pytest.raises(Conflict):
        future.result(30)
    gone = asyncio.run(core.accounts.get(principal, account.id))
    assert gone.status == "disconnected" and gone.ciphertext == b"" and gone.wrapped_dek == b""


def test_a_revalidation_of_rotated_out_credentials_does_not_judge_the_new_ones(make_core):
    validator = HeldGateway()
    core = make_core(gateway=validator)
    principal = new_user(core)
    old, new = creds(), creds()
    account = asyncio.run(core.accounts.connect(principal, "binance", old))
    validator.held.add(old["api_key"])
    validator.invalid.add(old["api_key"])  # the exchange has revoked the old key by now
    future = held_revalidation(core, principal, account.id, validator)
    rotated = asyncio.run(core.accounts.rotate(principal, account.id, new))
    assert rotated.status == "active"
    validator.release.set()
    with pytest.raises(Conflict):
        future.result(30)
    after = asyncio.run(core.accounts.get(principal, account.id))
    assert after.status == "active" and after.validation_result == "valid"
    assert core.account_store.credentials_of(after) == new


def test_concurrent_disconnects_on_an_exchange_succeed_once(make_core):
    core = make_core()
    principal = new_user(core)
    account = asyncio.run(core.accounts.connect(principal, "binance", creds()))
    n = 16
    barrier = threading.Barrier(n)

    def one(_: int) -> str:
        barrier.wait(30)
        try:
            asyncio.run(core.accounts.disconnect(principal, AccountQuery(exchange="binance")))
            return "ok"
        except NotFound:
            return "not_found"

    with ThreadPoolExecutor(n) as pool:
        outcomes = sorted(pool.map(one, range(n)))
    assert outcomes == ["not_found"] * (n - 1) + ["ok"]
    assert asyncio.run(core.accounts.get(principal, account.id)).status == "disconnected"
    events = core.audit.list(principal, action="account.disconnect", limit=50).items
    assert [e.target for e in events] == [f"account:{account.id}"]


@pytest.mark.parametrize("by", ["id", "query"])
def test_a_disconnect_names_the_status_the_account_left_when_it_changed_meanwhile(make_core, by):
    """An account disabled between a disconnect's read of it and its write: exchange_account.disconnected says it
    left ``disabled`` (the status it had), not the ``active`` read before (the old UPDATE was conditional only on
    not being disconnected, and the event named the status read)."""
    from sqlalchemy import select
    from support.interleave import commit_after

    from strongroom.enums import EventType
    from strongroom.models import Event

    core = make_core()
    principal = new_user(core)
    account = asyncio.run(core.accounts.connect(principal, "binance", creds()))
    target: Any = account.id if by == "id" else AccountQuery(exchange="binance")
    with commit_after(core.db.engine, 0, lambda: core.account_store.set_enabled(principal, account.id, False)) as seen:
        done = asyncio.run(core.accounts.disconnect(principal, target))
    assert seen[0].lstrip().upper().startswith("SELECT")  # the write landed right after the disconnect's read
    assert done.id == account.id and done.status == "disconnected"
    with core.db.session() as session:
        (event,) = session.scalars(select(Event).where(Event.type == EventType.EXCHANGE_ACCOUNT_DISCONNECTED))
    assert (event.data["from"], event.data["to"]) == ("disabled", "disconnected")
    audit = core.audit.list(principal, action="account.disable", limit=5).items
    assert [e.details["from"] for e in audit] == ["active"]


def test_a_rotation_that_renames_names_the_name_it_replaced_when_renamed_meanwhile(make_core):
    """A rename started right after a rotation with a new name read the account: the audit's renames form one
    chain (each from the name the one before left), whichever lands first. On PostgreSQL the rotation's advisory
    locks do not hold a rename back, so the old rotation, which read the account unclaimed, said it renamed it
    from the name it read while the rename had already replaced it (SQLite's write lock held it back)."""
    from sqlalchemy import event as sa_event

    core = make_core()
    principal = new_user(core)
    account = asyncio.run(core.accounts.connect(principal, "binance", creds(), name="first"))
    renamed: list[Exception | None] = []

    def rename() -> None:
        try:
            core.account_store.rename(principal, account.id, "by-rename")
            renamed.append(None)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            renamed.append(exc)

    worker = threading.Thread(target=rename)
    state = {"locked": False, "started": False}

    def interleave(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if threading.current_thread() is worker or state["started"]:
            return
        if "pg_advisory_xact_lock" in statement or "UPDATE users SET username" in statement:
            state["locked"] = True  # the rotation's store step has begun
        elif state["locked"] and statement.lstrip().upper().startswith("SELECT") and "exchange_accounts" in statement:
            state["started"] = True
            worker.start()
            worker.join(1.5)  # renamed and committed, or waiting for the rotation's lock

    sa_event.listen(core.db.engine, "after_cursor_execute", interleave)
    try:
        asyncio.run(core.accounts.rotate(principal, account.id, creds(), name="by-rotate"))
    finally:
        sa_event.remove(core.db.engine, "after_cursor_execute", interleave)
    worker.join(30)
    assert state["started"] and not worker.is_alive() and renamed == [None]
    audit = core.audit.list(principal, limit=50).items
    moves = [(e.details["from"], e.details["to"]) for e in sorted(audit, key=lambda e: e.id)
             if e.action in ("account.rename", "account.rotate") and "from" in e.details]
    assert len(moves) == 2, moves
    assert moves[0][0] == "first" and moves[1][0] == moves[0][1], moves
    assert asyncio.run(core.accounts.get(principal, account.id)).name == moves[1][1]
