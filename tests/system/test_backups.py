"""Issue 21, item 6: ``strongroom backup`` and ``strongroom restore``.

A backup of a live SQLite database taken while rows are being committed restores with every row
committed before it began (and nothing half-written); a restore whose key source lacks a version the
backup uses is refused, naming it, before anything is written; PostgreSQL goes through pg_dump and
pg_restore.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from support import run_cli
from support.services import new_user

pytestmark = pytest.mark.slow


def account_names(url: str) -> set[str]:
    from strongroom.models import ExchangeAccount

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(ExchangeAccount.name)))
    finally:
        engine.dispose()


def test_a_live_sqlite_backup_under_writes_restores_every_committed_row(fresh, make_core, tmp_path: Path) -> None:
    if fresh.backend != "sqlite":
        pytest.skip("the SQLite online backup; PostgreSQL has its own test below")
    import asyncio

    core = make_core()
    principal = new_user(core)
    env = {"STRONGROOM_DATA_DIR": str(fresh.data_dir), "STRONGROOM_DATABASE_URL": fresh.url}
    committed: list[tuple[float, str]] = []  # (when the commit returned, name)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            name = f"row {n}"
            asyncio.run(core.accounts.connect(principal, "binance", {"api_key": f"k{n}-{uuid.uuid4().hex}",
                                                                     "secret": uuid.uuid4().hex}, name=name))
            committed.append((time.monotonic(), name))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(committed) < 20:
            time.sleep(0.05)
        started = time.monotonic()
        made = run_cli("backup", str(tmp_path / "backup"), "--json", env=env, timeout=120)
        while len(committed) < len([c for c in committed if c[0] < started]) + 10:
            time.sleep(0.05)  # writes go on after the backup too
    finally:
        stop.set()
        writer.join(30)
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    assert manifest["database"] == "sqlite" and manifest["key_versions"][0]["version"] == 1
    assert manifest["key_versions"][0]["provider"] == "file"

    before = {name for at, name in committed if at < started}
    everything = {name for _, name in committed}
    restored_url = f"sqlite:///{tmp_path / 'restored.db'}"
    done = run_cli("restore", str(tmp_path / "backup"), "--yes",
                   env={**env, "STRONGROOM_DATABASE_URL": restored_url}, timeout=120)
    assert done.returncode == 0, done.stderr
    restored = account_names(restored_url)
    assert before <= restored, sorted(before - restored)[:5]  # every row committed before the backup began
    assert restored <= everything  # and only committed rows
    assert len(restored) == manifest["key_versions"][0]["records"]
    assert (tmp_path / "restored.db").stat().st_mode & 0o777 == 0o600  # owner-only, like the server's own file
    # the restored database opens with the same key file: every credential decrypts
    from strongroom.models import ExchangeAccount

    other = make_core(database_url=restored_url)
    with other.db.session() as session:
        for account in session.scalars(select(ExchangeAccount)):
            assert other.account_store.credentials_of(account)["secret"]
    assert account_names(fresh.url) >= everything


def test_a_restore_without_a_version_the_backup_uses_is_refused(fresh, make_core, tmp_path: Path) -> None:
    import asyncio

    core = make_core()
    principal = new_user(core)
    asyncio.run(core.accounts.connect(principal, "binance", {"api_key": "k1", "secret": "s1"}, name="a"))
    env = {"STRONGROOM_DATA_DIR": str(fresh.data_dir), "STRONGROOM_DATABASE_URL": fresh.url}
    old_key_file = (fresh.data_dir / "master.key").read_bytes()  # holds version 1 only
    assert run_cli("master-key", "rotate", env=env).returncode == 0
    made = run_cli("backup", str(tmp_path / "backup"), env=env)
    assert made.returncode == 0, made.stderr
    assert "it needs master key versions: 2 (file, 1)" in made.stdout

    stale = tmp_path / "stale" / "master.key"
    stale.parent.mkdir()
    stale.write_bytes(old_key_file)
    if fresh.backend == "sqlite":
        target = tmp_path / "restored.db"
        refused = run_cli("restore", str(tmp_path / "backup"), "--yes",
                          env={**env, "STRONGROOM_MASTER_KEY_FILE": str(stale),
                               "STRONGROOM_DATABASE_URL": f"sqlite:///{target}"})
        assert not target.exists()  # refused before anything was written
    else:
        with create_engine(fresh.url).begin() as conn:
            conn.execute(text("DELETE FROM exchange_accounts"))
        refused = run_cli("restore", str(tmp_path / "backup"), "--yes",
                          env={**env, "STRONGROOM_MASTER_KEY_FILE": str(stale)})
        assert account_names(fresh.url) == set()  # nothing restored
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: the configured master key source lacks version 2 (file, 1 record) that the backup uses: configure "
        "the key file, HSM or KMS that holds it, then restore again; nothing was restored")

    if fresh.backend == "postgresql":  # with the right key file: pg_restore puts the rows back
        done = run_cli("restore", str(tmp_path / "backup"), "--yes", env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert account_names(fresh.url) == {"a"}


def test_not_a_backup_and_an_existing_directory(fresh, make_core, tmp_path: Path) -> None:
    if fresh.backend != "sqlite":
        pytest.skip("no database involved")
    make_core()
    env = {"STRONGROOM_DATA_DIR": str(fresh.data_dir), "STRONGROOM_DATABASE_URL": fresh.url}
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    taken = run_cli("backup", str(tmp_path / "full"), env=env)
    assert taken.returncode == 1 and "exists: give a new directory" in taken.stderr
    nothing = run_cli("restore", str(tmp_path / "full"), "--yes", env=env)
    assert nothing.returncode == 1 and "is not a Strongroom backup" in nothing.stderr


def test_without_pg_dump_it_says_what_to_run(fresh, make_core, tmp_path: Path) -> None:
    if fresh.backend != "postgresql":
        pytest.skip("pg_dump is PostgreSQL's")
    make_core()
    env = {"STRONGROOM_DATA_DIR": str(fresh.data_dir), "STRONGROOM_DATABASE_URL": fresh.url, "PATH": "/nonexistent"}
    refused = run_cli("backup", str(tmp_path / "backup"), env=env)
    assert refused.returncode == 1, refused.stdout
    line = refused.stderr.strip()
    assert line.startswith("error: pg_dump is not installed (Debian: apt-get install postgresql-client); run it "
                           f"yourself: pg_dump --format=custom --no-owner --file={tmp_path / 'backup'}"), line
    assert "--schema=sr_" in line and len(line.splitlines()) == 1
    assert not (tmp_path / "backup").exists()  # nothing half made
