"""``strongroom backup PATH`` and ``strongroom restore PATH`` (see strongroom/services/backups.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.context import confirm, open_core
from strongroom.cli.output import emit_json, note, said

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]
Where = Annotated[Path, typer.Argument(help="The backup directory (a new one for backup).")]


def _versions(manifest: dict[str, object]) -> str:
    entries = manifest["key_versions"]
    assert isinstance(entries, list)
    return ", ".join(f"{e['version']} ({e['provider']}, {e['records']})" for e in entries) or "none"


def backup(path: Where, as_json: Json = False) -> None:
    """Back up the database, consistently, while the server runs; record which master keys it needs.

    SQLite: SQLite's online backup API. PostgreSQL: pg_dump (custom format). Key material is not in
    the backup: keep the key file (or the HSM/KMS keys) backed up separately.
    """
    from strongroom.services.backups import backup as make

    with open_core() as core:
        done = make(core, path)
    if as_json:
        emit_json({"path": str(done.path.resolve()), **done.manifest})
        return
    said(f"backed up the {done.manifest['database']} database to {done.path.resolve()}")
    said(f"it needs master key versions: {_versions(done.manifest)}")
    note("the backup holds no key material: keep the key file (or HSM/KMS keys) backed up separately")


def restore(path: Where, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
            as_json: Json = False) -> None:
    """Restore a backup into the configured database (replacing what it holds).

    Refuses, before writing anything, when the configured key source lacks a master key version the
    backup uses (naming it) or holds another pepper. Run 'strongroom db upgrade' afterwards if the
    backup is from an older version (serve does it by itself).
    """
    from strongroom.crypto.providers import build_keys
    from strongroom.datastore import display_url
    from strongroom.services.backups import check_keys, read_manifest
    from strongroom.services.backups import restore as put_back
    from strongroom.settings import load_settings

    settings = load_settings()
    manifest = read_manifest(path)
    keys = build_keys(settings)
    check_keys(manifest, keys)
    url = settings.effective_database_url
    confirm(f"Replace the database {display_url(url)} with the backup of {manifest['created_at']}?", yes)
    put_back(url, keys, path)
    if as_json:
        emit_json({"restored": str(Path(path).resolve()), "database": display_url(url), **manifest})
        return
    said(f"restored the backup of {manifest['created_at']} into {display_url(url)}")
    said(f"master key versions in use: {_versions(manifest)}")


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
