"""Annotated dependencies of the surfaces' routes: one per capability (a route takes what it uses, never
the whole core), the client's address, and the caller (``CurrentPrincipal``, the gate's).

The core is the composition root: built once at start-up (``app.state.core``); only this module reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from strongroom.accounts import Accounts, CredentialService
from strongroom.audit import AuditService
from strongroom.auth.facts import client_ip
from strongroom.auth.pipeline import Authenticator
from strongroom.balances import Balances
from strongroom.exchanges.catalogue import Catalogue
from strongroom.exchanges.gateway import ExchangeGateway
from strongroom.http.gate import CurrentPrincipal, current_principal
from strongroom.keys import ApiKeyService
from strongroom.users import SessionService, UserService
from strongroom.webhooks import WebhookService

if TYPE_CHECKING:
    from strongroom.core import Core


def _core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


async def get_accounts(request: Request) -> Accounts:
    """Exchange accounts (the capability's async façade)."""
    return _core(request).accounts


async def get_credentials(request: Request) -> CredentialService:
    """Stored exchange credentials (Cadenza's credentials)."""
    return _core(request).credentials


async def get_keys(request: Request) -> ApiKeyService:
    """Platform API keys."""
    return _core(request).api_keys


async def get_balances(request: Request) -> Balances:
    """Balance snapshots and their valuation (the capability's async façade)."""
    return _core(request).balances


async def get_webhooks(request: Request) -> WebhookService:
    """Webhook endpoints and their deliveries."""
    return _core(request).webhooks


async def get_users(request: Request) -> UserService:
    """Users."""
    return _core(request).users


async def get_sessions(request: Request) -> SessionService:
    """Sessions: access and refresh tokens."""
    return _core(request).sessions


async def get_audit(request: Request) -> AuditService:
    """The audit log."""
    return _core(request).audit


async def get_auth(request: Request) -> Authenticator:
    """The authenticator (refreshing a session goes through its failure budgets)."""
    return _core(request).auth


async def get_catalogue(request: Request) -> Catalogue:
    """The exchange catalogue."""
    return _core(request).catalogue


async def get_gateway(request: Request) -> ExchangeGateway:
    """The exchange gateway (public market data)."""
    gateway: ExchangeGateway = _core(request).gateway
    return gateway


async def get_ping(request: Request) -> Callable[[], None]:
    """The database's liveness check (raises if the database does not answer)."""
    return _core(request).db.ping


async def peer_ip(request: Request) -> str | None:
    """The client's IP, believing X-Forwarded-For only from the configured trusted proxies."""
    trusted = request.app.state.trusted_proxies
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for") if trusted else None, trusted)


AccountsDep = Annotated[Accounts, Depends(get_accounts)]
CredentialsDep = Annotated[CredentialService, Depends(get_credentials)]
KeysDep = Annotated[ApiKeyService, Depends(get_keys)]
BalancesDep = Annotated[Balances, Depends(get_balances)]
UsersDep = Annotated[UserService, Depends(get_users)]
WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
SessionsDep = Annotated[SessionService, Depends(get_sessions)]
AuditDep = Annotated[AuditService, Depends(get_audit)]
AuthDep = Annotated[Authenticator, Depends(get_auth)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
GatewayDep = Annotated[ExchangeGateway, Depends(get_gateway)]
PingDep = Annotated[Callable[[], None], Depends(get_ping)]
ClientIP = Annotated[str | None, Depends(peer_ip)]

__all__ = ["AccountsDep", "AuditDep", "AuthDep", "BalancesDep", "CatalogueDep", "ClientIP", "CredentialsDep",
           "CurrentPrincipal", "GatewayDep", "KeysDep", "PingDep", "SessionsDep", "UsersDep", "WebhooksDep",
           "current_principal", "peer_ip"]
