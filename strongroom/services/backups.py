"""Backups of the database that say which master keys they need, and restores that check for them.

``backup(core, path)`` makes the directory ``path`` holding:

- the database: on SQLite a consistent copy through SQLite's online backup API (a plain copy of a live
  database in WAL mode can miss committed writes still in the ``-wal`` file); on PostgreSQL a
  ``pg_dump`` custom-format archive (only the configured schema when the URL sets a search_path);
- ``manifest.json``: the schema revision, every master key version the copied records are sealed
  under with its source (file, pkcs11, aws-kms) and record count, and a check value of the pepper
  (HMAC of a fixed label: tells whether a key source holds the same pepper, reveals nothing of it).

The backup holds no key material: keep the key file (or the HSM/KMS keys) backed up separately.
``restore(settings, path)`` refuses, naming the version, when the configured key source lacks a version
the backup uses (or holds another pepper), before it writes anything.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from strongroom.core import Core
from strongroom.crypto.envelope import Envelope
from strongroom.crypto.keyring import KeyChain
from strongroom.datastore import display_url, schema, sqlite_path
from strongroom.db import Database
from strongroom.errors import BadRequest, Conflict, ServiceUnavailable
from strongroom.vault.services import Vault, records

MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
PG_FILE = "database.pgdump"
PEPPER_LABEL = b"strongroom backup pepper check v1"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    manifest: dict[str, Any]


def pepper_check(keys: KeyChain) -> str:
    return keys.mac(PEPPER_LABEL)[:16].hex()


def _pg_env(url: str) -> dict[str, str]:
    """The environment for pg_dump/pg_restore: the password in PGPASSWORD, never on a command line."""
    password = make_url(url).password
    return {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}


def _libpq(url: str) -> tuple[str, str | None]:
    """Return (a libpq URI for ``url`` without its password, the schema its search_path names or None)."""
    parsed = make_url(url)
    search_path = None
    options = parsed.query.get("options")
    for option in ([options] if isinstance(options, str) else list(options or [])):
        for part in urllib.parse.unquote(option).split():
            if part.startswith("-csearch_path="):
                search_path = part.split("=", 1)[1].split(",")[0].strip('"') or None
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, search_path


def _tool(name: str, command: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceUnavailable(f"{name} is not installed (Debian: apt-get install postgresql-client); "
                                 f"run it yourself: {command}")
    return found


def backup(core: Core, path: Path) -> BackupReport:
    """Write a backup of the configured database and its manifest into the new directory ``path``.

    Raises Conflict (``path`` exists and is not empty), ServiceUnavailable (pg_dump missing: the message
    says what to run), BadRequest (pg_dump failed: its first line).
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise Conflict(f"{path} exists: give a new directory for the backup")
    url = core.settings.effective_database_url
    source = sqlite_path(url)
    state = schema(url)
    keys = core.keys
    pg_dump = None
    if source is None:  # before anything is made: without pg_dump, say what to run
        uri, search_path = _libpq(url)
        pg_args = ["--format=custom", "--no-owner", f"--file={path / PG_FILE}",
                   *([f"--schema={search_path}"] if search_path else []), uri]
        pg_dump = _tool("pg_dump", " ".join(["pg_dump", *pg_args[:-1], f"'{display_url(url)}'"]))
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    try:
        if source is not None:
            target = path / SQLITE_FILE
            with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
                src.backup(dst)  # one step: a consistent snapshot of every committed transaction
            src.close()
            dst.close()
            target.chmod(0o600)
            copy = Database(f"sqlite:///{target}")
            try:
                usage = Vault(copy, Envelope(keys)).usage()  # exactly what the copy holds
            finally:
                copy.dispose()
            kind, file = "sqlite", SQLITE_FILE
        else:
            assert pg_dump is not None
            usage = core.vault.usage()
            done = subprocess.run([pg_dump, *pg_args], capture_output=True, text=True, check=False, env=_pg_env(url))
            if done.returncode != 0:
                raise BadRequest(f"pg_dump failed: {(done.stderr.strip().splitlines() or ['no message'])[0]}")
            (path / PG_FILE).chmod(0o600)
            for version, count in core.vault.usage().items():  # a rotation during the dump: both versions listed
                usage[version] = max(usage.get(version, 0), count)
            kind, file = "postgresql", PG_FILE
    except BaseException:
        if created:  # leave nothing half made
            shutil.rmtree(path, ignore_errors=True)
        raise
    owners = keys.owners()
    manifest: dict[str, Any] = {
        "format": 1,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": kind,
        "file": file,
        "schema_revision": state.current,
        "key_versions": [{"version": v, "provider": owners[v].name if v in owners else None, "records": n}
                         for v, n in sorted(usage.items())],
        "pepper_check": pepper_check(keys),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return BackupReport(path, manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    """Return the manifest of backup ``path``. Raises BadRequest if it is not a Strongroom backup."""
    try:
        manifest: dict[str, Any] = json.loads((Path(path) / MANIFEST).read_text())
        assert manifest["format"] == 1 and manifest["database"] in ("sqlite", "postgresql")
        return manifest
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise BadRequest(f"{path} is not a Strongroom backup (no readable {MANIFEST})") from None


def check_keys(manifest: dict[str, Any], keys: KeyChain) -> None:
    """Raise Conflict naming each master key version the backup uses that ``keys`` lacks, or a pepper mismatch."""
    lacking = []
    for entry in manifest["key_versions"]:
        try:
            keys.owner(int(entry["version"]))
        except Exception:  # noqa: BLE001 - KeyringError: not held (or its source does not answer)
            lacking.append(entry)
    if lacking:
        said = ", ".join(f"version {e['version']} ({e.get('provider') or 'unknown source'}, {records(e['records'])})"
                         for e in lacking)
        raise Conflict(f"the configured master key source lacks {said} that the backup uses: configure the key "
                       "file, HSM or KMS that holds it, then restore again; nothing was restored")
    if not hmac.compare_digest(pepper_check(keys), str(manifest.get("pepper_check", ""))):
        raise Conflict("the configured master key source holds another pepper than the backup's: bearer keys, "
                       "tokens and fingerprints would not match; configure the key source of the backup; "
                       "nothing was restored")


def restore(url: str, keys: KeyChain, path: Path) -> dict[str, Any]:
    """Restore backup ``path`` into the database at ``url`` after checking the key source. Returns the manifest.

    Raises BadRequest (not a backup, or for another kind of database; pg_restore failed), Conflict (a
    key version or the pepper missing), ServiceUnavailable (pg_restore missing: the message says what to run).
    """
    path = Path(path)
    manifest = read_manifest(path)
    check_keys(manifest, keys)
    file = path / str(manifest["file"])
    target = sqlite_path(url)
    if (target is not None) != (manifest["database"] == "sqlite"):
        raise BadRequest(f"the backup is of a {manifest['database']} database; the configured one is not")
    if target is not None:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # a new database file is owner-only before a byte is written (sealed secrets, key hashes)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
        with sqlite3.connect(file) as src, sqlite3.connect(target) as dst:
            src.backup(dst)  # replaces every page under SQLite's own locks
        src.close()
        dst.close()
        return manifest
    uri, _ = _libpq(url)
    args = ["--clean", "--if-exists", "--no-owner", "--single-transaction", f"--dbname={uri}", str(file)]
    shown = " ".join(["pg_restore", *args[:-2], f"--dbname='{display_url(url)}'", str(file)])
    done = subprocess.run([_tool("pg_restore", shown), *args], capture_output=True, text=True, check=False,
                          env=_pg_env(url))
    if done.returncode != 0:
        raise BadRequest(f"pg_restore failed: {(done.stderr.strip().splitlines() or ['no message'])[0]}")
    return manifest
