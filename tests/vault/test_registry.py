"""The vault's registry of sealed tables (issue 17, item 1), without HTTP, on SQLite and PostgreSQL.

Every table with a sealed column is registered once; seal, open, re-wrap, usage, status and retire
read only the registry. The data-loss bug this closes: a stored credential sealed under version 1
while version 2 was current was not counted, so ``retire 1`` succeeded and the credential could
never be opened again.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import LargeBinary, MetaData, select
from support.services import new_user

from strongroom.cli.context import OPERATOR
from strongroom.db import Base
from strongroom.errors import Conflict
from strongroom.models import ApiKey, ExchangeAccount, ExchangeCredential
from strongroom.vault.masterkeys import MasterKeyService
from strongroom.vault.services import SEALED_TABLES, KeySourceIncomplete

SEALED_WORDS = ("ciphertext", "nonce", "wrapped_dek", "kek_version")


def looks_sealed(column: Any) -> bool:
    """A column that holds (part of) a sealed secret, by type, name or an explicit ``info={"sealed": True}``."""
    return (isinstance(column.type, LargeBinary) or any(word in column.name for word in SEALED_WORDS)
            or bool(column.info.get("sealed")))


def unregistered(metadata: MetaData) -> list[str]:
    """The ``table.column`` names of ``metadata`` that look sealed but no SEALED_TABLES entry covers."""
    registered = {entry.table.name: entry.sealed_columns for entry in SEALED_TABLES}
    return [f"{table.name}.{column.name}" for table in metadata.sorted_tables for column in table.columns
            if looks_sealed(column) and column.name not in registered.get(table.name, frozenset())]


def test_every_sealed_column_of_every_model_is_registered() -> None:
    assert unregistered(Base.metadata) == [], (
        "these columns hold a sealed secret but are not in the vault's SEALED_TABLES: their records would be "
        "neither re-wrapped nor counted when a master key version is retired")
    # every registration names real columns of its table, and the four known tables are all there
    for entry in SEALED_TABLES:
        assert entry.sealed_columns <= set(entry.table.c.keys()), entry.label
        assert set(entry.identity) <= set(entry.table.c.keys()), entry.label
    assert {entry.table.name for entry in SEALED_TABLES} == {"exchange_accounts", "exchange_credentials", "api_keys",
                                                         "webhook_endpoints"}


def test_the_registry_check_sees_an_unregistered_table() -> None:
    """The check above can fail: a model with a sealed column that nobody registered is reported."""
    from sqlalchemy import Column, Integer, Table

    stray = MetaData()
    Table("stray_secrets", stray, Column("id", Integer, primary_key=True), Column("note", Integer),
          Column("secret_ciphertext", LargeBinary), Column("kek_version", Integer))
    assert unregistered(stray) == ["stray_secrets.secret_ciphertext", "stray_secrets.kek_version"]


def masterkeys(core: Any) -> MasterKeyService:
    return MasterKeyService(core.db, core.keys, core.audit, core.key_rotation)


def store_credential(core: Any) -> ExchangeCredential:
    principal = new_user(core)
    credential: ExchangeCredential = asyncio.run(core.credentials.create(
        principal, "binance", {"api_key": f"key-{uuid.uuid4().hex}", "secret": f"secret-{uuid.uuid4().hex}"}))
    return credential


def test_retire_refuses_a_version_that_still_seals_a_stored_credential(make_core: Any) -> None:
    core = make_core()
    credential = store_credential(core)
    assert credential.kek_version == 1
    # another process rotates; this record is still sealed under version 1
    assert core.keys.add_version() == 2
    service = masterkeys(core)
    status = service.status()
    assert status.versions == {1: 1, 2: 0} and status.pending == 1 and status.missing == {}

    with pytest.raises(Conflict, match="1 record is still sealed under version 1"):
        service.retire(OPERATOR, 1)
    assert core.keys.versions() == [1, 2]

    assert service.rewrap(OPERATOR) == 1
    service.retire(OPERATOR, 1)
    with core.db.session() as session:
        row = session.get(ExchangeCredential, credential.id)
        assert row is not None and row.kek_version == 2
        assert core.vault.open_credential(row)["api_key"].startswith("key-")


def test_usage_and_rewrap_cover_every_registered_table(make_core: Any) -> None:
    core = make_core()
    principal = new_user(core)
    asyncio.run(core.accounts.connect(principal, "binance", {"api_key": f"a-{uuid.uuid4().hex}",
                                                             "secret": uuid.uuid4().hex}, name="main"))
    core.api_keys.create(principal, name="signer", kind="hmac")
    store_credential(core)
    assert core.vault.usage() == {1: 3}
    core.keys.add_version()
    assert core.vault.pending() == 3
    assert core.vault.rewrap(batch=1) == 3
    assert core.vault.usage() == {2: 3} and core.vault.pending() == 0
    with core.db.session() as session:
        for model in (ExchangeAccount, ExchangeCredential, ApiKey):
            assert set(session.scalars(select(model.kek_version))) == {2}, model.__name__


def test_a_key_source_older_than_the_data_is_detected(make_core: Any, fresh: Any) -> None:
    core = make_core()
    store_credential(core)
    old_key_file = (fresh.data_dir / "master.key").read_bytes()  # a backup taken before the rotation
    masterkeys(core).rotate(OPERATOR)
    store_credential(core)
    core.close()
    (fresh.data_dir / "master.key").write_bytes(old_key_file)  # restored: it lacks version 2

    stale = make_core()
    status = masterkeys(stale).status()
    assert status.missing == {2: 2} and status.pending == 0
    with pytest.raises(KeySourceIncomplete, match=r"lacks version 2 \(2 records\)"):
        stale.vault.check_key_source()
    # a rotation now would number its key "2" too and make those records unreadable for good
    with pytest.raises(Conflict, match="version 2"):
        masterkeys(stale).rotate(OPERATOR)
    assert stale.keys.versions() == [1]
