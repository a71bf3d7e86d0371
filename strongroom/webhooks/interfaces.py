"""The webhooks capability's contract: endpoints as their owners manage them (the docstrings are the contract).

Every method is async: the database work (and the URL's DNS check) runs in a worker thread inside the façade, once
per call, never in a surface. Deliveries are the job runner's (:mod:`strongroom.webhooks.delivery`). A secret is
returned only by ``create`` and ``rotate_secret``, once.
"""

from __future__ import annotations

from typing import Any, Protocol

from strongroom.enums import DeliveryStatus
from strongroom.pagination import Page
from strongroom.principal import Principal
from strongroom.webhooks.services import DeliveryView, EndpointView


class Webhooks(Protocol):
    """Webhook endpoints and their deliveries."""

    async def create(self, principal: Principal, *, url: str, event_types: list[str] | None = None,
                     description: str | None = None, signing: str = "hmac",
                     all_users: bool = False) -> tuple[EndpointView, str]:
        """Create an endpoint of the caller's; return it and what is shown once: the ``whsec_`` secret (hmac) or
        the ``whpk_`` public key (ed25519). With ``all_users`` (admins only) it receives every user's events.
        Raises InsufficientScope, ValidationFailed (all_users for a non-admin among them), BadRequest /
        AddressRefused (the URL), LimitExceeded (too many endpoints)."""
        ...

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50,
                   user_id: int | None = None) -> Page[EndpointView]:
        """Return a page of endpoints, oldest first: the caller's own; an admin's: every user's (or ``user_id``'s).
        Raises InsufficientScope, ValidationFailed (cursor, limit)."""
        ...

    async def get(self, principal: Principal, endpoint_id: str) -> EndpointView:
        """Return one endpoint the caller may see. Raises InsufficientScope, NotFound."""
        ...

    async def update(self, principal: Principal, endpoint_id: str, changes: dict[str, Any]) -> EndpointView:
        """Change an endpoint's url, event types, description or enabled state; return it. Raises
        InsufficientScope, NotFound, ValidationFailed, AddressRefused (the URL)."""
        ...

    async def delete(self, principal: Principal, endpoint_id: str) -> None:
        """Delete an endpoint and its deliveries. Raises InsufficientScope, NotFound."""
        ...

    async def rotate_secret(self, principal: Principal, endpoint_id: str) -> tuple[EndpointView, str]:
        """Give an endpoint a new signing secret (the old one still signs for 24 h); return it and the new secret
        or public key, shown once. Raises InsufficientScope, NotFound."""
        ...

    async def test(self, principal: Principal, endpoint_id: str) -> DeliveryView:
        """Send a ``webhook.test`` event to this endpoint only; return its delivery. Raises InsufficientScope,
        NotFound, Conflict (a disabled endpoint)."""
        ...

    async def replay(self, principal: Principal, endpoint_id: str, delivery_id: str) -> DeliveryView:
        """Deliver an earlier delivery's event again (a new delivery); return it. Raises InsufficientScope,
        NotFound."""
        ...

    async def deliveries(self, principal: Principal, endpoint_id: str, *, cursor: str | None = None, limit: int = 50,
                         status: DeliveryStatus | None = None) -> Page[DeliveryView]:
        """Return a page of an endpoint's deliveries, newest first, each with its attempts. Raises
        InsufficientScope, NotFound, ValidationFailed (cursor, limit)."""
        ...
