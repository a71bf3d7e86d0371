"""``strongroom keys``: list, show, create, generate, disable, enable, revoke, roll platform API keys of any user.

Keys are made, rolled and revoked with their owner's rights (a key never exceeds its owner),
audited under the owner from client ``cli:<OS user>``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from strongroom.audit.usage import OUTCOMES
from strongroom.cli import shapes
from strongroom.cli.context import OPERATOR, confirm, every, fail, open_core, user_id
from strongroom.cli.output import iso, note, record, said, table

app = typer.Typer(help="Platform API keys of any user: list, show, create, generate, disable, enable, revoke, "
                  "roll.",
                  no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Scopes = Annotated[str, typer.Option(help="Comma-separated scopes (read, write, delete, read::x, ...).")]
COLUMNS = [("key_id", "KEY ID"), ("username", "USER"), ("name", "NAME"), ("kind", "KIND"), ("scopes", "SCOPES"),
           ("enabled", "ENABLED"), ("expires_at", "EXPIRES"), ("last_used_at", "LAST USED")]
FIELDS = ["key_id", "username", "user_id", "name", "kind", "scopes", "account_ids", "ip_allowlist", "enabled",
          "expires_at", "hint", "created_at", "updated_at", "last_used_at"]


class SecretKind(StrEnum):
    BEARER = "bearer"
    HMAC = "hmac"


class PairKind(StrEnum):
    RSA = "rsa"
    ED25519 = "ed25519"


def _scopes(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


@app.command("list")
def keys_list(user: Annotated[str | None, typer.Option(help="Only this user's keys.")] = None,
              as_json: Json = False) -> None:
    """List API keys: every user's, or one user's."""
    with open_core() as core:
        owner = user_id(core, user) if user else None
        keys = every(lambda cursor: core.api_keys.list_any(OPERATOR, user_id=owner, cursor=cursor, limit=200))
        names = core.users.usernames(OPERATOR, {k.user_id for k in keys})
    table([shapes.key(k, names) for k in keys], COLUMNS, as_json=as_json, empty="no API keys")


@app.command("show")
def keys_show(key_id: Annotated[str, typer.Argument(help="The key id.")], as_json: Json = False) -> None:
    """Show one key (never its secret)."""
    with open_core() as core:
        key = core.api_keys.get_any(OPERATOR, key_id)
        names = core.users.usernames(OPERATOR, [key.user_id])
    data = shapes.key(key, names)
    record(data, as_json=as_json, fields=FIELDS + (["public_key"] if key.public_key else []))


@app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="The owner's username.")],
    name: Annotated[str, typer.Option(help="Key name.")],
    kind: Annotated[SecretKind, typer.Option(help="bearer (sent as is) or hmac (signs requests).")] = SecretKind.BEARER,
    scopes: Scopes = "read,write,delete",
    as_json: Json = False,
) -> None:
    """Create a bearer or HMAC key for a user; its secret is printed once (JSON: "secret")."""
    with open_core() as core:
        owner = core.users.principal_for(OPERATOR, user_id(core, user))
        key, secret = core.api_keys.create(owner, name=name, kind=kind.value, scopes=_scopes(scopes))
        names = {owner.user_id: owner.username}
    record({**shapes.key(key, names), "secret": secret}, as_json=as_json,
           fields=["key_id", "username", "name", "kind", "scopes", "secret"])
    note("the secret is shown only now: store it")


@app.command("generate")
def keys_generate(
    user: Annotated[str, typer.Option(help="The owner's username.")],
    name: Annotated[str, typer.Option(help="Key name.")],
    out: Annotated[Path, typer.Option(help="Where to write the private key (created, mode 0600; never overwritten).")],
    key_type: Annotated[PairKind, typer.Option(help="rsa or ed25519.")] = PairKind.RSA,
    scopes: Scopes = "read,write,delete",
    as_json: Json = False,
) -> None:
    """Generate a key pair for a user (usable with Kalshi's SDKs); prints the key id.

    The private key goes to --out and is stored nowhere else (JSON: the key, with "private_key_file").
    """
    with open_core() as core:
        owner = core.users.principal_for(OPERATOR, user_id(core, user))
        # Open the file first: a key whose private key could not be written would be unusable forever.
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fail(f"{out} exists; refusing to overwrite a private key")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
        try:
            key, private_pem = core.api_keys.generate(owner, name=name, key_type=key_type.value,
                                                      scopes=_scopes(scopes))
        except BaseException:
            os.close(fd)
            out.unlink(missing_ok=True)
            raise
        with os.fdopen(fd, "w") as fh:
            fh.write(private_pem)
        names = {owner.user_id: owner.username}
    if as_json:
        record({**shapes.key(key, names), "private_key_file": str(out.resolve())}, as_json=True)
    else:
        said(key.key_id)
        note(f"wrote the private key to {out} (mode 0600); it is not stored anywhere else")


def _set_enabled(key_id: str, enabled: bool, as_json: bool) -> None:
    with open_core() as core:
        key = core.api_keys.get_any(OPERATOR, key_id)
        owner = core.users.principal_for(OPERATOR, key.user_id)
        key = core.api_keys.update(owner, key.key_id, {"enabled": enabled})
        names = {owner.user_id: owner.username}
    if as_json:
        record(shapes.key(key, names), as_json=True)
    else:
        said(f"key {key.key_id} ({key.name} of {owner.username}) is {'enabled' if enabled else 'disabled'}")


@app.command("disable")
def keys_disable(key_id: Annotated[str, typer.Argument(help="The key id.")], as_json: Json = False) -> None:
    """Disable a key: every server process refuses it (as disabled) within a second, until enabled."""
    _set_enabled(key_id, False, as_json)


@app.command("enable")
def keys_enable(key_id: Annotated[str, typer.Argument(help="The key id.")], as_json: Json = False) -> None:
    """Enable a disabled key again."""
    _set_enabled(key_id, True, as_json)


@app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id.")], yes: Yes = False,
                as_json: Json = False) -> None:
    """Revoke (delete) a key: every server process refuses it within a second."""
    with open_core() as core:
        key = core.api_keys.get_any(OPERATOR, key_id)
        owner = core.users.principal_for(OPERATOR, key.user_id)
        confirm(f"Revoke key {key.key_id} ({key.name!r} of {owner.username})?", yes)
        core.api_keys.delete(owner, key.key_id)
        names = {owner.user_id: owner.username}
    if as_json:
        record({**shapes.key(key, names), "revoked": True}, as_json=True)
    else:
        said(f"revoked key {key.key_id} ({key.name} of {owner.username})")


@app.command("roll")
def keys_roll(
    key_id: Annotated[str, typer.Argument(help="The key id.")],
    grace_seconds: Annotated[int, typer.Option(min=0, max=30 * 24 * 3600,
                                               help="How long the old secret keeps working (0: not at all).")] = 0,
    as_json: Json = False,
) -> None:
    """Give a bearer or HMAC key a new secret, printed once (JSON: "secret")."""
    with open_core() as core:
        key = core.api_keys.get_any(OPERATOR, key_id)
        owner = core.users.principal_for(OPERATOR, key.user_id)
        key, secret = core.api_keys.roll(owner, key.key_id, grace_seconds)
        names = {owner.user_id: owner.username}
    record({**shapes.key(key, names), "secret": secret}, as_json=as_json,
           fields=["key_id", "username", "name", "kind", "secret"])
    note("the new secret is shown only now: store it" + (f"; the old one works for {grace_seconds} s more"
                                                         if grace_seconds else "; the old one no longer works"))


USAGE_COLUMNS = [("hour", "HOUR"), *((o, o.upper()) for o in OUTCOMES)]


@app.command("usage")
def keys_usage(
    key_id: Annotated[str, typer.Argument(help="The key id.")],
    since: Annotated[datetime | None, typer.Option("--from", help="From this time (ISO 8601, UTC).")] = None,
    until: Annotated[datetime | None, typer.Option("--to", help="Up to this time (ISO 8601, UTC).")] = None,
    as_json: Json = False,
) -> None:
    """A key's verifications per hour and outcome (written in batches: up to a minute late)."""
    with open_core() as core:
        key = core.api_keys.get_any(OPERATOR, key_id)
        owner = core.users.principal_for(OPERATOR, key.user_id)
        rows = core.api_keys.usage(owner, key.key_id, _utc(since), _utc(until))
    hours: dict[datetime, dict[str, object]] = {}
    for hour, outcome, count in rows:
        hours.setdefault(hour, {"hour": iso(hour), **dict.fromkeys(OUTCOMES, 0)})[outcome] = count
    table(list(hours.values()), USAGE_COLUMNS, as_json=as_json, empty="no verifications recorded")


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
