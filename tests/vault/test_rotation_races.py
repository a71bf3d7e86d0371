"""Master-key rotation racing credential rotations and HMAC key rolls (issue 13 item 2).

A re-wrap reads a record, wraps its data key under the new master key and writes it back. If a
credential rotation or a key roll (a new ciphertext under a new data key) commits in between, an
unconditional write pairs the new ciphertext with the old data key and the record is lost. Here a
second core (as the CLI would be) rotates the master key again and again while the server's core
rotates credentials and rolls keys, for a bounded time; then every record must decrypt to what was
last stored.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
import uuid
from typing import Any

from sqlalchemy import select
from support.services import new_user

RACE_SECONDS = 3.0
ACCOUNTS = 12
HMAC_KEYS = 8
WRITERS = 2


def creds() -> dict[str, str]:
    tag = uuid.uuid4().hex
    return {"api_key": f"key-{tag}", "secret": f"secret-{tag}"}


def test_rotation_racing_credential_rotations_and_key_rolls_loses_nothing(make_core: Any) -> None:
    from strongroom.models import ApiKey, ExchangeAccount

    server = make_core()
    cli = make_core()  # its own key provider, as `strongroom master-key rotate` in another process
    principal = new_user(server)
    stored: dict[int, dict[str, str]] = {}
    for i in range(ACCOUNTS):
        c = creds()
        stored[asyncio.run(server.accounts.connect(principal, "binance", c, name=f"a{i}")).id] = c
    secrets: dict[str, str] = {}
    for i in range(HMAC_KEYS):
        key, secret = server.api_keys.create(principal, name=f"h{i}", kind="hmac")
        secrets[key.key_id] = secret

    deadline = time.monotonic() + RACE_SECONDS
    errors: list[str] = []
    counts = {"rotations": 0, "credential_rotations": 0, "rolls": 0}
    lock = threading.Lock()

    def rotator() -> None:
        try:
            while time.monotonic() < deadline:
                cli.key_rotation.rotate(batch=3)
                with lock:
                    counts["rotations"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append("".join(traceback.format_exception(exc)))

    def writer(n: int) -> None:
        # each writer owns a share of the records, so "last stored" is well defined per record
        account_ids = sorted(stored)[n::WRITERS]
        key_ids = sorted(secrets)[n::WRITERS]
        i = 0
        try:
            while time.monotonic() < deadline:
                account_id = account_ids[i % len(account_ids)]
                c = creds()
                asyncio.run(server.accounts.rotate(principal, account_id, c))
                stored[account_id] = c
                key_id = key_ids[i % len(key_ids)]
                _, secret = server.api_keys.roll(principal, key_id, 0)
                secrets[key_id] = secret
                with lock:
                    counts["credential_rotations"] += 1
                    counts["rolls"] += 1
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append("".join(traceback.format_exception(exc)))

    threads = [threading.Thread(target=rotator)] + [threading.Thread(target=writer, args=(n,))
                                                    for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RACE_SECONDS + 60)
    assert not any(t.is_alive() for t in threads), "a racing thread did not finish"
    assert not errors, errors
    assert counts["rotations"] >= 2 and counts["credential_rotations"] >= 2, counts
    print(f"raced: {counts}")

    cli.key_rotation.rewrap()  # finish records sealed under a version the server had not seen yet
    reader = make_core()
    with reader.db.session() as session:
        for account in session.scalars(select(ExchangeAccount)):
            assert reader.account_store.credentials_of(account) == stored[account.id], f"account {account.id} lost"
        for key in session.scalars(select(ApiKey).where(ApiKey.kind == "hmac")):
            record = reader.api_keys.load_record(key.key_id)
            assert record is not None and record.hmac_secrets[0][0] == secrets[key.key_id], f"key {key.key_id} lost"
    assert reader.key_rotation.pending() == 0
