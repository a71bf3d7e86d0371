"""The JSON shapes of the command line: stable keys, the /v1 API's names, never a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.cli.output import iso

if TYPE_CHECKING:
    from strongroom.models import ApiKey, AuditEvent, ExchangeAccount, User


def user(u: User) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "email": u.email, "is_admin": u.is_admin,
            "usage_level": u.usage_level, "disabled": u.disabled, "created_at": iso(u.created_at), "updated_at": iso(u.updated_at)}


def key(k: ApiKey, usernames: dict[int, str]) -> dict[str, Any]:
    return {"key_id": k.key_id, "user_id": k.user_id, "username": usernames.get(k.user_id), "name": k.name,
            "kind": k.kind, "scopes": list(k.scopes), "account_ids": k.account_ids,
            "ip_allowlist": list(k.ip_allowlist), "enabled": k.enabled, "expires_at": iso(k.expires_at),
            "hint": k.hint, "public_key": k.public_key, "created_at": iso(k.created_at),
            "updated_at": iso(k.updated_at), "last_used_at": iso(k.last_used_at)}


def account(a: ExchangeAccount, usernames: dict[int, str]) -> dict[str, Any]:
    return {"id": a.id, "public_id": str(a.public_id), "user_id": a.user_id, "username": usernames.get(a.user_id),
            "exchange": a.exchange, "name": a.name, "account_type": a.account_type, "status": a.status,
            "key_hint": a.key_hint, "validated_at": iso(a.validated_at), "validation_result": a.validation_result,
            "created_at": iso(a.created_at), "updated_at": iso(a.updated_at),
            "disconnected_at": iso(a.disconnected_at)}


def event(e: AuditEvent) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "actor_user_id": e.actor_user_id, "actor_key_id": e.actor_key_id,
            "action": e.action, "target": e.target, "client_ip": e.client_ip, "outcome": e.outcome,
            "details": e.details or {}}
