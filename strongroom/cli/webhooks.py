"""``strongroom webhooks list|deliveries|replay``: every user's webhook endpoints, their deliveries, and a
replay (audited as ``webhook.replay`` by the operator). Never a secret."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strongroom.cli.context import OPERATOR, open_core
from strongroom.cli.output import iso, record, said, table

if TYPE_CHECKING:
    from strongroom.webhooks import DeliveryView, EndpointView

app = typer.Typer(help="Webhook endpoints and their deliveries: list, deliveries, replay.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]
ENDPOINT_COLUMNS = [("id", "ID"), ("user_id", "USER"), ("url", "URL"), ("signing", "SIGNING"),
                    ("all_users", "ALL USERS"), ("enabled", "ENABLED"), ("failing_since", "FAILING SINCE"),
                    ("disabled_reason", "DISABLED")]
DELIVERY_COLUMNS = [("id", "ID"), ("event_type", "EVENT"), ("status", "STATUS"), ("attempts", "ATTEMPTS"),
                    ("last_status_code", "LAST"), ("next_attempt_at", "NEXT"), ("created_at", "CREATED")]


class StatusChoice(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


def endpoint_shape(view: EndpointView) -> dict[str, Any]:
    """An endpoint as JSON (its public key, never a secret)."""
    return {"id": view.id, "user_id": view.user_id, "url": view.url, "description": view.description,
            "event_types": view.event_types, "signing": str(view.signing), "public_key": view.public_key,
            "all_users": view.all_users, "enabled": view.enabled, "disabled_reason": view.disabled_reason,
            "failing_since": iso(view.failing_since),
            "created_at": iso(view.created_at), "updated_at": iso(view.updated_at)}


def delivery_shape(view: DeliveryView) -> dict[str, Any]:
    """A delivery as JSON, with its attempts."""
    return {"id": view.id, "event_id": view.event_id, "event_type": view.event_type, "status": str(view.status),
            "attempts": view.attempts, "last_status_code": view.last_status_code,
            "next_attempt_at": iso(view.next_attempt_at), "created_at": iso(view.created_at),
            "delivered_at": iso(view.delivered_at),
            "attempt_log": [{"attempt": a.attempt, "at": iso(a.at), "status_code": a.status_code,
                             "latency_ms": a.latency_ms, "error_kind": a.error_kind,
                             "response_excerpt": a.response_excerpt} for a in view.attempt_log]}


@app.command("list")
def webhooks_list(
    user: Annotated[str | None, typer.Option(help="Only this user's endpoints (username).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many endpoints (oldest first).")] = 200,
    as_json: Json = False,
) -> None:
    """List webhook endpoints of every user (or one)."""
    from strongroom.cli.context import user_id

    with open_core() as core:
        owner = user_id(core, user) if user else None
        page = core.webhooks.list(OPERATOR, limit=limit, user_id=owner)
    table([endpoint_shape(v) for v in page.items], ENDPOINT_COLUMNS, as_json=as_json, empty="no webhook endpoints")


@app.command("deliveries")
def webhooks_deliveries(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (wh_...).")],
    status: Annotated[StatusChoice | None, typer.Option(help="Only deliveries in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many of the newest deliveries.")] = 50,
    as_json: Json = False,
) -> None:
    """List an endpoint's deliveries, newest first (JSON: with every attempt)."""
    from strongroom.enums import DeliveryStatus

    with open_core() as core:
        page = core.webhooks.deliveries(OPERATOR, endpoint_id, limit=limit,
                                        status=DeliveryStatus(status.value) if status else None)
    table([delivery_shape(d) for d in page.items], DELIVERY_COLUMNS, as_json=as_json, empty="no deliveries")


@app.command("replay")
def webhooks_replay(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (wh_...).")],
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id (dlv_...).")],
    as_json: Json = False,
) -> None:
    """Send a delivery's event to its endpoint again (a new delivery, the same webhook-id)."""
    with open_core() as core:
        delivery = core.webhooks.replay(OPERATOR, endpoint_id, delivery_id)
    if as_json:
        record(delivery_shape(delivery), as_json=True)
    else:
        said(f"delivery {delivery.id} of event {delivery.event_id} queued")
