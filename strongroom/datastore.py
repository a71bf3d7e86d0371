"""Where Strongroom's data lives and whether it is ready to use.

The command line calls this before it opens the core, so that a command run in the wrong place
says so in one line instead of creating an empty database and a new master key:

- :func:`check_ready` (every command but ``db upgrade`` and ``serve``): the database exists, is
  reachable and migrated to this version's schema, and the master key material is there.
- :func:`prepare` (``db upgrade``, ``serve``): creates a missing SQLite database (mode 0600, in a
  data directory of mode 0700), migrates, and creates the master key file, but only when nothing
  in the database was sealed with an earlier one.
- :func:`tighten` (``prepare`` and every core at start): the data directory is 0700 and its files
  0600, also when an older version made them 0755/0644.

Every refusal is a :class:`DataError` whose message names the fix.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from strongroom.crypto.keyring import load_provider
from strongroom.db import make_engine
from strongroom.settings import Settings

UPGRADE_HINT = "run 'strongroom db upgrade'"


class DataError(Exception):
    """The data is missing, unreachable, not migrated or without its master key. One line, with the fix."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Schema:
    """The migration state of a database: ``current`` is None when it was never migrated."""

    database: str  # display form (no password)
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` did."""

    database: str
    created: bool  # a new SQLite file, or a PostgreSQL schema that had never been migrated
    before: str | None  # schema revision before (None: never migrated)
    after: str
    master_key_file: Path | None  # None when the keys come from STRONGROOM_MASTER_KEYS
    master_key_created: bool
    tightened: tuple[Path, ...] = field(default=())  # paths whose modes were too open (see tighten)


def display_url(url: str) -> str:
    """Return ``url`` for messages: the password hidden, a SQLite URL as its file path."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable database URL>"


def sqlite_path(url: str) -> Path | None:
    """Return the absolute file of a SQLite URL; None for other databases and in-memory SQLite."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().resolve()


_REVISION = re.compile(r"^revision(?:: *str)? *= *['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:: *[^=]+)? *= *(?:['\"]([^'\"]+)['\"]|None)", re.MULTILINE)


def revisions() -> dict[str, str | None]:
    """Return ``{revision: down_revision}`` of the shipped migrations, read from their files.

    (Importing Alembic's script machinery costs more than a command's whole work; the test
    suite checks this against Alembic.)
    """
    found: dict[str, str | None] = {}
    for script in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        source = script.read_text()
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision and down:
            found[revision.group(1)] = down.group(1)
    return found


def head_revision() -> str:
    """Return the newest schema revision this version of Strongroom ships."""
    known = revisions()
    heads = set(known) - {down for down in known.values() if down}
    assert len(heads) == 1, f"the migrations have {len(heads)} heads"
    return heads.pop()


def _engine(url: str) -> Engine:
    try:
        return make_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise DataError("STRONGROOM_DATABASE_URL is not a database URL Strongroom can use") from None


def _unreachable(url: str, exc: Exception) -> DataError:
    reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
    return DataError(f"cannot open the database {display_url(url)}: {reason[0] if reason else type(exc).__name__}")


def schema(url: str) -> Schema:
    """Return the migration state of the database at ``url`` (which must exist). Raises DataError."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            current = None
            if inspect(conn).has_table("alembic_version"):
                current = conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        raise _unreachable(url, exc) from None
    finally:
        engine.dispose()
    return Schema(display_url(url), current, head_revision())


def _missing_database(settings: Settings, path: Path) -> DataError:
    if settings.database_url:
        return DataError(f"no database at {path}: {UPGRADE_HINT} to create it, or set STRONGROOM_DATABASE_URL "
                         "to the server's database")
    if not path.parent.exists():
        return DataError(f"no data directory at {path.parent}: set STRONGROOM_DATA_DIR to the server's data "
                         f"directory, or {UPGRADE_HINT} to create a new installation here")
    return DataError(f"no database in {path.parent}: set STRONGROOM_DATA_DIR to the server's data directory, "
                     f"or {UPGRADE_HINT} to create one here")


def sealed_records(url: str) -> int:
    """Return how many rows depend on the master key material: live exchange accounts and stored exchange
    credentials (sealed), API keys (bearer hashes use the pepper, HMAC secrets are sealed) and sessions
    (hashed with the pepper). (The vault's registry lists the sealed tables; this module sits below it.)"""
    from strongroom.enums import AccountStatus, CredentialStatus
    from strongroom.models import ApiKey, AuthSession, ExchangeAccount, ExchangeCredential

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            accounts = conn.scalar(select(func.count()).select_from(ExchangeAccount)
                                   .where(ExchangeAccount.status != AccountStatus.DISCONNECTED)) or 0
            credentials = conn.scalar(select(func.count()).select_from(ExchangeCredential)
                                      .where(ExchangeCredential.status != CredentialStatus.REVOKED)) or 0
            keys = conn.scalar(select(func.count()).select_from(ApiKey)) or 0
            sessions = conn.scalar(select(func.count()).select_from(AuthSession)) or 0
    except DBAPIError as exc:
        raise _unreachable(url, exc) from None
    finally:
        engine.dispose()
    return accounts + credentials + keys + sessions


def hashed_records(url: str) -> int:
    """Return how many rows were hashed with the pepper: API keys and sessions (a new pepper orphans them)."""
    from strongroom.models import ApiKey, AuthSession

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            keys = conn.scalar(select(func.count()).select_from(ApiKey)) or 0
            sessions = conn.scalar(select(func.count()).select_from(AuthSession)) or 0
    except DBAPIError as exc:
        raise _unreachable(url, exc) from None
    finally:
        engine.dispose()
    return keys + sessions


def _lost_key(path: Path, count: int) -> DataError:
    return DataError(f"the master key file {path} is missing, but the database holds {count} record{'s' if count != 1 else ''} sealed "
                     "with a master key: restore the file from your backup (or point STRONGROOM_DATA_DIR or "
                     "STRONGROOM_MASTER_KEY_FILE at it)")


def check_ready(settings: Settings) -> Schema:
    """Return the schema state if every command may run now; create nothing.

    Raises DataError: no data directory or database (the fix: ``strongroom db upgrade`` or
    ``STRONGROOM_DATA_DIR``), database unreachable, not migrated or at another revision, or no
    master key file.
    """
    url = settings.effective_database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise _missing_database(settings, path)
    state = schema(url)
    if state.current is None:
        raise DataError(f"the database {state.database} is not set up: {UPGRADE_HINT}")
    if not state.up_to_date:
        if state.current in _known_revisions():
            raise DataError(f"the database {state.database} has schema {state.current}, this version needs "
                            f"{state.head}: {UPGRADE_HINT}")
        raise DataError(f"the database {state.database} has schema {state.current}, which this version of "
                        "Strongroom does not know (it is newer): upgrade Strongroom")
    if not settings.master_keys and settings.key_provider == "file":  # an HSM or KMS is checked by build_core
        key_file = settings.effective_master_key_file.resolve()
        if not key_file.exists():
            count = sealed_records(url)
            if count:
                raise _lost_key(key_file, count)
            raise DataError(f"no master key file at {key_file}: set STRONGROOM_DATA_DIR (or "
                            f"STRONGROOM_MASTER_KEY_FILE) to the server's, or {UPGRADE_HINT} to create one")
    return state


def tighten(settings: Settings) -> tuple[Path, ...]:
    """Make the data directory 0700 and every file we keep 0600: each regular file in the data
    directory (master key, SQLite database and its -wal/-shm, locks, the bootstrap password), and
    the master key file and SQLite database where settings put them elsewhere. Symbolic links are
    left alone. Returns the paths whose modes were changed (empty: all were tight already).
    """
    data_dir = settings.data_dir
    files: list[Path] = []
    dirs: list[Path] = [data_dir]
    if data_dir.is_dir():
        files += [p for p in data_dir.iterdir() if not p.name.startswith("..")]
    db_file = sqlite_path(settings.effective_database_url)
    if db_file is not None:
        files += [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")]
    if not settings.master_keys:
        files.append(settings.effective_master_key_file)
    return tuple(_chmod(dirs, 0o700, stat.S_ISDIR) + _chmod(dict.fromkeys(files), 0o600, stat.S_ISREG))


def _chmod(paths: Iterable[Path], mode: int, kind: Callable[[int], bool]) -> list[Path]:
    """Set ``mode`` on each of ``paths`` of ``kind`` that group or others may use; return those changed."""
    changed = []
    for path in paths:
        try:
            info = path.lstat()
        except OSError:
            continue  # not there (or not ours to see)
        if not kind(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
            continue
        try:
            os.chmod(path, mode)
        except OSError:
            continue  # not ours: the operator's to fix
        changed.append(path)
    return changed


def _known_revisions() -> set[str]:
    return set(revisions())


def _create_sqlite_file(path: Path) -> bool:
    """Create an empty SQLite file with mode 0600 (its directory 0700 if new); return True if created."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def prepare(settings: Settings) -> Prepared:
    """Create what is missing and migrate: the database, its schema, the master key file.

    Returns what it did. Raises DataError (unreachable database, a schema newer than this
    version, or a missing master key file next to data sealed with one: nothing is changed then).
    """
    url = settings.effective_database_url
    path = sqlite_path(url)
    key_file = (None if settings.master_keys or settings.key_provider != "file"
                else settings.effective_master_key_file.resolve())
    if path is not None and not path.exists():
        before: str | None = None
        existed = False
    else:
        state = schema(url)
        if state.current is not None and state.current not in _known_revisions():
            raise DataError(f"the database {state.database} has schema {state.current}, which this version of "
                            "Strongroom does not know (it is newer): upgrade Strongroom")
        before, existed = state.current, True
        if key_file is not None and not key_file.exists() and before is not None:
            count = sealed_records(url)
            if count:
                raise _lost_key(key_file, count)
    if key_file is None and settings.master_keys:
        load_provider(Path("."), settings.master_keys)  # malformed material fails here, before any change
    head = head_revision()
    created_file = _create_sqlite_file(path) if path is not None else False
    try:
        try:
            if before != head:
                from strongroom.migrations import upgrade  # (Alembic: imported only when there is work)

                upgrade(url)
        except BaseException:
            if created_file and path is not None:  # leave nothing half made
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    leftover.unlink(missing_ok=True)
            raise
    except DBAPIError as exc:
        raise _unreachable(url, exc) from None
    key_created = False
    if key_file is not None and not key_file.exists():
        key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        load_provider(key_file, None)  # creates it, mode 0600
        key_created = True
    return Prepared(display_url(url), created_file or (existed and before is None), before, head, key_file,
                    key_created, tighten(settings))
