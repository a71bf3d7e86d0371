"""Issue 14 item 3 (and item 6's newcomer bits): the command line finds its data the way the
server does, creates a database and master key only in ``db upgrade`` and ``serve``, and says
what is wrong, and the fix, in one line: other directory, no database, not migrated, master key
missing, bad settings, unreachable database.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from support import BIN, ROOT, ServeProcess, free_port
from support.cli import clean_env, strongroom

from strongroom.settings import Settings, allowed, env_name

COMMANDS = [
    ("users", "list"),
    ("users", "create", "bob", "--password-stdin"),
    ("users", "set-password", "admin", "--password-stdin"),
    ("keys", "list"),
    ("keys", "revoke", "0b3c0e0e-0000-4000-8000-000000000000", "--yes"),
    ("accounts", "list"),
    ("audit", "tail"),
    ("master-key", "status"),
    ("master-key", "rotate"),
    ("master-key", "retire", "1", "--yes"),
    ("jobs", "list"),
    ("jobs", "retry", "1"),
    ("worker",),
]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.slow  # starts `strongroom serve` or the command in subprocesses: not the quick loop
def test_other_directory_refuses_in_one_line_and_creates_nothing(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in COMMANDS:
        run = strongroom(*args, env={}, cwd=elsewhere, stdin="a-long-password\n")
        assert run.returncode == 1, (args, run.stderr)
        assert f"no data directory at {elsewhere / 'var'}" in run.error
        assert "run 'strongroom db upgrade'" in run.error and "STRONGROOM_DATA_DIR" in run.error
    assert tree(elsewhere) == [], "a command created files where it found no data"


def test_data_dir_without_database_is_refused_and_left_alone(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    run = strongroom("users", "list", env={"STRONGROOM_DATA_DIR": str(data_dir)})
    assert run.returncode == 1
    assert f"no database in {data_dir}" in run.error and "strongroom db upgrade" in run.error
    explicit = strongroom("keys", "list", env={"STRONGROOM_DATA_DIR": str(data_dir),
                                               "STRONGROOM_DATABASE_URL": f"sqlite:///{data_dir / 'other.db'}"})
    assert f"no database at {data_dir / 'other.db'}" in explicit.error and "STRONGROOM_DATABASE_URL" in explicit.error
    assert tree(data_dir) == []


def test_unmigrated_database_is_refused_without_creating_a_master_key(fresh):
    fresh.data_dir.mkdir()
    if fresh.backend == "sqlite":
        (fresh.data_dir / "strongroom.db").touch()
    before = tree(fresh.data_dir)
    for args in (("users", "list"), ("master-key", "status"), ("keys", "list")):
        run = fresh.run(*args)
        assert run.returncode == 1
        assert "is not set up: run 'strongroom db upgrade'" in run.error, run.error
    assert tree(fresh.data_dir) == before and not (fresh.data_dir / "master.key").exists()


def test_db_upgrade_creates_a_new_database_0600_and_says_so(fresh):
    created = fresh.run("db", "upgrade", "--json").json()
    assert created["created"] is True and created["from_revision"] is None and created["to_revision"]
    assert created["master_key_created"] is True
    assert created["master_key_file"] == str((fresh.data_dir / "master.key").resolve())
    assert mode(fresh.data_dir) == 0o700 and mode(fresh.data_dir / "master.key") == 0o600
    if fresh.backend == "sqlite":
        assert created["database"] == str((fresh.data_dir / "strongroom.db").resolve())
        assert mode(fresh.data_dir / "strongroom.db") == 0o600
    else:
        assert "postgresql" in created["database"]
    key = (fresh.data_dir / "master.key").read_bytes()

    again = fresh.run("db", "upgrade").ok()
    assert "is up to date" in again.stdout and "created" not in again.stdout
    assert (fresh.data_dir / "master.key").read_bytes() == key

    fresh.run("users", "create", "carol", "--password-stdin", stdin="a-long-password\n").ok()
    for name in ("strongroom.db", "strongroom.db-wal", "strongroom.db-shm"):
        if (fresh.data_dir / name).exists():
            assert mode(fresh.data_dir / name) == 0o600, name


def loosen(data_dir: Path) -> list[Path]:
    """Give the data directory and its files the modes an older version left (0755, 0644)."""
    data_dir.chmod(0o755)
    files = [p for p in data_dir.iterdir() if p.is_file()]
    for path in files:
        path.chmod(0o644)
    return files


def test_an_older_installations_open_modes_are_made_private_at_start(installed, caplog):
    """Issue 22 item 7: files an older version created 0644 (directory 0755) are 0600 (0700) after a start,
    which says so in one line: ``db upgrade`` (and ``serve``) on stdout, a core's start in the log."""
    from strongroom.core import build_core

    installed.run("users", "create", "dora", "--password-stdin", stdin="a-long-password\n").ok()
    files = loosen(installed.data_dir)
    assert installed.data_dir / "master.key" in files
    upgraded = installed.run("db", "upgrade").ok()
    said = [line for line in upgraded.stdout.splitlines() if "private" in line]
    assert len(said) == 1 and "master.key" in said[0], upgraded.stdout
    assert mode(installed.data_dir) == 0o700
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert "private" not in installed.run("db", "upgrade").ok().stdout  # nothing left to fix: nothing said

    loosen(installed.data_dir)
    settings = Settings(data_dir=installed.data_dir, database_url=installed.url)
    with caplog.at_level("WARNING", logger="strongroom"):
        build_core(settings).close()
    lines = [r.getMessage() for r in caplog.records if "private" in r.getMessage()]
    assert len(lines) == 1 and "master.key" in lines[0]
    assert mode(installed.data_dir) == 0o700 and mode(installed.data_dir / "master.key") == 0o600


def test_new_database_plain_output(fresh):
    first = fresh.run("db", "upgrade").ok()
    lines = first.stdout.strip().splitlines()
    assert lines[0].startswith("created database ") and "(schema " in lines[0]
    assert lines[1].startswith(f"created master key file {(fresh.data_dir / 'master.key').resolve()} (mode 0600)")
    assert "back it up" in lines[1]


def test_a_missing_master_key_beside_stored_credentials_alone_is_never_replaced(installed):
    """Stored exchange credentials (Cadenza's) are sealed too: with nothing else in the database (no
    account, key or session), a missing key file is still refused, never made anew over them."""
    import asyncio

    from support.services import FakeGateway, new_user

    from strongroom.core import build_core

    installed.run("db", "upgrade").ok()
    core = build_core(Settings(data_dir=installed.data_dir, database_url=installed.url), gateway=FakeGateway())
    try:
        asyncio.run(core.credentials.create(new_user(core), "binance", {"api_key": f"k-{uuid.uuid4().hex}",
                                                                        "secret": uuid.uuid4().hex}))
    finally:
        core.close()
    key_file = installed.data_dir / "master.key"
    shutil.move(key_file, installed.data_dir.parent / "master.key.bak")
    run = installed.run("db", "upgrade")
    assert run.returncode == 1 and "holds 1 record sealed" in run.error, run.error
    assert not key_file.exists()


def test_missing_master_key_next_to_sealed_data_is_never_replaced(installed):
    installed.run("users", "create", "dave", "--password-stdin", stdin="a-long-password\n").ok()
    installed.run("keys", "create", "--user", "dave", "--name", "k", "--kind", "hmac").ok()
    key_file = installed.data_dir / "master.key"
    aside = installed.data_dir.parent / "master.key.bak"
    shutil.move(key_file, aside)
    for args in (("keys", "list"), ("db", "upgrade"), ("master-key", "status")):
        run = installed.run(*args)
        assert run.returncode == 1
        assert f"the master key file {key_file.resolve()} is missing" in run.error
        assert "restore the file from your backup" in run.error
        assert not key_file.exists()
    serve = subprocess.run([str(BIN / "strongroom"), "serve", "--port", str(free_port())], check=False,
                           capture_output=True, text=True, env=clean_env(installed.env), cwd=ROOT, timeout=60)
    assert serve.returncode == 1 and "Traceback" not in serve.stderr
    assert serve.stderr.strip().splitlines()[-1].startswith("error: the master key file")
    assert not key_file.exists()
    shutil.move(aside, key_file)
    assert [k["name"] for k in installed.run("keys", "list", "--json").json()] == ["k"]


def test_no_master_key_and_nothing_sealed_says_how_to_get_one(installed):
    (installed.data_dir / "master.key").unlink()
    run = installed.run("users", "list")
    assert run.returncode == 1 and "no master key file at" in run.error
    assert "STRONGROOM_DATA_DIR" in run.error and "strongroom db upgrade" in run.error
    assert not (installed.data_dir / "master.key").exists()
    assert installed.run("db", "upgrade", "--json").json()["master_key_created"] is True


@pytest.mark.slow  # starts `strongroom serve` or the command in subprocesses: not the quick loop
def test_serve_migrates_an_unmigrated_database_first(fresh):
    if fresh.backend == "sqlite":
        fresh.data_dir.mkdir(mode=0o700)
        (fresh.data_dir / "strongroom.db").touch(mode=0o600)  # there, but never migrated
    server = ServeProcess(clean_env({**fresh.env, "STRONGROOM_LOG_LEVEL": "warning"}))
    try:
        import httpx

        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    finally:
        out = server.stop()
    assert "Traceback" not in out
    assert "created database" in out and "bootstrap admin" in out
    assert "strongroom users set-password admin" in out
    assert [u["username"] for u in fresh.run("users", "list", "--json").json()] == ["admin"]


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("STRONGROOM_PORT", "70000", "STRONGROOM_PORT must be an integer from 1 to 65535"),
    ("STRONGROOM_PORT", "http", "STRONGROOM_PORT must be an integer from 1 to 65535"),
    ("STRONGROOM_ARGON2_TIME_COST", "0", "STRONGROOM_ARGON2_TIME_COST must be an integer from 1 to 100"),
    ("STRONGROOM_KEY_CACHE_TTL_SECONDS", "5", "STRONGROOM_KEY_CACHE_TTL_SECONDS must be a number from 0.0 to 1.0"),
    ("STRONGROOM_ACCESS_TOKEN_TTL_SECONDS", "5", "STRONGROOM_ACCESS_TOKEN_TTL_SECONDS must be an integer from 30"),
    ("STRONGROOM_LOG_LEVEL", "loud", "STRONGROOM_LOG_LEVEL must be one of critical, error, warning, info, debug"),
    ("STRONGROOM_EXCHANGE_BASE_URLS", "{not json", "STRONGROOM_EXCHANGE_BASE_URLS must be JSON"),
    ("STRONGROOM_RATE_LIMIT_PER_IP", "lots", "STRONGROOM_RATE_LIMIT_PER_IP must be a rate like 600/minute"),
    ("STRONGROOM_ALLOW_WITHDRAWAL_KEYS", "perhaps", "STRONGROOM_ALLOW_WITHDRAWAL_KEYS must be true or false"),
    ("STRONGROOM_DATABASE_URL", "hunter2-is-my-password", "STRONGROOM_DATABASE_URL must be a SQLAlchemy URL"),
])
def test_a_bad_setting_is_one_line_naming_the_variable_and_range(tmp_path, variable, value, says):
    for args in (("users", "list"), ("db", "upgrade"), ("serve",)):
        run = strongroom(*args, env={"STRONGROOM_DATA_DIR": str(tmp_path / "data"), variable: value}, cwd=tmp_path)
        assert run.returncode == 2, (args, run.stderr)
        assert says in run.error, run.error
        assert value not in run.stderr or value in ("5", "0"), "the bad value is echoed back"
    assert tree(tmp_path) == []


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def test_every_numeric_setting_is_bounded_and_its_range_documented():
    from types import NoneType, UnionType

    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
            if line.startswith("| `STRONGROOM_")}
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, UnionType):  # X | None
            annotation = next(a for a in annotation.__args__ if a is not NoneType)
        if annotation not in (int, float):
            continue
        bounds = {type(m).__name__: m for m in info.metadata}
        assert {"Ge", "Gt"} & set(bounds) and {"Le", "Lt"} & set(bounds), f"{name} has no minimum and maximum"
        assert allowed(name) and allowed(name) != "a number"
        row = rows.get(env_name(name))
        assert row, f"{env_name(name)} is not in the README's settings table"
        low = _number(bounds["Ge"].ge) if "Ge" in bounds else f">{_number(bounds['Gt'].gt)}"
        high = _number(bounds["Le"].le) if "Le" in bounds else f"<{_number(bounds['Lt'].lt)}"
        assert f"{low}–{high}" in row, f"the README row of {env_name(name)} lacks its range {low}–{high}"


def test_unreachable_database_is_one_line(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"postgresql+psycopg://nobody:pw-{uuid.uuid4().hex}@127.0.0.1:{free_port()}/nothing"
    run = strongroom("users", "list", env={"STRONGROOM_DATA_DIR": str(data_dir), "STRONGROOM_DATABASE_URL": url})
    assert run.returncode == 1
    assert run.error.startswith("cannot open the database postgresql+psycopg://nobody:***@127.0.0.1:")
    assert "pw-" not in run.stderr


def test_version_and_usage_errors(tmp_path):
    from strongroom import __version__

    assert strongroom("--version", env={}, cwd=tmp_path).ok().stdout.strip() == f"strongroom {__version__}"
    missing = strongroom("keys", "create", env={}, cwd=tmp_path)
    assert missing.returncode == 2 and "Missing option '--user'" in missing.error
    assert "see 'strongroom keys create --help'" in missing.error
    bad = strongroom("users", "set-level", "bob", "wizard", env={}, cwd=tmp_path)
    assert bad.returncode == 2 and "'wizard' is not one of" in bad.error
    bare = strongroom("keys", env={}, cwd=tmp_path)
    assert bare.returncode == 2 and "revoke" in bare.stdout and bare.stderr == ""
    assert tree(tmp_path) == []


def test_in_process_runner_gets_the_same_contract(tmp_path, monkeypatch):
    """Typer's CliRunner goes through the same error handling as the installed command."""
    from typer.testing import CliRunner

    from strongroom import __version__
    from strongroom.cli import app

    for name in list(os.environ):
        if name.startswith("STRONGROOM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"strongroom {__version__}"
    bad = runner.invoke(app, ["users", "list"], env={"STRONGROOM_MAX_BODY_BYTES": "12"})
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: STRONGROOM_MAX_BODY_BYTES must be an integer from 1024 to 104857600"
    nowhere = runner.invoke(app, ["audit", "tail", "--json"])
    assert nowhere.exit_code == 1 and nowhere.stderr.startswith("error: no data directory at")
    assert tree(tmp_path) == []


def test_shipped_revisions_are_read_as_alembic_reads_them():
    """datastore reads the migration files itself (fast); Alembic must agree with it."""
    from alembic.script import ScriptDirectory

    from strongroom.datastore import head_revision, revisions
    from strongroom.migrations import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert head_revision() == scripts.get_current_head()
    assert revisions() == {s.revision: s.down_revision for s in scripts.walk_revisions()}


def test_an_unknown_variable_is_warned_about_with_the_closest_setting(fresh):
    """Issue 22 item 8: a typo in a STRONGROOM_* name is not silently ignored (``serve``: tests/system/test_pipelines)."""
    done = strongroom("db", "upgrade", env={**fresh.env, "STRONGROOM_PROT": "9000",
                                         "STRONGROOM_NOTHING_LIKE_IT": "1"}).ok()
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: STRONGROOM_NOTHING_LIKE_IT is not a Strongroom setting and is ignored",
                        ("warning: STRONGROOM_PROT is not a Strongroom setting and is ignored "
                         "(did you mean STRONGROOM_PORT?)")]
