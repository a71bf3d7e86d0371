"""Balances and valuation through stored credentials (issue 9).

THIS MODULE IS THE CONTRACT the surfaces code against (3Commas, Cadenza, /v1): its dataclasses
and ``BalanceService``'s public methods. Money is ``Decimal`` end to end; surfaces render it as
decimal strings without exponents (``format(d, "f")``), never floats. Valuation rules, and the
``AssetValue`` they produce: ``strongroom.balances.valuation`` (the lower layer: it imports nothing
from this module).

How a refresh goes (``refresh``; ``refresh_portfolio`` does the same for many accounts at once):

1. In a worker thread: the account must be the principal's to see (else NotFound) and
   refreshable (``active``; ``unverified`` accounts are on venues without live support). Its
   credentials are decrypted in memory only.
2. On the event loop, through the shared ``ExchangeGateway`` (pooled clients, per-venue limits,
   shared markets and tickers): if the key's permissions were last checked more than
   ``balance_key_check_seconds`` ago (and withdrawal keys are not allowed), the venue's key check
   first (Binance: apiRestrictions; OKX: account config ``perm``); then ``fetch_balance`` for the
   account type and the venue's tickers, concurrently.
3. In a worker thread: the snapshot is stored only if the account still holds the credentials
   that were read and is still refreshable (a conditional UPDATE claims the row first).

Refusals: the venue rejects the key now -> the account becomes ``invalid`` (conditional UPDATE on
the credentials and status read, audited ``account.invalidate``), CredentialsRejected (409). The
key check finds withdrawal permission (and STRONGROOM_ALLOW_WITHDRAWAL_KEYS is off) -> the
account becomes ``suspended`` (audited ``account.suspend``), WithdrawalPermission. Exchange down
or rate limited -> ExchangeUnavailable (503 + Retry-After), nothing changes and the last snapshot
stays readable. No ccxt text ever reaches an error, a snapshot or a log line.

Pruning (``prune``): snapshots older than 7 days are thinned to one per account per hour, older
than 90 days to one per account per day (the newest of each hour/day is kept), at most ``batch``
rows per pass. Never on a request's path: the leased ``prune-snapshots`` job (``strongroom.jobs``,
wired by the core) runs ``prune_all`` once an hour per deployment.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, Protocol
from uuid import UUID

import anyio.to_thread
from sqlalchemy import Select, and_, delete, func, literal, select, union_all, update
from sqlalchemy.orm import Session

from strongroom import events
from strongroom.accounts import events as account_events
from strongroom.audit.services import AuditService
from strongroom.balances import valuation
from strongroom.balances.figures import DAY, HistoryPoint, Profits
from strongroom.balances.figures import profits as profits_over
from strongroom.balances.valuation import AssetValue
from strongroom.db import Database, rowcount
from strongroom.enums import LIVE_STATUSES, AccountStatus, EventType
from strongroom.errors import (
    Conflict,
    CredentialsRejected,
    DomainError,
    ExchangeNotSupported,
    ExchangeUnavailable,
    Forbidden,
    InvalidCredentials,
    NotFound,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo
from strongroom.exchanges.outcomes import AssetBalance, ValidationOutcome
from strongroom.exchanges.venues import venue_for
from strongroom.models import BalanceSnapshot, ExchangeAccount, User
from strongroom.pagination import valid_id
from strongroom.principal import SYSTEM, Principal
from strongroom.scopes import READ
from strongroom.settings import Settings
from strongroom.vault.services import Vault

log = logging.getLogger("strongroom.balances")

ACTIVE = AccountStatus.ACTIVE
REFRESHABLE: tuple[str, ...] = (AccountStatus.ACTIVE, AccountStatus.UNVERIFIED)
LIVE: tuple[str, ...] = tuple(sorted(LIVE_STATUSES))

HOURLY_AFTER = timedelta(days=7)  # older snapshots: one per account per hour
DAILY_AFTER = timedelta(days=90)  # older still: one per account per day
PRUNE_BATCH = 1000  # rows deleted at most per pass (each of the two passes)
PRUNE_EVERY_SECONDS = 3600.0  # the pruning job's interval (once per deployment)
PRUNE_PASSES = 20  # prune_all: at most this many batches per run (the rest waits for the next run)
HISTORY_LIMIT = 10_000  # points returned at most by history() (the newest of the range)

REJECTED_MESSAGE = ("the exchange rejects this account's credentials; the account is marked invalid "
                    "(rotate the credentials, or revalidate once the key works again)")
WITHDRAWAL_MESSAGE = ("this account's key can withdraw funds, so the account is suspended; rotate it to a key "
                      "without withdrawal permission (or the operator may set STRONGROOM_ALLOW_WITHDRAWAL_KEYS)")
CHANGED_MESSAGE = "the account changed while its balances were being read; try again"


# --- the contract ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """A stored load of one account's balances (no secret in it)."""

    id: int
    account_id: int
    fetched_at: datetime  # timezone-aware UTC
    assets: tuple[AssetValue, ...]  # sorted by USD value descending, unpriced last
    total_usd: Decimal  # sum of the priced assets
    total_btc: Decimal
    unpriced_assets: int
    account_type: str = ""  # the account type the balances were read for (spot, margin, ...)

    def age_seconds(self, now: datetime) -> float:
        """Seconds between ``fetched_at`` and ``now``."""
        return (now - self.fetched_at).total_seconds()


@dataclass(frozen=True)
class AccountTotals:
    """One account's part of a portfolio: its last snapshot (None if never loaded).

    ``refreshed`` is True when ``refresh_portfolio`` loaded it just now; ``error`` is the code of
    the DomainError that kept it from being refreshed (``exchange_unavailable``,
    ``credentials_rejected``, ``withdrawal_permission``, ``exchange_not_supported``, ``conflict``
    for a disabled account, ...), None otherwise (always None from ``portfolio``).
    """

    account_id: int
    snapshot: Snapshot | None
    public_id: UUID | None = None
    exchange: str = ""
    name: str = ""
    account_type: str = ""
    status: str = ""
    refreshed: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Portfolio:
    """All the caller's live accounts (those the principal sees): totals per asset and per account."""

    accounts: tuple[AccountTotals, ...]
    assets: tuple[AssetValue, ...]  # summed across accounts, by asset
    total_usd: Decimal
    total_btc: Decimal
    unpriced_assets: int
    user_id: int = 0  # whose accounts these are
    fetched_at: datetime | None = None  # the oldest snapshot's time (None if no account was ever loaded)


class BalanceGateway(Protocol):
    """What the service needs of ``strongroom.exchanges.gateway.ExchangeGateway``."""

    async def validate(self, info: ExchangeInfo, credentials: Mapping[str, str]) -> ValidationOutcome: ...

    async def fetch_balance(self, info: ExchangeInfo, credentials: Mapping[str, str],
                            account_type: str) -> dict[str, AssetBalance]: ...

    async def fetch_tickers(self, info: ExchangeInfo) -> dict[str, Decimal]: ...


# --- internals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A refresh that passed every check that needs no exchange call. ``credentials`` never leave memory."""

    account_id: int
    info: ExchangeInfo
    account_type: str
    status: str
    nonce: bytes = field(repr=False)  # identifies the credentials read (a rotation changes it)
    credentials: dict[str, str] = field(repr=False)
    check_key: bool = False


@dataclass(frozen=True)
class _Loaded:
    """Valued balances of a plan, not yet stored."""

    plan: _Plan
    fetched_at: datetime
    assets: tuple[AssetValue, ...]


@dataclass(frozen=True)
class _Row:
    """What a portfolio needs of one account row."""

    id: int
    public_id: UUID
    exchange: str
    name: str
    account_type: str
    status: str


def _asset_doc(value: AssetValue) -> dict[str, str | None]:
    def text(number: Decimal | None) -> str | None:
        return None if number is None else valuation.render(number)

    return {"asset": value.asset, "free": valuation.render(value.free), "used": valuation.render(value.used),
            "total": valuation.render(value.total), "usd": text(value.usd), "btc": text(value.btc),
            "usd_price": text(value.usd_price)}


def _asset_of(doc: Mapping[str, Any]) -> AssetValue:
    def number(key: str) -> Decimal | None:
        raw = doc.get(key)
        return None if raw is None else Decimal(str(raw))

    return AssetValue(asset=str(doc["asset"]), free=Decimal(str(doc["free"])), used=Decimal(str(doc["used"])),
                      total=Decimal(str(doc["total"])), usd=number("usd"), btc=number("btc"),
                      usd_price=number("usd_price"))


def _snapshot_of(row: BalanceSnapshot) -> Snapshot:
    return Snapshot(id=row.id, account_id=row.account_id, fetched_at=row.fetched_at,
                    assets=tuple(_asset_of(doc) for doc in row.assets), total_usd=Decimal(row.total_usd),
                    total_btc=Decimal(row.total_btc), unpriced_assets=row.unpriced_assets,
                    account_type=row.account_type)


def _visible_accounts(principal: Principal, account_ids: Iterable[int]) -> Any:
    """Return the condition on ``ExchangeAccount`` selecting those of ``account_ids`` the principal sees (its
    own, within a key's binding; an admin's: any), or None when none can be."""
    ids = sorted({i for i in account_ids if valid_id(i) and principal.sees_account(i)})
    if not ids:
        return None
    condition = ExchangeAccount.id.in_(ids)
    return condition if principal.is_admin else and_(condition, ExchangeAccount.user_id == principal.user_id)


def _utc(moment: datetime) -> datetime:
    """Return ``moment`` as aware UTC (a naive datetime is taken to be UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _system_clock() -> datetime:
    return datetime.now(UTC)


class BalanceService:
    """Reads balances through the gateway with credentials opened in memory only, values them from
    the venue's public tickers, and stores snapshots.

    Every method taking a principal needs scope ``read``; a key bound to accounts sees only those
    (NotFound otherwise). ``clock`` returns the current aware UTC time (tests inject one).
    """

    def __init__(self, db: Database, settings: Settings, audit: AuditService, vault: Vault, catalogue: Catalogue,
                 gateway: BalanceGateway, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.vault = vault
        self.catalogue = catalogue
        self.gateway = gateway
        self.clock: Callable[[], datetime] = clock or _system_clock

    # --- reads (no exchange call) ---------------------------------------------------------------

    def latest(self, principal: Principal, account_id: int) -> Snapshot | None:
        """Return the account's last snapshot (no exchange call), None if it was never loaded.

        Works for every status, disconnected included (history is kept). Raises NotFound (not the
        principal's), InsufficientScope.
        """
        principal.require(READ)
        with self.db.session() as session:
            self._visible(session, principal, account_id)
            row = session.scalars(self._latest_query(account_id)).first()
            return None if row is None else _snapshot_of(row)

    def latest_many(self, principal: Principal, account_ids: Iterable[int]) -> dict[int, Snapshot]:
        """Return the last snapshot of each of ``account_ids`` that the principal sees and that was ever
        loaded, by account id, in one query (for account lists). Others are simply absent.

        Raises InsufficientScope.
        """
        principal.require(READ)
        with self.db.session() as session:
            return self._latest_in(session, principal, account_ids)

    @staticmethod
    def _latest_in(session: Session, principal: Principal, account_ids: Iterable[int]) -> dict[int, Snapshot]:
        """:meth:`latest_many` in ``session``."""
        visible = _visible_accounts(principal, account_ids)
        if visible is None:
            return {}
        newest = (select(BalanceSnapshot.id).where(BalanceSnapshot.account_id == ExchangeAccount.id)
                  .order_by(BalanceSnapshot.fetched_at.desc(), BalanceSnapshot.id.desc()).limit(1)
                  .correlate(ExchangeAccount).scalar_subquery())
        accounts = select(newest).where(visible)
        rows = session.scalars(select(BalanceSnapshot).where(BalanceSnapshot.id.in_(accounts))).all()
        return {row.account_id: _snapshot_of(row) for row in rows}

    def profits_many(self, principal: Principal, account_ids: Iterable[int], now: datetime) -> dict[int, Profits]:
        """Return the profits of each of ``account_ids`` the principal sees and that has a snapshot, by account
        id (others absent), as :func:`strongroom.balances.figures.profits` gives them over the account's whole
        history: all-time from its first snapshot to its last, the day's from its last one at or before
        ``now - 24h`` (else the first). In one query whatever the number of accounts and snapshots: only the
        three snapshots that decide it are read (for account lists). Raises InsufficientScope.
        """
        principal.require(READ)
        visible = _visible_accounts(principal, account_ids)
        if visible is None:
            return {}
        since = _utc(now) - DAY
        newest = (BalanceSnapshot.fetched_at.desc(), BalanceSnapshot.id.desc())
        oldest = (BalanceSnapshot.fetched_at.asc(), BalanceSnapshot.id.asc())

        def pick(order: tuple[Any, ...], *where: Any) -> Any:
            return (select(BalanceSnapshot.id).where(BalanceSnapshot.account_id == ExchangeAccount.id, *where)
                    .order_by(*order).limit(1).correlate(ExchangeAccount).scalar_subquery())

        picks = select(ExchangeAccount.id.label("account_id"), pick(oldest).label("first"),
                       pick(newest, BalanceSnapshot.fetched_at <= since).label("day"),
                       pick(newest).label("last")).where(visible).subquery()
        # one statement (each account's three picks joined to the snapshots they name), so one snapshot: the ids
        # picked in one statement and read in the next were gone if pruning (or a deletion) came in between
        query = (select(picks.c.account_id, picks.c.first, picks.c.day, picks.c.last, BalanceSnapshot.id,
                        BalanceSnapshot.fetched_at, BalanceSnapshot.total_usd, BalanceSnapshot.total_btc)
                 .select_from(picks)
                 .join(BalanceSnapshot, BalanceSnapshot.id.in_([picks.c.first, picks.c.day, picks.c.last])))
        picked: dict[int, list[int]] = {}
        points: dict[int, HistoryPoint] = {}
        with self.db.session() as session:
            for account_id, first, day, last, i, at, usd, btc in session.execute(query):
                picked[account_id] = [j for j in (first, day, last) if j is not None]
                points[i] = HistoryPoint(at=_utc(at), usd=Decimal(usd), btc=Decimal(btc))
        # first, the day's start, last: in that order in time (ids may repeat: one snapshot, or none in the day)
        return {account_id: profits_over([points[i] for i in dict.fromkeys(chosen)], now)
                for account_id, chosen in picked.items()}

    def snapshot_at(self, principal: Principal, account_id: int, at: datetime) -> Snapshot | None:
        """Return the account's last snapshot taken at or before ``at`` (e.g. a day ago, for day profit),
        None if there is none. Raises NotFound, InsufficientScope.
        """
        principal.require(READ)
        with self.db.session() as session:
            self._visible(session, principal, account_id)
            row = session.scalars(self._latest_query(account_id).where(BalanceSnapshot.fetched_at <= _utc(at))).first()
            return None if row is None else _snapshot_of(row)

    def history(self, principal: Principal, account_id: int, since: datetime | None = None,
                until: datetime | None = None, *, limit: int = HISTORY_LIMIT) -> list[HistoryPoint]:
        """Return the account's stored totals over time, oldest first: every snapshot with ``since <=
        fetched_at <= until`` (either bound optional; naive datetimes are UTC), at most ``limit`` (the
        newest of the range). Raises NotFound, InsufficientScope, ValidationFailed (since after until).
        """
        principal.require(READ)
        since = None if since is None else _utc(since)
        until = None if until is None else _utc(until)
        if since is not None and until is not None and since > until:
            raise ValidationFailed("'from' must not be after 'to'", fields={"from": "after 'to'"})
        limit = max(1, min(int(limit), HISTORY_LIMIT))
        query = (select(BalanceSnapshot.fetched_at, BalanceSnapshot.total_usd, BalanceSnapshot.total_btc)
                 .where(BalanceSnapshot.account_id == account_id))
        if since is not None:
            query = query.where(BalanceSnapshot.fetched_at >= since)
        if until is not None:
            query = query.where(BalanceSnapshot.fetched_at <= until)
        query = query.order_by(BalanceSnapshot.fetched_at.desc(), BalanceSnapshot.id.desc()).limit(limit)
        with self.db.session() as session:
            self._visible(session, principal, account_id)
            rows = session.execute(query).all()
        return [HistoryPoint(at=at, usd=Decimal(usd), btc=Decimal(btc)) for at, usd, btc in reversed(rows)]

    def portfolio(self, principal: Principal, *, user_id: int | None = None) -> Portfolio:
        """Return the last known totals of every live account the principal sees (no exchange call).

        ``user_id``: whose accounts (default the principal's own; another user's needs an admin, e.g. the
        CLI's operator). Raises InsufficientScope, Forbidden (another user's, not an admin), NotFound (no
        such user).
        """
        principal.require(READ)
        with self.db.session() as session:  # one transaction: the accounts and their last snapshots
            owner = self._owner(session, principal, user_id)
            rows = self._live_rows(session, principal, owner)
            snapshots = self._latest_in(session, principal, [r.id for r in rows])
        return self._portfolio(principal, owner, rows, {}, set(), snapshots)

    def portfolio_history(self, principal: Principal, since: datetime, *, user_id: int | None = None,
                          bucket_seconds: int = 3600) -> list[HistoryPoint]:
        """Return the portfolio's value over time from ``since``, oldest first (a chart): at the end of each
        bucket of ``bucket_seconds`` that holds a stored snapshot, the sum of every live account's last stored
        totals by then (an account counts from its first snapshot; one loaded before ``since`` from the start).
        A point's ``at`` is that bucket's last snapshot time to the whole second (``fetched_epoch``: no datetime
        is read per row). One query, whatever the number of accounts. Raises as :meth:`portfolio` does.
        """
        principal.require(READ)
        since = _utc(since)
        columns = (BalanceSnapshot.account_id, BalanceSnapshot.fetched_epoch, BalanceSnapshot.total_usd,
                   BalanceSnapshot.total_btc)
        with self.db.session() as session:
            owner = self._owner(session, principal, user_id)
            live = self._live_query(principal, owner).with_only_columns(ExchangeAccount.id).order_by(None)
            before = (select(BalanceSnapshot.id).where(BalanceSnapshot.account_id == ExchangeAccount.id,
                                                       BalanceSnapshot.fetched_at < since)
                      .order_by(BalanceSnapshot.fetched_at.desc(), BalanceSnapshot.id.desc()).limit(1)
                      .correlate(ExchangeAccount).scalar_subquery())
            # one statement (the start and the range as parts of one UNION ALL), so one snapshot: read in two, an
            # account disconnected in between counted its value before ``since`` but none of its later ones
            ordering = (BalanceSnapshot.fetched_at, BalanceSnapshot.id)
            both = union_all(
                select(literal(0).label("part"), *columns, *ordering).where(
                    BalanceSnapshot.id.in_(select(before).where(ExchangeAccount.id.in_(live)))),
                select(literal(1).label("part"), *columns, *ordering).where(
                    BalanceSnapshot.account_id.in_(live), BalanceSnapshot.fetched_at >= since)).subquery()
            found = session.execute(select(both.c.part, *(both.c[c.key] for c in columns))
                                    .order_by(both.c.part, both.c.fetched_at, both.c.id)).all()
        start = [row[1:] for row in found if row[0] == 0]
        rows = [row[1:] for row in found if row[0] == 1]
        last: dict[int, tuple[Decimal, Decimal]] = {a: (Decimal(u), Decimal(b)) for a, _, u, b in start}
        usd_sum = sum((v[0] for v in last.values()), Decimal(0))
        btc_sum = sum((v[1] for v in last.values()), Decimal(0))
        points: list[HistoryPoint] = []
        bucket: int | None = None
        last_at: int | None = None
        zero = (Decimal(0), Decimal(0))
        for account_id, epoch, usd, btc in rows:
            this = epoch // bucket_seconds
            if this != bucket and last_at is not None:  # a bucket's last state
                points.append(HistoryPoint(at=datetime.fromtimestamp(last_at, UTC), usd=usd_sum, btc=btc_sum))
            bucket, last_at = this, epoch
            new_usd, new_btc = Decimal(usd), Decimal(btc)
            old_usd, old_btc = last.get(account_id, zero)
            last[account_id] = (new_usd, new_btc)
            usd_sum += new_usd - old_usd
            btc_sum += new_btc - old_btc
        if last_at is not None:
            points.append(HistoryPoint(at=datetime.fromtimestamp(last_at, UTC), usd=usd_sum, btc=btc_sum))
        return points

    # --- live loads -----------------------------------------------------------------------------

    async def refresh(self, principal: Principal, account_id: int) -> Snapshot:
        """Load the balances live, value them, store and return the snapshot.

        Raises NotFound, InsufficientScope, Conflict (account disconnected or disabled, or changed during
        the load), ExchangeUnavailable (503 + Retry-After; the last snapshot stays readable),
        CredentialsRejected (409; the account becomes ``invalid``, audited; also for an account
        already invalid, without an exchange call), WithdrawalPermission (the account becomes
        ``suspended``, audited, unless allowed; also for an account already suspended),
        ExchangeNotSupported (no live support for the venue), CredentialsUnreadable.
        """
        principal.require(READ)
        plan = await anyio.to_thread.run_sync(self._plan_one, principal, account_id)
        loaded = await self._load(principal, plan)
        stored = await anyio.to_thread.run_sync(self._store, [loaded])
        snapshot = stored[0]
        if snapshot is None:
            await anyio.to_thread.run_sync(self._explain_unstored, plan)
            raise Conflict(CHANGED_MESSAGE)
        return snapshot

    def _active_ids(self) -> list[int]:
        with self.db.session() as session:
            return list(session.scalars(select(ExchangeAccount.id).where(ExchangeAccount.status == ACTIVE)
                                        .order_by(ExchangeAccount.id)))

    async def refresh_all(self, concurrency: int = 8) -> dict[str, int]:
        """Refresh every active account of every user (the optional scheduled refresh,
        ``STRONGROOM_BALANCE_REFRESH_SECONDS``), at most ``concurrency`` at once; the gateway keeps each venue
        within its own limits. A key the venue now rejects makes its account ``invalid`` (one that can withdraw:
        ``suspended``), with its event, as a client's refresh would; a moved total writes ``balances.changed``.

        Returns counts by outcome: ``stored``, or the error code of an account that could not be read (its
        last snapshot stays). Never raises for one account.
        """
        ids = await anyio.to_thread.run_sync(self._active_ids)
        limit = anyio.Semaphore(max(1, concurrency))
        counts: dict[str, int] = {}

        async def one(account_id: int) -> None:
            async with limit:
                try:
                    await self.refresh(SYSTEM, account_id)
                    outcome = "stored"
                except DomainError as exc:
                    outcome = exc.code
            counts[outcome] = counts.get(outcome, 0) + 1

        async with anyio.create_task_group() as group:
            for account_id in ids:
                group.start_soon(one, account_id)
        return counts

    async def refresh_or_latest(self, principal: Principal, account_id: int) -> Snapshot:
        """Refresh one account; if it cannot be loaded now (exchange unreachable, account not
        refreshable, key refused or able to withdraw), return its last snapshot instead, as
        :meth:`refresh_portfolio` does for every account.

        Raises what :meth:`refresh` raises when there is no snapshot to fall back on.
        """
        try:
            return await self.refresh(principal, account_id)
        except (Conflict, ExchangeUnavailable, WithdrawalPermission):
            last = await anyio.to_thread.run_sync(self.latest, principal, account_id)
            if last is None:
                raise
            return last

    async def refresh_portfolio(self, principal: Principal, *, user_id: int | None = None) -> Portfolio:
        """Refresh every live account the principal sees (concurrently, within the gateway's per-venue
        limits), then return the portfolio. An account that fails keeps its last snapshot and says why
        in ``AccountTotals.error``; accounts that cannot be refreshed (disabled, invalid, suspended,
        venues without live support) are not called. Raises InsufficientScope, Forbidden, NotFound
        (see ``portfolio``).
        """
        principal.require(READ)
        owner, rows, plans, failed = await anyio.to_thread.run_sync(self._plan_portfolio, principal, user_id)
        # at most the gateway's per-venue concurrency enters it at once: a large portfolio queues here
        # (without a deadline) instead of timing out on the gateway's call slots
        size = self.settings.exchange_concurrency_per_venue
        lanes = {venue: asyncio.Semaphore(size) for venue in {plan.info.id for plan in plans}}

        async def load(plan: _Plan) -> _Loaded | DomainError:
            async with lanes[plan.info.id]:
                return await self._load_or_error(principal, plan)

        outcomes = await asyncio.gather(*(load(plan) for plan in plans))
        loaded = [o for o in outcomes if isinstance(o, _Loaded)]
        for plan, outcome in zip(plans, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                failed[plan.account_id] = outcome.code
        return await anyio.to_thread.run_sync(self._finish_portfolio, principal, owner, rows, loaded, failed)

    def _finish_portfolio(self, principal: Principal, owner: int, rows: list[_Row], loaded: list[_Loaded],
                          failed: dict[int, str]) -> Portfolio:
        """Store the loaded snapshots, then read the portfolio back (one worker-thread hop for both)."""
        stored = self._store(loaded)
        refreshed: set[int] = set()
        for item, snapshot in zip(loaded, stored, strict=True):
            if snapshot is None:
                failed[item.plan.account_id] = Conflict.code
            else:
                refreshed.add(item.plan.account_id)
        return self._portfolio_after(principal, owner, rows, failed, refreshed)

    # --- maintenance ----------------------------------------------------------------------------

    def prune(self, now: datetime | None = None, *, account_ids: Sequence[int] | None = None,
              batch: int = PRUNE_BATCH) -> int:
        """Thin old snapshots (all accounts, or ``account_ids``): older than 7 days to the newest per hour,
        older than 90 days to the newest per day. Deletes at most ``batch`` rows per pass (two passes);
        returns how many were deleted. ``now`` defaults to the clock. No authorization: core use only.
        """
        now = _utc(now or self.clock())
        hourly_before = int((now - HOURLY_AFTER).timestamp())
        daily_before = int((now - DAILY_AFTER).timestamp())
        deleted = 0
        with self.db.session() as session:
            # newest per day for the oldest rows, then newest per hour between 90 and 7 days
            deleted += self._thin(session, account_ids, None, daily_before, 86_400, batch)
            deleted += self._thin(session, account_ids, daily_before, hourly_before, 3_600, batch)
        if deleted:
            log.info("pruned %d balance snapshots", deleted)
        return deleted

    def prune_all(self) -> int:
        """Prune every account until done or ``PRUNE_PASSES`` batches; return how many were deleted (the job)."""
        deleted = 0
        for _ in range(PRUNE_PASSES):
            done = self.prune()
            deleted += done
            if done < PRUNE_BATCH:
                break
        return deleted

    def record_snapshot(self, account_id: int, assets: Iterable[AssetValue], fetched_at: datetime,
                        account_type: str = "spot") -> Snapshot:
        """Store a snapshot of ``assets`` as fetched at ``fetched_at`` and return it.

        No authorization and no exchange call: for the core (imports) and tests. Raises NotFound if
        the account does not exist.
        """
        with self.db.session() as session:
            if session.get(ExchangeAccount, account_id) is None:
                raise NotFound("exchange account not found")
            return self._insert(session, account_id, account_type, _utc(fetched_at), tuple(assets))

    # --- planning -------------------------------------------------------------------------------

    def _plan_one(self, principal: Principal, account_id: int) -> _Plan:
        """Every check of ``refresh`` before the exchange call; return the plan (credentials opened)."""
        with self.db.session() as session:
            account = self._visible(session, principal, account_id)
        return self._plan_for(account)

    def _plan_for(self, account: ExchangeAccount) -> _Plan:
        """Return the refresh plan of ``account`` or raise the refusal its status calls for."""
        status = account.status
        if status == AccountStatus.DISCONNECTED:
            raise Conflict("this account is disconnected")
        if status == AccountStatus.DISABLED:
            raise Conflict("this account is disabled; enable it to read its balances")
        if status == AccountStatus.INVALID:
            raise CredentialsRejected(REJECTED_MESSAGE)
        if status == AccountStatus.SUSPENDED:
            raise WithdrawalPermission(WITHDRAWAL_MESSAGE)
        if status not in REFRESHABLE:  # a status this code does not know: refuse rather than guess
            raise Conflict(f"an account in status {status!r} cannot be refreshed")
        info = self.catalogue.get(account.exchange)
        if venue_for(info) is None:
            raise ExchangeNotSupported(f"{info.name} cannot be reached live: its balances cannot be read")
        credentials = self.vault.open_account_credentials(account)
        return _Plan(account_id=account.id, info=info, account_type=account.account_type, status=status,
                     nonce=account.nonce, credentials=credentials, check_key=self._key_check_due(account))

    def _key_check_due(self, account: ExchangeAccount) -> bool:
        """True if this refresh must check the key's permissions with the venue first."""
        if self.settings.allow_withdrawal_keys:
            return False  # the only thing the check would refuse is allowed
        checked = account.validated_at
        if checked is None:
            return True
        age = (self.clock() - _utc(checked)).total_seconds()
        return age >= self.settings.balance_key_check_seconds

    def _plan_portfolio(self, principal: Principal, user_id: int | None) -> tuple[
            int, list[_Row], list[_Plan], dict[int, str]]:
        """Return (owner, live account rows, plans of the refreshable ones, error code of the others)."""
        with self.db.session() as session:
            owner = self._owner(session, principal, user_id)
            query = self._live_query(principal, owner)
            accounts = list(session.scalars(query))
        rows = [self._row(a) for a in accounts]
        plans: list[_Plan] = []
        failed: dict[int, str] = {}
        for account in accounts:
            try:
                plans.append(self._plan_for(account))
            except DomainError as exc:
                failed[account.id] = exc.code
        return owner, rows, plans, failed

    # --- the exchange calls ---------------------------------------------------------------------

    async def _load(self, principal: Principal, plan: _Plan) -> _Loaded:
        """Check the key if due, read balances and prices; return them valued.

        Raises CredentialsRejected / WithdrawalPermission (after the status change), Conflict,
        ExchangeUnavailable, ExchangeNotSupported.
        """
        rejected = False
        try:
            if plan.check_key:
                outcome = await self.gateway.validate(plan.info, plan.credentials)
                if outcome.can_withdraw and not self.settings.allow_withdrawal_keys:
                    await anyio.to_thread.run_sync(functools.partial(
                        self._transition, principal, plan, AccountStatus.SUSPENDED, "withdrawal_permission"))
                    raise WithdrawalPermission(WITHDRAWAL_MESSAGE)
            balances, prices = await self._read(plan)
        except InvalidCredentials:
            rejected = True
        if rejected:  # outside the except block: nothing of the gateway's error is chained
            await anyio.to_thread.run_sync(functools.partial(
                self._transition, principal, plan, AccountStatus.INVALID, "invalid_credentials"))
            raise CredentialsRejected(REJECTED_MESSAGE)
        return _Loaded(plan, _utc(self.clock()), valuation.value_assets(balances, prices))

    async def _read(self, plan: _Plan) -> tuple[dict[str, AssetBalance], dict[str, Decimal]]:
        """Fetch the balance and the venue's prices concurrently; raise the balance's error first."""
        balance_task = asyncio.ensure_future(
            self.gateway.fetch_balance(plan.info, plan.credentials, plan.account_type))
        prices_task = asyncio.ensure_future(self.gateway.fetch_tickers(plan.info))
        balances, prices = await asyncio.gather(balance_task, prices_task, return_exceptions=True)
        if isinstance(balances, BaseException):
            raise balances
        if isinstance(prices, BaseException):
            raise prices
        return balances, prices

    async def _load_or_error(self, principal: Principal, plan: _Plan) -> _Loaded | DomainError:
        """``_load``, with a domain error returned instead of raised (one account of many)."""
        try:
            return await self._load(principal, plan)
        except DomainError as exc:
            return exc

    # --- writes ---------------------------------------------------------------------------------

    def _transition(self, principal: Principal, plan: _Plan, to: AccountStatus, result: str) -> None:
        """Move the account from the status it was planned in to ``to``, for the credentials read, audited.

        Raises Conflict if the account changed meanwhile to anything but ``to`` (rotated, disabled,
        disconnected); if another request made the same change first, nothing more is written.
        """
        now = self.clock()
        with self.db.session() as session:
            changed = rowcount(session.execute(
                update(ExchangeAccount)
                .where(ExchangeAccount.id == plan.account_id, ExchangeAccount.nonce == plan.nonce,
                       ExchangeAccount.status == plan.status)
                .values(status=to, validation_result=result, validated_at=now)
                .execution_options(synchronize_session=False)
            ))
            if changed == 1:
                action = "account.invalidate" if to == AccountStatus.INVALID else "account.suspend"
                self.audit.record(session, action, "ok", principal=principal, target=f"account:{plan.account_id}",
                                  details={"from": plan.status, "to": str(to), "reason": result,
                                           "exchange": plan.info.id, "via": "balances.refresh"})
                account = session.get(ExchangeAccount, plan.account_id)
                if account is not None:
                    account_events.status_changed(session, account, plan.status, to, result, "balances.refresh")
                log.info("account %s is now %s (%s)", plan.account_id, to, result)
                return
            current = session.scalar(select(ExchangeAccount.status).where(ExchangeAccount.id == plan.account_id))
        if current != to:
            raise Conflict(CHANGED_MESSAGE)

    def _store(self, loaded: Sequence[_Loaded]) -> list[Snapshot | None]:
        """Store each loaded snapshot whose account still holds the credentials read and is still
        refreshable (None for the others), in one transaction.
        """
        if not loaded:
            return []
        stored: list[Snapshot | None] = [None] * len(loaded)
        # rows are claimed in account order: two portfolio refreshes of one user never wait on each other in a cycle
        order = sorted(range(len(loaded)), key=lambda i: loaded[i].plan.account_id)
        with self.db.session() as session:
            for index in order:
                item = loaded[index]
                plan = item.plan
                values: dict[str, Any] = {"status": ExchangeAccount.status, "updated_at": ExchangeAccount.updated_at}
                if plan.check_key:
                    values.update(validated_at=item.fetched_at.replace(microsecond=0), validation_result="valid")
                claimed = rowcount(session.execute(
                    update(ExchangeAccount)
                    .where(ExchangeAccount.id == plan.account_id, ExchangeAccount.nonce == plan.nonce,
                           ExchangeAccount.status.in_(REFRESHABLE))
                    .values(**values)
                    .execution_options(synchronize_session=False)
                ))
                if claimed == 1:
                    stored[index] = self._insert(session, plan.account_id, plan.account_type, item.fetched_at,
                                                 item.assets)
        return stored

    def _insert(self, session: Session, account_id: int, account_type: str, fetched_at: datetime,
                assets: tuple[AssetValue, ...]) -> Snapshot:
        assets = tuple(sorted(assets, key=valuation.order_key))
        total_usd, total_btc, unpriced = valuation.totals(assets)
        row = BalanceSnapshot(account_id=account_id, fetched_at=fetched_at, fetched_epoch=int(fetched_at.timestamp()),
                              account_type=account_type, total_usd=valuation.render(total_usd),
                              total_btc=valuation.render(total_btc), unpriced_assets=unpriced,
                              assets=[_asset_doc(a) for a in assets])
        session.add(row)
        session.flush()
        self._moved(session, account_id, total_usd, fetched_at)
        return Snapshot(id=row.id, account_id=account_id, fetched_at=fetched_at, assets=assets, total_usd=total_usd,
                        total_btc=total_btc, unpriced_assets=unpriced, account_type=account_type)

    def moved_enough(self, baseline: Decimal, total: Decimal) -> bool:
        """Return True if an account's total moving from ``baseline`` to ``total`` (USD) is a change worth an
        event: by at least ``STRONGROOM_BALANCE_CHANGE_THRESHOLD_USD`` and at least
        ``STRONGROOM_BALANCE_CHANGE_THRESHOLD_PERCENT`` of the baseline (a zero baseline: the USD rule alone)."""
        delta = abs(total - baseline)
        if delta == 0 or delta < self.settings.balance_change_threshold_usd:
            return False
        return delta * 100 >= abs(baseline) * self.settings.balance_change_threshold_percent

    def _moved(self, session: Session, account_id: int, total_usd: Decimal, fetched_at: datetime) -> None:
        """Write ``balances.changed`` in ``session`` if ``total_usd`` moved far enough from the account's baseline
        (the total of its last such event, or of its first snapshot), and make it the new baseline.

        The baseline is replaced by a compare-and-set on the value read: of two snapshots stored at once,
        each compares with what the other left, and one event is written per move, never two.
        """
        baseline_text = session.scalar(select(ExchangeAccount.balance_baseline_usd)
                                       .where(ExchangeAccount.id == account_id))
        new_text = valuation.render(total_usd)
        if baseline_text is None:
            moved = False
        else:
            baseline = Decimal(baseline_text)
            moved = self.moved_enough(baseline, total_usd)
            if not moved:
                return
        cas = rowcount(session.execute(
            update(ExchangeAccount)
            .where(ExchangeAccount.id == account_id,
                   ExchangeAccount.balance_baseline_usd.is_(None) if baseline_text is None
                   else ExchangeAccount.balance_baseline_usd == baseline_text)
            .values(balance_baseline_usd=new_text, updated_at=ExchangeAccount.updated_at)
            .execution_options(synchronize_session=False)))
        if cas != 1 or not moved:
            return  # another snapshot moved it first (it wrote the event), or this is the first baseline
        account = session.get(ExchangeAccount, account_id)
        if account is None:
            return
        assert baseline_text is not None
        with localcontext(valuation.CONTEXT):
            change = valuation.clean(total_usd - Decimal(baseline_text))
        events.record(session, EventType.BALANCES_CHANGED, user_id=account.user_id, data={
            **account_events.account_data(account), "previous_total_usd": baseline_text, "total_usd": new_text,
            "change_usd": valuation.render(change), "fetched_at": fetched_at.isoformat()})

    def _explain_unstored(self, plan: _Plan) -> None:
        """Raise the refusal for an account whose snapshot was not stored, if its status explains it."""
        with self.db.session() as session:
            account = session.get(ExchangeAccount, plan.account_id)
            if account is not None and account.status not in REFRESHABLE:
                self._plan_for(account)  # raises the status's own refusal

    def _thin(self, session: Session, account_ids: Sequence[int] | None, after: int | None, before: int,
              bucket: int, batch: int) -> int:
        """Delete up to ``batch`` snapshots with ``after <= fetched_epoch < before`` that are not the
        newest (highest id) of their account and ``bucket``-second period; return how many.
        """
        window = [BalanceSnapshot.fetched_epoch < before]
        if after is not None:
            window.append(BalanceSnapshot.fetched_epoch >= after)
        if account_ids is not None:
            window.append(BalanceSnapshot.account_id.in_(list(account_ids)))
        # the newest (highest id) of each account's period is kept
        keep = (select(func.max(BalanceSnapshot.id)).where(*window)
                .group_by(BalanceSnapshot.account_id, BalanceSnapshot.fetched_epoch // bucket))
        doomed = select(BalanceSnapshot.id).where(*window, BalanceSnapshot.id.not_in(keep)).limit(batch)
        ids = list(session.scalars(doomed))
        if not ids:
            return 0
        return rowcount(session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.id.in_(ids))))

    # --- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _latest_query(account_id: int) -> Select[BalanceSnapshot]:
        return (select(BalanceSnapshot).where(BalanceSnapshot.account_id == account_id)
                .order_by(BalanceSnapshot.fetched_at.desc(), BalanceSnapshot.id.desc()).limit(1))

    @staticmethod
    def _visible(session: Session, principal: Principal, account_id: int) -> ExchangeAccount:
        """Return the account if the principal may see it; raise NotFound otherwise."""
        if not valid_id(account_id):
            raise NotFound("exchange account not found")
        account = session.get(ExchangeAccount, account_id)
        if account is None or not principal.acts_for(account.user_id) or not principal.sees_account(account.id):
            raise NotFound("exchange account not found")
        return account

    @staticmethod
    def _owner(session: Session, principal: Principal, user_id: int | None) -> int:
        owner = principal.user_id if user_id is None else user_id
        if not principal.acts_for(owner):
            raise Forbidden("you do not have permission to perform this action")
        if owner != principal.user_id and (not valid_id(owner) or session.get(User, owner) is None):
            raise NotFound("user not found")
        return owner

    @staticmethod
    def _live_query(principal: Principal, owner: int) -> Select[ExchangeAccount]:
        query = select(ExchangeAccount).where(ExchangeAccount.user_id == owner, ExchangeAccount.status.in_(LIVE))
        if principal.account_ids is not None:
            query = query.where(ExchangeAccount.id.in_(sorted(principal.account_ids) or [-1]))
        return query.order_by(ExchangeAccount.id)

    def _live_rows(self, session: Session, principal: Principal, owner: int) -> list[_Row]:
        columns = (ExchangeAccount.id, ExchangeAccount.public_id, ExchangeAccount.exchange, ExchangeAccount.name,
                   ExchangeAccount.account_type, ExchangeAccount.status)  # only these: no entity, no sealed blob
        return [_Row(*r) for r in session.execute(self._live_query(principal, owner).with_only_columns(*columns))]

    @staticmethod
    def _row(account: ExchangeAccount) -> _Row:
        return _Row(account.id, account.public_id, account.exchange, account.name, account.account_type,
                    account.status)

    def _portfolio_after(self, principal: Principal, owner: int, rows: list[_Row], failed: dict[int, str],
                         refreshed: set[int]) -> Portfolio:
        """The portfolio after a refresh: statuses read again (a refresh may have changed them)."""
        with self.db.session() as session:
            statuses = dict(session.execute(
                select(ExchangeAccount.id, ExchangeAccount.status).where(ExchangeAccount.id.in_([r.id for r in rows])))
                .tuples().all()) if rows else {}
        current = [replace(r, status=statuses.get(r.id, r.status)) for r in rows]
        return self._portfolio(principal, owner, current, failed, refreshed)

    def _portfolio(self, principal: Principal, owner: int, rows: list[_Row], failed: dict[int, str],
                   refreshed: set[int], snapshots: dict[int, Snapshot] | None = None) -> Portfolio:
        if snapshots is None:
            snapshots = self.latest_many(principal, [r.id for r in rows])
        accounts = tuple(
            AccountTotals(account_id=r.id, snapshot=snapshots.get(r.id), public_id=r.public_id, exchange=r.exchange,
                          name=r.name, account_type=r.account_type, status=r.status,
                          refreshed=r.id in refreshed, error=failed.get(r.id))
            for r in rows
        )
        present = list(snapshots.values())
        assets = valuation.combine(a for s in present for a in s.assets)
        with localcontext(valuation.CONTEXT):
            total_usd = valuation.clean(sum((s.total_usd for s in present), Decimal(0)))
            total_btc = valuation.clean(sum((s.total_btc for s in present), Decimal(0)))
        unpriced = sum(s.unpriced_assets for s in present)
        oldest = min((s.fetched_at for s in present), default=None)
        return Portfolio(accounts=accounts, assets=assets, total_usd=total_usd, total_btc=total_btc,
                         unpriced_assets=unpriced, user_id=owner, fetched_at=oldest)


class BalancesFacade:
    """The balances capability's façade (:class:`strongroom.balances.interfaces.Balances`, whose docstrings are
    the contract): async; the database work of ``engine`` runs in a worker thread here, never in a surface."""

    def __init__(self, engine: BalanceService) -> None:
        self.engine = engine

    async def now(self) -> datetime:
        return self.engine.clock()

    async def latest(self, principal: Principal, account_id: int) -> Snapshot | None:
        return await anyio.to_thread.run_sync(self.engine.latest, principal, account_id)

    async def latest_many(self, principal: Principal, account_ids: Iterable[int]) -> dict[int, Snapshot]:
        ids = list(account_ids)
        return await anyio.to_thread.run_sync(self.engine.latest_many, principal, ids)

    async def profits_many(self, principal: Principal, account_ids: Iterable[int], now: datetime) -> dict[int, Profits]:
        ids = list(account_ids)
        return await anyio.to_thread.run_sync(self.engine.profits_many, principal, ids, now)

    async def history(self, principal: Principal, account_id: int, since: datetime | None = None,
                      until: datetime | None = None, *, limit: int = HISTORY_LIMIT) -> list[HistoryPoint]:
        return await anyio.to_thread.run_sync(functools.partial(self.engine.history, principal, account_id, since,
                                                                until, limit=limit))

    async def portfolio(self, principal: Principal, *, user_id: int | None = None) -> Portfolio:
        return await anyio.to_thread.run_sync(functools.partial(self.engine.portfolio, principal, user_id=user_id))

    async def portfolio_history(self, principal: Principal, since: datetime, *, user_id: int | None = None,
                                bucket_seconds: int = 3600) -> list[HistoryPoint]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.portfolio_history, principal, since, user_id=user_id, bucket_seconds=bucket_seconds))

    async def refresh(self, principal: Principal, account_id: int) -> Snapshot:
        return await self.engine.refresh(principal, account_id)

    async def refresh_or_latest(self, principal: Principal, account_id: int) -> Snapshot:
        return await self.engine.refresh_or_latest(principal, account_id)

    async def refresh_portfolio(self, principal: Principal, *, user_id: int | None = None) -> Portfolio:
        return await self.engine.refresh_portfolio(principal, user_id=user_id)
