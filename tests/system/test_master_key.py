"""Issue 2, points 2, 3 and 5: the ``strongroom`` CLI - db upgrade, users create, and master key
rotation (including a rotation killed with SIGKILL half way and then finished), on a fresh
SQLite database and on a fresh PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from support import (
    BIN,
    PG_URL,
    ROOT,
    TEST_SETTINGS,
    drop_pg_schema,
    new_pg_schema,
    postgres_available,
    run_cli,
    start_server,
)


@dataclass
class Outcome:
    verified: bool = True
    can_withdraw: bool | None = False


class FakeGateway:
    """Accepts every key (these tests are about master keys, not exchanges)."""

    async def validate(self, info, credentials):
        return Outcome()

    async def aclose(self):
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path):
    """A data dir and an empty database (not yet migrated), with the env the CLI needs."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cli.db'}"
        schema = None
    else:
        problem = postgres_available()
        if problem:
            pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
        schema, url = new_pg_schema()
    data_dir = tmp_path / "data"
    env = {"STRONGROOM_DATA_DIR": str(data_dir), "STRONGROOM_DATABASE_URL": url,
           "STRONGROOM_ARGON2_TIME_COST": "1", "STRONGROOM_ARGON2_MEMORY_KIB": "1024",
           "STRONGROOM_ARGON2_PARALLELISM": "1"}
    try:
        yield data_dir, url, env
    finally:
        if schema:
            drop_pg_schema(schema)


def core_for(data_dir: Path, url: str):
    from strongroom.core import build_core
    from strongroom.settings import Settings

    settings = Settings(**{**TEST_SETTINGS, "data_dir": data_dir, "database_url": url})
    return build_core(settings, gateway=FakeGateway())


def upgrade(env) -> None:
    result = run_cli("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert "created database" in result.stdout, result.stdout
    again = run_cli("db", "upgrade", env=env)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr


def status_of(env) -> dict:
    """``master-key status --json``."""
    import json

    done = run_cli("master-key", "status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fill(data_dir: Path, url: str, accounts: int, *, hmac_keys: int = 0) -> dict[int, dict]:
    """Create a user with ``accounts`` exchange accounts (and HMAC keys) through the services."""
    core = core_for(data_dir, url)
    try:
        user = core.users.create(f"u{uuid.uuid4().hex[:8]}", "password-123", is_admin=False)
        from strongroom.principal import Principal

        principal = Principal(user_id=user.id, username=user.username, client_ip="test")
        stored = {}
        for i in range(accounts):
            creds = {"api_key": f"key-{i}-{uuid.uuid4().hex}", "secret": f"secret-{i}-{uuid.uuid4().hex}"}
            account = asyncio.run(core.accounts.connect(principal, "binance", creds, name=f"acct {i}"))
            assert account.status == "active"
            stored[account.id] = creds
        for i in range(hmac_keys):
            core.api_keys.create(principal, name=f"hmac {i}", kind="hmac")
        return stored
    finally:
        core.close()


def check_all(data_dir: Path, url: str, stored: dict[int, dict], *, version: int | None = None) -> dict[int, int]:
    """Assert every account decrypts to what was stored; return {kek_version: count}."""
    from strongroom.models import ApiKey, ExchangeAccount

    core = core_for(data_dir, url)
    try:
        versions: dict[int, int] = {}
        with core.db.session() as session:
            for account in session.scalars(select(ExchangeAccount)):
                assert core.account_store.credentials_of(account) == stored[account.id]
                versions[account.kek_version] = versions.get(account.kek_version, 0) + 1
            for key in session.scalars(select(ApiKey).where(ApiKey.kind == "hmac")):
                assert core.vault.open_key_secret(key)["current"]
                versions[key.kek_version] = versions.get(key.kek_version, 0) + 1
        assert sum(versions.values()) >= len(stored)
        if version is not None:
            assert core.keys.current_version == version
            assert set(versions) == {version}, versions
        return versions
    finally:
        core.close()


def key_file_mode(data_dir: Path) -> int:
    return stat.S_IMODE(os.stat(data_dir / "master.key").st_mode)


def test_db_upgrade_and_master_key_rotate(fresh):
    data_dir, url, env = fresh
    upgrade(env)
    # `db upgrade` of a new database creates the master key file, mode 0600
    status = status_of(env)
    assert status["current_version"] == 1 and status["pending"] == 0
    assert key_file_mode(data_dir) == 0o600
    first_key = (data_dir / "master.key").read_bytes()

    stored = fill(data_dir, url, 12, hmac_keys=3)
    assert (data_dir / "master.key").read_bytes() == first_key  # reused, not replaced
    assert check_all(data_dir, url, stored, version=1) == {1: 15}

    rotated = run_cli("master-key", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "version 2 is current" in rotated.stdout and "re-wrapped 15" in rotated.stdout
    assert key_file_mode(data_dir) == 0o600
    assert check_all(data_dir, url, stored, version=2) == {2: 15}
    status = run_cli("master-key", "status", env=env)
    assert status_of(env)["current_version"] == 2 and status_of(env)["pending"] == 0
    assert [v["version"] for v in status_of(env)["versions"]] == [1, 2]

    # the output never shows key material
    import json

    for material in json.loads((data_dir / "master.key").read_text())["versions"].values():
        assert material not in rotated.stdout + rotated.stderr + status.stdout

    # new accounts are sealed under the current version; a server on the rotated keys reads them all
    stored.update(fill(data_dir, url, 2))
    assert check_all(data_dir, url, stored, version=2) == {2: 17}


def test_master_key_rotate_killed_half_way_then_run_again(fresh):
    from strongroom.migrations import upgrade as migrate

    data_dir, url, env = fresh
    migrate(url)  # (the CLI's ``db upgrade`` is covered by the other tests)
    total = 200
    stored = fill(data_dir, url, total)

    engine = create_engine(url)
    from strongroom.models import ExchangeAccount

    def rewrapped() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(ExchangeAccount).where(ExchangeAccount.kek_version > 1))

    try:
        proc = subprocess.Popen([str(BIN / "strongroom"), "master-key", "rotate", "--batch", "1"],
                                env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if rewrapped() >= 5:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.002)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL, "the rotation finished before it could be killed"
        partial = rewrapped()
        assert 0 < partial < total, partial

        # killed half way: every account still decrypts (the old version stays, decrypt-only)
        versions = check_all(data_dir, url, stored)
        assert set(versions) == {1, 2} and versions[2] == partial
        assert key_file_mode(data_dir) == 0o600
        status = status_of(env)
        assert status["current_version"] == 2
        assert status["pending"] == total - partial

        # run again: it finishes, every account on the current version and decryptable
        again = run_cli("master-key", "rotate", "--batch", "50", env=env)
        assert again.returncode == 0, again.stderr
        assert "version 3 is current" in again.stdout
        check_all(data_dir, url, stored, version=3)
    finally:
        engine.dispose()


def test_status_counts_stored_credentials_and_a_stale_key_file_stops_status_and_serve(fresh):
    """Issue 17: ``status --json`` counts every sealed table (stored credentials too); a key file older than
    the data makes ``status`` exit non-zero naming the version, and ``serve`` refuse to start."""
    import json

    from support.services import new_user

    data_dir, url, env = fresh
    upgrade(env)
    core = core_for(data_dir, url)
    try:
        principal = new_user(core)
        asyncio.run(core.credentials.create(principal, "binance", {"api_key": f"k-{uuid.uuid4().hex}",
                                                                   "secret": uuid.uuid4().hex}))
    finally:
        core.close()
    status = status_of(env)
    assert status["versions"] == [{"version": 1, "current": True, "records": 1, "held": True, "provider": "file"}]
    assert status["missing"] == []

    backup = (data_dir / "master.key").read_bytes()  # the key file as an old backup holds it
    assert run_cli("master-key", "rotate", env=env).returncode == 0
    (data_dir / "master.key").write_bytes(backup)

    stale = run_cli("master-key", "status", "--json", env=env)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert json.loads(stale.stdout)["missing"] == [{"version": 2, "records": 1}]
    assert "lacks version 2 (1 record)" in stale.stderr
    text = run_cli("master-key", "status", env=env)
    assert text.returncode == 1 and "2:1" in text.stdout and "lacks version 2" in text.stderr

    refused = subprocess.run([str(BIN / "strongroom"), "serve", "--port", "1"], env={**os.environ, **env},
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "cannot serve: the master key source lacks version 2 (1 record)" in refused.stderr


def test_users_create_cli_and_sign_in(fresh):
    data_dir, url, env = fresh
    upgrade(env)
    username = f"cli{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    created = run_cli("users", "create", "--username", username, "--password-stdin", "--admin", env=env,
                      stdin=password + "\n")
    assert created.returncode == 0, created.stderr
    assert username in created.stdout and password not in created.stdout + created.stderr

    plain = f"plain{uuid.uuid4().hex[:8]}"
    assert run_cli("users", "create", "--username", plain, "--password-stdin", env=env,
                   stdin="another-password\n").returncode == 0

    # refusals: no --password-stdin, a taken name
    no_stdin = run_cli("users", "create", "--username", f"x{uuid.uuid4().hex[:8]}", env=env)
    assert no_stdin.returncode != 0
    taken = run_cli("users", "create", "--username", username, "--password-stdin", env=env, stdin="whatever-pw\n")
    assert taken.returncode != 0 and "exists" in taken.stderr

    server = start_server(data_dir=data_dir, database_url=url)
    try:
        with server.client() as client:
            token = client.post("/v1/auth/token", data={"username": username, "password": password})
            assert token.status_code == 200, token.text
            me = client.get("/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}).json()
            assert me["username"] == username and me["is_admin"] is True
            assert client.get("/v1/users", auth=(username, password)).status_code == 200
            plain_me = client.get("/v1/me", auth=(plain, "another-password"))
            assert plain_me.status_code == 200 and plain_me.json()["is_admin"] is False
            assert client.post("/v1/auth/token", data={"username": username, "password": "wrong"}).status_code == 401
    finally:
        server.stop()


def test_concurrent_version_changes_lose_nothing(tmp_path):
    """Rotations and retirements from several processes at once (each its own provider, as separate
    `strongroom master-key` runs are) keep every version: the key file is changed under a lock."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from strongroom.crypto.keyring import FileKeyProvider

    path = tmp_path / "master.key"
    FileKeyProvider(path)
    added = list(ThreadPoolExecutor(8).map(lambda _: FileKeyProvider(path).add_version(), range(16)))
    assert sorted(added) == list(range(2, 18))
    doc = json.loads(path.read_text())
    assert sorted(map(int, doc["versions"])) == list(range(1, 18)) and doc["current"] == 17
    list(ThreadPoolExecutor(8).map(lambda v: FileKeyProvider(path).retire_version(v), range(1, 9)))
    doc = json.loads(path.read_text())
    assert sorted(map(int, doc["versions"])) == list(range(9, 18)) and doc["current"] == 17
