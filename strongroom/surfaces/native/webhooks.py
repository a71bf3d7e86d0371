"""/v1/webhooks: webhook endpoints (Standard Webhooks), their deliveries, test events and replays."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from strongroom.enums import DeliveryStatus, EventType, WebhookSigning
from strongroom.errors import BadRequest, Conflict, LimitExceeded
from strongroom.surfaces.deps import CurrentPrincipal, WebhooksDep
from strongroom.surfaces.native.schemas import Cursor, Limit, PageOut
from strongroom.surfaces.openapi import body_example, raises
from strongroom.webhooks import DeliveryView, EndpointView

api = APIRouter(prefix="/webhooks", tags=["webhooks"])

EndpointIdPath = Annotated[str, Path(description="The webhook endpoint's id.", examples=["wh_5f2b9c0e7a1d4e8f9b3c6a20"])]
DeliveryIdPath = Annotated[str, Path(description="The delivery's id.", examples=["dlv_0c1d2e3f4a5b6c7d8e9f0a1b"])]
URL = Field(description="Where deliveries are POSTed: http or https. A host resolving to a loopback, private, "
                        "link-local, CGNAT or metadata address is refused (400) unless the operator allows it.",
            examples=["https://hooks.example.com/strongroom"], max_length=2048)
TYPES = Field(description="The event types sent to it; empty: every type its owner may see.",
              examples=[["api_key.revoked", "exchange_account.invalidated"]])
DESCRIPTION = Field(description="A note for people (at most 500 characters).", examples=["alerts bot"],
                    max_length=500)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = URL
    event_types: list[EventType] = Field(default_factory=list, description=TYPES.description,
                                         examples=TYPES.examples)
    description: str = Field("", description=DESCRIPTION.description, examples=DESCRIPTION.examples, max_length=500)
    signing: WebhookSigning = Field(WebhookSigning.HMAC, description="hmac: v1 signatures with a whsec_ secret "
                                    "(shown once); ed25519: v1a signatures, verified with the whpk_ public key.")
    all_users: bool = Field(False, description="Admins only: the endpoint receives every user's events (narrowed "
                                               "by event_types), not only its owner's.", examples=[False])


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description=URL.description, examples=URL.examples, max_length=2048)
    event_types: list[EventType] | None = Field(None, description=TYPES.description, examples=TYPES.examples)
    description: str | None = Field(None, description=DESCRIPTION.description, examples=DESCRIPTION.examples,
                                    max_length=500)
    enabled: bool | None = Field(None, description="false turns deliveries off; true turns them on again and "
                                                   "clears the failure streak.")


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The endpoint's id.", examples=["wh_5f2b9c0e7a1d4e8f9b3c6a20"])
    user_id: int = Field(description="Its owner's user id.", examples=[2])
    url: str = Field(description="Where deliveries are POSTed.", examples=["https://hooks.example.com/strongroom"])
    description: str = Field(description="A note for people.", examples=["alerts bot"])
    event_types: list[str] = Field(description="The event types sent to it; empty: all.", examples=[["api_key.revoked"]])
    signing: WebhookSigning = Field(description="hmac (v1) or ed25519 (v1a).")
    public_key: str | None = Field(description="ed25519: the whpk_ public key that verifies its v1a signatures.",
                                   examples=[None])
    enabled: bool = Field(description="Whether events are delivered to it.", examples=[True])
    disabled_reason: str | None = Field(description="Why it was disabled (410 Gone, failing for days, its owner).",
                                        examples=[None])
    failing_since: datetime | None = Field(description="Since when every delivery has failed; null: not failing.",
                                           examples=[None])
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until when the previous secret still signs beside the new one.", examples=[None])
    created_at: datetime = Field(description="When it was created.", examples=["2026-12-07T10:00:00Z"])
    updated_at: datetime = Field(description="When it was last changed.", examples=["2026-12-07T10:00:00Z"])
    all_users: bool = Field(description="An admin's endpoint receiving every user's events.", examples=[False])


class WebhookCreated(WebhookOut):
    secret: str = Field(description="hmac: the whsec_ signing secret; ed25519: the whpk_ public key. Shown in this "
                                    "response only.", examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int = Field(description="Its number, from 1.", examples=[1])
    at: datetime = Field(description="When it was made.", examples=["2026-12-07T10:00:00Z"])
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.", examples=[200])
    latency_ms: float = Field(description="Milliseconds until the answer (or the failure).", examples=[41.7])
    error_kind: str | None = Field(description="Why it failed: status (a non-2xx answer), timeout, connect, "
                                               "address_refused (the SSRF guard), ...; null: delivered.",
                                   examples=[None])
    response_excerpt: str | None = Field(description="The first 200 characters of the answer's body.",
                                         examples=["ok"])


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The delivery's id.", examples=["dlv_0c1d2e3f4a5b6c7d8e9f0a1b"])
    event_id: str = Field(description="The event's id: the webhook-id header of every attempt.",
                          examples=["evt_6a1c2e3f4a5b0b5e7f9e3a4c"])
    event_type: str = Field(description="The event's type.", examples=["api_key.revoked"])
    status: DeliveryStatus = Field(description="pending (waiting for its next attempt), sending, delivered or "
                                               "failed (out of attempts, 410, or its endpoint disabled).")
    attempts: int = Field(description="Attempts made.", examples=[1])
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending only).",
                                             examples=[None])
    last_status_code: int | None = Field(description="The last answer's HTTP status.", examples=[200])
    created_at: datetime = Field(description="When the delivery was made.", examples=["2026-12-07T10:00:00Z"])
    delivered_at: datetime | None = Field(description="When a 2xx came back.", examples=["2026-12-07T10:00:00Z"])
    attempt_log: list[AttemptOut] = Field(description="Every attempt, oldest first.")


def _out(view: EndpointView) -> WebhookOut:
    return WebhookOut.model_validate(view)


def _delivery(view: DeliveryView) -> DeliveryOut:
    return DeliveryOut.model_validate(view)


@api.post("", summary="Create a webhook endpoint.", response_model=WebhookCreated, status_code=201,
          openapi_extra=body_example({"url": "https://hooks.example.com/strongroom",
                                      "event_types": ["api_key.revoked"], "description": "alerts bot",
                                      "signing": "hmac"}))
@raises(BadRequest, LimitExceeded)
async def create_webhook(body: WebhookCreate, principal: CurrentPrincipal, webhooks: WebhooksDep) -> WebhookCreated:
    """Create an endpoint receiving your events, signed per Standard Webhooks (an admin's with
    ``all_users``: every user's events). ``secret`` is the whsec_ secret (hmac) or the whpk_ public key
    (ed25519), in this response only. A URL whose host resolves to a non-public address is refused
    (400 webhook_url_refused)."""
    view, shown = await webhooks.create(principal, url=body.url, event_types=[str(t) for t in body.event_types],
                                  description=body.description, signing=body.signing.value,
                                  all_users=body.all_users)
    return WebhookCreated(**_out(view).model_dump(), secret=shown)


@api.get("", summary="List webhook endpoints.", response_model=PageOut[WebhookOut])
async def list_webhooks(principal: CurrentPrincipal, webhooks: WebhooksDep, cursor: Cursor = None,
                  limit: Limit = 50) -> PageOut[WebhookOut]:
    """Your endpoints, oldest first (an admin: every user's), a page at a time. Never a secret."""
    page = await webhooks.list(principal, cursor=cursor, limit=limit)
    return PageOut(items=[_out(v) for v in page.items], next_cursor=page.next_cursor)


@api.get("/{endpoint_id}", summary="Read a webhook endpoint.", response_model=WebhookOut)
async def get_webhook(endpoint_id: EndpointIdPath, principal: CurrentPrincipal, webhooks: WebhooksDep) -> WebhookOut:
    """One endpoint (404 for another user's)."""
    return _out(await webhooks.get(principal, endpoint_id))


@api.patch("/{endpoint_id}", summary="Change a webhook endpoint.", response_model=WebhookOut,
           openapi_extra=body_example({"event_types": [], "enabled": True}))
@raises(BadRequest)
async def update_webhook(endpoint_id: EndpointIdPath, body: WebhookUpdate, principal: CurrentPrincipal,
                   webhooks: WebhooksDep) -> WebhookOut:
    """Change the URL (checked again), event types, description or enabled."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if "event_types" in changes and changes["event_types"] is not None:
        changes["event_types"] = [str(t) for t in changes["event_types"]]
    for name in ("url", "description", "enabled"):
        if name in changes and changes[name] is None:
            del changes[name]
    return _out(await webhooks.update(principal, endpoint_id, changes))


@api.delete("/{endpoint_id}", summary="Delete a webhook endpoint.", status_code=204)
async def delete_webhook(endpoint_id: EndpointIdPath, principal: CurrentPrincipal, webhooks: WebhooksDep) -> Response:
    """Delete the endpoint, its secret and its deliveries' records."""
    await webhooks.delete(principal, endpoint_id)
    return Response(status_code=204)


@api.post("/{endpoint_id}/rotate-secret", summary="Give a webhook endpoint a new signing secret.",
          response_model=WebhookCreated)
@raises(Conflict)
async def rotate_webhook_secret(endpoint_id: EndpointIdPath, principal: CurrentPrincipal,
                          webhooks: WebhooksDep) -> WebhookCreated:
    """A new secret (or Ed25519 key), in this response only; for 24 h every delivery also carries the previous
    secret's signature, so receivers can switch at their pace."""
    view, shown = await webhooks.rotate_secret(principal, endpoint_id)
    return WebhookCreated(**_out(view).model_dump(), secret=shown)


@api.post("/{endpoint_id}/test", summary="Send a test event to a webhook endpoint.", response_model=DeliveryOut,
          status_code=202)
@raises(Conflict)
async def test_webhook(endpoint_id: EndpointIdPath, principal: CurrentPrincipal, webhooks: WebhooksDep) -> DeliveryOut:
    """Send a ``webhook.test`` event to this endpoint only; its delivery is returned (pending): read the
    outcome in its deliveries."""
    return _delivery(await webhooks.test(principal, endpoint_id))


@api.get("/{endpoint_id}/deliveries", summary="List a webhook endpoint's deliveries.",
         response_model=PageOut[DeliveryOut])
async def list_deliveries(endpoint_id: EndpointIdPath, principal: CurrentPrincipal, webhooks: WebhooksDep,
                    cursor: Cursor = None, limit: Limit = 50,
                    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in this state.")]
                    = None) -> PageOut[DeliveryOut]:
    """The endpoint's deliveries, newest first, each with every attempt: status code, latency, a short excerpt
    of the answer and the kind of error."""
    page = await webhooks.deliveries(principal, endpoint_id, cursor=cursor, limit=limit, status=status)
    return PageOut(items=[_delivery(d) for d in page.items], next_cursor=page.next_cursor)


@api.post("/{endpoint_id}/deliveries/{delivery_id}/replay", summary="Send a delivery again.",
          response_model=DeliveryOut, status_code=202)
@raises(Conflict)
async def replay_delivery(endpoint_id: EndpointIdPath, delivery_id: DeliveryIdPath, principal: CurrentPrincipal,
                    webhooks: WebhooksDep) -> DeliveryOut:
    """Send the delivery's event to this endpoint again, as a new delivery (the same webhook-id)."""
    return _delivery(await webhooks.replay(principal, endpoint_id, delivery_id))
