"""Every call the console makes into Strongroom's services, and nothing else: the one seam between the pages
and the capabilities (the same service calls as /v1's routes, never the HTTP API through loopback).

Each function is async: it awaits the capabilities' async façades (``core.accounts``, ``core.key_service``,
``core.user_service``, ...), which run their engines' database work in a worker thread; what has no façade yet
(the raw session refresh, the jobs) runs in a worker thread here.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from anyio import to_thread

from strongroom.accounts import AccountQuery, ByCursor
from strongroom.balances import HistoryPoint, Portfolio, Snapshot
from strongroom.core import Core
from strongroom.enums import AuthMethod, JobStatus
from strongroom.errors import Unauthenticated
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.jobs import JobView, QueueStats
from strongroom.models import ApiKey, AuditEvent, ExchangeAccount, User
from strongroom.pagination import Page
from strongroom.principal import Principal
from strongroom.users import TokenPair
from strongroom.vault import MasterKeyStatus

P = ParamSpec("P")
T = TypeVar("T")
PAGE = 25  # rows per page of every list
PORTFOLIO_DAYS = 30  # the portfolio chart's span


async def _run(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await to_thread.run_sync(lambda: call(*args, **kwargs))


# --- sessions --------------------------------------------------------------------------------


async def sign_in(core: Core, username: str, password: str, client_ip: str | None) -> tuple[Principal, TokenPair]:
    """Check a username and password (the users service: its failure budget per address and its audit rows)
    and start a session. Raises SignInRefused, RateLimited."""
    principal = await core.user_service.sign_in(username, password, client_ip, scheme=AuthMethod.CONSOLE)
    return principal, await core.session_service.issue(principal)


# A refresh token used twice ends its session (leak detection): two pages of one browser asking at once after
# the access token expired would sign it out. Within RENEWAL_SECONDS of a renewal, the sessions capability gives
# each such page a pair of its own in the same family instead, in the database, so it holds in every process.
RENEWAL_SECONDS = 30


async def resume(core: Core, access: str, refresh: str, client_ip: str | None) -> tuple[Principal, TokenPair | None]:
    """Return the principal of a console session and, when its access token had expired, the session's new
    token pair (its refresh token rotated). Raises Unauthenticated when the session is over."""
    cached = core.sessions.resolve_cached(access)
    snap = await core.session_service.resolve(access) if cached is False else cached
    if snap is not None:
        return snap.principal(client_ip=client_ip, scheme=AuthMethod.CONSOLE), None
    if not refresh:
        raise Unauthenticated("the session is over")
    pair = await core.session_service.renew(refresh, client_ip, reuse_grace_seconds=RENEWAL_SECONDS)
    snap = await core.session_service.resolve(pair.access_token)
    if snap is None:
        raise Unauthenticated("the session is over")
    return snap.principal(client_ip=client_ip, scheme=AuthMethod.CONSOLE), pair


async def sign_out(core: Core, principal: Principal, access: str) -> None:
    """End the session on the server (its refresh family too)."""
    await core.session_service.logout(principal, access)


def csrf_token(core: Core, seed: str) -> str:
    """The CSRF token of a console session: a keyed digest of its cookie's random seed."""
    return core.hasher.memory_key("console-csrf", seed).hex()


# --- exchanges and accounts ------------------------------------------------------------------


def exchanges(core: Core) -> list[ExchangeInfo]:
    return list(core.catalogue.all())


def exchange(core: Core, name: str) -> ExchangeInfo:
    """One venue by id or alias (NotFound otherwise)."""
    return core.catalogue.get(name)


async def list_accounts(core: Core, principal: Principal, cursor: str | None, *, status: str | None = None,
                        limit: int = PAGE, balances: bool = True) -> tuple[Page[ExchangeAccount], dict[int, Snapshot]]:
    """A page of the accounts the principal sees, with their last snapshots (unless not ``balances``)."""
    page = await core.accounts.find(principal, AccountQuery(statuses=[status] if status else None),
                                    ByCursor(cursor, limit))
    wanted = balances and page.items
    return page, await core.balances.latest_many(principal, (a.id for a in page.items)) if wanted else {}


async def get_account(core: Core, principal: Principal, account_id: int) -> ExchangeAccount:
    return await core.accounts.get(principal, account_id)


async def connect_account(core: Core, principal: Principal, exchange: str, credentials: dict[str, str], *,
                          name: str | None, account_type: str | None) -> ExchangeAccount:
    return await core.accounts.connect(principal, exchange, credentials, name=name, account_type=account_type)


async def rename_account(core: Core, principal: Principal, account_id: int, name: str) -> ExchangeAccount:
    return await core.accounts.rename(principal, account_id, name)


async def set_account_enabled(core: Core, principal: Principal, account_id: int, enabled: bool) -> ExchangeAccount:
    return await core.accounts.set_enabled(principal, account_id, enabled)


async def revalidate_account(core: Core, principal: Principal, account_id: int) -> ExchangeAccount:
    return await core.accounts.revalidate(principal, account_id)


async def rotate_account(core: Core, principal: Principal, account_id: int,
                         credentials: dict[str, str]) -> ExchangeAccount:
    return await core.accounts.rotate(principal, account_id, credentials)


async def disconnect_account(core: Core, principal: Principal, account_id: int) -> ExchangeAccount:
    return await core.accounts.disconnect(principal, account_id)


# --- balances --------------------------------------------------------------------------------


async def balances(core: Core, principal: Principal, account_id: int) -> tuple[Snapshot | None, list[HistoryPoint]]:
    """An account's last snapshot and its stored totals over time."""
    return (await core.balances.latest(principal, account_id),
            await core.balances.history(principal, account_id, limit=200))


async def refresh_balances(core: Core, principal: Principal, account_id: int) -> Snapshot:
    return await core.balances.refresh(principal, account_id)


async def portfolio(core: Core, principal: Principal) -> tuple[Portfolio, list[HistoryPoint]]:
    """The portfolio, and its value over the last 30 days (an hour's last state per point): the two reads run
    at once (each façade call in a worker thread of its own: the page waits for the slower, not for both)."""
    since = await core.balances.now() - timedelta(days=PORTFOLIO_DAYS)
    current, history = await asyncio.gather(core.balances.portfolio(principal),
                                            core.balances.portfolio_history(principal, since))
    return current, history


def now(core: Core) -> datetime:
    return core.balance_store.clock()  # the balances engine's clock (in memory: pages read it synchronously)


# --- API keys --------------------------------------------------------------------------------


async def list_keys(core: Core, principal: Principal, cursor: str | None, limit: int = PAGE) -> Page[ApiKey]:
    return await core.key_service.list(principal, cursor=cursor, limit=limit)


async def get_key(core: Core, principal: Principal, key_id: str) -> ApiKey:
    return await core.key_service.get(principal, key_id)


async def create_key(core: Core, principal: Principal, *, kind: str, name: str, scopes: list[str],
                     ip_allowlist: list[str] | None, expires_at: datetime | None,
                     account_ids: list[int] | None) -> tuple[ApiKey, str | None, str | None]:
    """Create a key; return it with its secret (bearer, hmac) or generated private key (rsa, ed25519), shown
    once. An rsa or ed25519 key made here is always a generated pair."""
    attrs: dict[str, Any] = {"name": name, "scopes": scopes, "ip_allowlist": ip_allowlist,
                             "expires_at": expires_at, "account_ids": account_ids}
    if kind in ("rsa", "ed25519"):
        key, private_pem = await core.key_service.generate(principal, key_type=kind, **attrs)
        return key, None, private_pem
    key, secret = await core.key_service.create(principal, kind=kind, **attrs)
    return key, secret, None


async def roll_key(core: Core, principal: Principal, key_id: str, grace_seconds: int) -> tuple[ApiKey, str]:
    return await core.key_service.roll(principal, key_id, grace_seconds)


async def set_key_enabled(core: Core, principal: Principal, key_id: str, enabled: bool) -> ApiKey:
    return await core.key_service.set_enabled(principal, key_id, enabled)


async def revoke_key(core: Core, principal: Principal, key_id: str) -> None:
    await core.key_service.delete(principal, key_id)


async def key_usage(core: Core, principal: Principal, key_id: str,
                    since: datetime | None) -> list[tuple[datetime, str, int]]:
    """``(hour, outcome, count)`` rows of one key, oldest first."""
    return await core.key_service.usage(principal, key_id, since, None)


# --- audit -----------------------------------------------------------------------------------


async def audit_page(core: Core, principal: Principal, cursor: str | None, *, action: str | None,
                     outcome: str | None, username: str | None, since: datetime | None, until: datetime | None,
                     limit: int = PAGE) -> Page[AuditEvent]:
    """A page of the audit log the principal may read, newest first, filtered. A username that names nobody
    the principal may see is NotFound."""
    user_id = (await core.user_service.by_username(principal, username)).id if username else None
    return await core.audit_log.list(principal, cursor=cursor, limit=limit, action=action or None, since=since,
                                     until=until, outcome=outcome or None, user_id=user_id)


async def usernames(core: Core, principal: Principal, user_ids: Iterable[int]) -> dict[int, str]:
    """``{id: username}`` of the actors on a page (an admin sees everyone's; others only their own)."""
    if not principal.is_admin:
        return {principal.user_id: principal.username}
    return await core.user_service.usernames(principal, user_ids)


# --- administration --------------------------------------------------------------------------


async def list_users(core: Core, principal: Principal, cursor: str | None, limit: int = PAGE) -> Page[User]:
    return await core.user_service.list(principal, cursor=cursor, limit=limit)


async def create_user(core: Core, principal: Principal, *, username: str, password: str, email: str | None,
                      is_admin: bool, usage_level: str) -> User:
    return await core.user_service.create(principal, username, password, email=email, is_admin=is_admin,
                                          usage_level=usage_level)


async def get_user(core: Core, principal: Principal, user_id: int) -> User:
    return await core.user_service.get(principal, user_id)


async def set_password(core: Core, principal: Principal, user_id: int, password: str) -> User:
    return await core.user_service.set_password(principal, user_id, password)


async def set_usage_level(core: Core, principal: Principal, user_id: int, level: str) -> User:
    return await core.user_service.set_usage_level(principal, user_id, level)


async def delete_user(core: Core, principal: Principal, user_id: int) -> None:
    await core.user_service.delete(principal, user_id)


async def master_key_status(core: Core, principal: Principal) -> MasterKeyStatus:
    """The master key's versions and what is sealed under each (admins only: Forbidden otherwise)."""
    return await core.master_keys.status(principal)


def new_seed() -> str:
    """A fresh random value for a console cookie (the CSRF token is derived from it)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class JobRow:
    name: str
    interval: float
    leased: bool  # once per deployment (under a lease) rather than in every process
    holder: str | None  # who holds, or last held, the lease


async def jobs(core: Core, principal: Principal) -> list[JobRow]:
    """The periodic jobs of this process and, for leased ones, who holds their lease (admins only)."""
    _admin(principal)
    housekeeping = core.housekeeping

    def load() -> list[JobRow]:
        leases = housekeeping.leases
        return [JobRow(job.name, job.interval, job.leased,
                       leases.holder_of(job.name) if job.leased and leases is not None else None)
                for job in housekeeping.jobs]
    return await _run(load)


# --- durable jobs (admins only; retry and cancel audited as the CLI's are) ---------------------


def _admin(principal: Principal) -> None:
    from strongroom.errors import Forbidden

    if not principal.is_admin:
        raise Forbidden("only admins see the jobs")


async def job_page(core: Core, principal: Principal, cursor: str | None, *, status: str | None, kind: str | None,
                   limit: int = PAGE) -> tuple[Page[JobView], QueueStats]:
    """A page of the durable jobs, newest first (never their payloads), and the queue's figures."""
    _admin(principal)

    def load() -> tuple[Page[JobView], QueueStats]:
        return (core.jobs.page(status=JobStatus(status) if status else None, kind=kind or None, cursor=cursor,
                               limit=limit), core.jobs.stats())
    return await _run(load)


async def retry_job(core: Core, principal: Principal, job_id: int) -> JobView:
    """Queue a dead or canceled job again, audited ``job.retry`` in the same transaction (Conflict otherwise)."""
    return await _run(core.jobs.retry, principal, job_id)


async def cancel_job(core: Core, principal: Principal, job_id: int) -> JobView:
    """Cancel a queued or running job, audited ``job.cancel`` in the same transaction (Conflict otherwise)."""
    return await _run(core.jobs.cancel, principal, job_id)
