"""Annotated dependencies of the surfaces' routes: one per capability (a route takes what it uses, never
the whole core), the client's address, and the caller (``CurrentPrincipal``, the gate's).

Each capability is given as its async façade (its ``interfaces.py`` protocol): a route awaits it and never
hops to a thread itself (``tests/architecture/test_surfaces_async.py``). The authenticator is the one
exception to "façade": it is the auth pipeline, async already.

The core is the composition root: built once at start-up (``app.state.core``); only this module reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from strongroom.accounts import Accounts, Credentials
from strongroom.audit import Audit
from strongroom.auth.facts import client_ip
from strongroom.auth.pipeline import Authenticator
from strongroom.balances import Balances
from strongroom.events import Events
from strongroom.exchanges.catalogue import Catalogue
from strongroom.exchanges.gateway import ExchangeGateway
from strongroom.http.gate import CurrentPrincipal, current_principal
from strongroom.keys import Keys
from strongroom.trading import Trading
from strongroom.users import Sessions, Users
from strongroom.webhooks import Webhooks

if TYPE_CHECKING:
    from strongroom.core import Core


def _core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


async def get_accounts(request: Request) -> Accounts:
    """Exchange accounts (the capability's async façade)."""
    return _core(request).accounts


async def get_credentials(request: Request) -> Credentials:
    """Stored exchange credentials (Cadenza's credentials; the accounts capability's async façade)."""
    return _core(request).credential_service


async def get_keys(request: Request) -> Keys:
    """Platform API keys (the capability's async façade)."""
    return _core(request).key_service


async def get_balances(request: Request) -> Balances:
    """Balance snapshots and their valuation (the capability's async façade)."""
    return _core(request).balances


async def get_trading(request: Request) -> Trading:
    """Orders and risk policies (the trading capability's async façade)."""
    return _core(request).trading


async def get_webhooks(request: Request) -> Webhooks:
    """Webhook endpoints and their deliveries (the capability's async façade)."""
    return _core(request).webhook_service


async def get_events(request: Request) -> Events:
    """The event log (what happened: keys, accounts, balances, the master key)."""
    return _core(request).event_service


async def get_users(request: Request) -> Users:
    """Users (the capability's async façade)."""
    return _core(request).user_service


async def get_sessions(request: Request) -> Sessions:
    """Sessions: access and refresh tokens (the users capability's async façade)."""
    return _core(request).session_service


async def get_audit(request: Request) -> Audit:
    """The audit log (the capability's async façade)."""
    return _core(request).audit_log


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
CredentialsDep = Annotated[Credentials, Depends(get_credentials)]
KeysDep = Annotated[Keys, Depends(get_keys)]
BalancesDep = Annotated[Balances, Depends(get_balances)]
TradingDep = Annotated[Trading, Depends(get_trading)]
UsersDep = Annotated[Users, Depends(get_users)]
SessionsDep = Annotated[Sessions, Depends(get_sessions)]
AuditDep = Annotated[Audit, Depends(get_audit)]
EventsDep = Annotated[Events, Depends(get_events)]
WebhooksDep = Annotated[Webhooks, Depends(get_webhooks)]
AuthDep = Annotated[Authenticator, Depends(get_auth)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
GatewayDep = Annotated[ExchangeGateway, Depends(get_gateway)]
PingDep = Annotated[Callable[[], None], Depends(get_ping)]
ClientIP = Annotated[str | None, Depends(peer_ip)]

__all__ = ["AccountsDep", "AuditDep", "AuthDep", "BalancesDep", "CatalogueDep", "ClientIP", "CredentialsDep",
           "CurrentPrincipal", "EventsDep", "GatewayDep", "KeysDep", "PingDep", "SessionsDep", "TradingDep", "UsersDep",
           "WebhooksDep", "current_principal", "peer_ip"]
