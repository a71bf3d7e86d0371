"""SQLAlchemy models: one schema for SQLite and PostgreSQL (migrated by Alembic)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from strongroom.db import Base, utcnow
from strongroom.enums import (
    AccountStatus,
    CredentialStatus,
    DeliveryStatus,
    EventType,
    JobStatus,
    KeyKind,
    UsageLevel,
    WebhookSigning,
)

E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A closed set (a ``StrEnum``) stored as its value in a plain string column: the schema is the
    same string column as before, and a row reads back as the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        # a plain string binds as itself: a filter on a value outside the set (a caller's query) matches nothing
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)

# Every table with an integer id: on SQLite an id is never used twice (AUTOINCREMENT), as PostgreSQL's
# sequences never reuse one (migration 0007). Without it SQLite hands a deleted newest row's id to the next.
NEVER_REUSED: dict[str, Any] = {"sqlite_autoincrement": True}


class TZDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both databases (SQLite drops the zone on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # a stable public identifier (Cadenza's userId); a unique index rather than a constraint, so that
    # migration 0003 adds it in place on SQLite (no copy of the users table, whose rows others cascade from)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    usage_level: Mapped[UsageLevel] = mapped_column(EnumText(UsageLevel, 16), default=UsageLevel.BASIC)
    # how many API keys the user has: kept with every key insert and delete by a conditional UPDATE, so the
    # per-user cap holds under concurrency without counting rows
    api_key_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # an operator's switch (``strongroom users disable``): no sign-in, and every key, session and refresh token
    # of the user is refused as ``disabled`` until enabled again
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_users_public_id", "public_id", unique=True), NEVER_REUSED)


class AuthSession(Base):
    """A signed-in session: one access token and its rotating refresh token (hashes only)."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    access_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_hash: Mapped[str] = mapped_column(String(64), unique=True)
    access_expires_at: Mapped[datetime] = mapped_column(TZDateTime())
    refresh_expires_at: Mapped[datetime] = mapped_column(TZDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)

    __table_args__ = (NEVER_REUSED,)


class ExchangeAccount(Base):
    __tablename__ = "exchange_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    exchange: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    account_type: Mapped[str] = mapped_column(String(16), default="spot")
    status: Mapped[AccountStatus] = mapped_column(EnumText(AccountStatus, 16))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    key_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    key_hint: Mapped[str] = mapped_column(String(32))
    validated_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    validation_result: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    disconnected_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    # the total (USD, a decimal string) of the snapshot that last moved the balance: a balances.changed
    # event is written when a snapshot's total moves far enough from it (strongroom.balances)
    balance_baseline_usd: Mapped[str | None] = mapped_column(String(100), nullable=True)

    __table_args__ = (Index("ix_exchange_accounts_user_status", "user_id", "status"), NEVER_REUSED)


class ExchangeCredential(Base):
    """An exchange API key stored on its own (Cadenza's "credential"), sealed like an account's credentials.

    Accounts connected with it keep their own sealed copy (``account_credentials`` links them), so
    every account path (balances, disconnect's crypto-shred) is unchanged; rotating or revoking the
    credential rewrites or shreds those copies too.
    """

    __tablename__ = "exchange_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    exchange: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(16))  # Cadenza's credentialType as given (API_KEY, HMAC)
    nickname: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[CredentialStatus] = mapped_column(EnumText(CredentialStatus, 16))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    key_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    key_hint: Mapped[str] = mapped_column(String(32))
    validated_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    validation_result: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(TZDateTime())

    __table_args__ = (NEVER_REUSED,)


class AccountCredential(Base):
    """Which stored credential an exchange account was connected with (at most one per account)."""

    __tablename__ = "account_credentials"

    account_id: Mapped[int] = mapped_column(ForeignKey("exchange_accounts.id", ondelete="CASCADE"), primary_key=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("exchange_credentials.id", ondelete="CASCADE"), index=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[KeyKind] = mapped_column(EnumText(KeyKind, 16))
    # bearer: HMAC-SHA256(pepper, full key); a roll keeps the previous one for a grace period
    secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_expires_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    # hmac: envelope-encrypted shared secret(s) as JSON {"current": s, "previous": s?}
    secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_nonce: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    kek_version: Mapped[int | None] = mapped_column(Integer, index=True)
    # rsa / ed25519: SPKI PEM
    public_key: Mapped[str | None] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    account_ids: Mapped[list[int] | None] = mapped_column(JSON)
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    hint: Mapped[str] = mapped_column(String(32))
    last_used_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    # optimistic concurrency: every ORM UPDATE/DELETE of a key says WHERE version = <the version read> and
    # bumps it, raising StaleDataError if another change came first (the re-wrap and last-used writers
    # change neither attributes nor secrets and leave it alone)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (NEVER_REUSED,)

    # SQLAlchemy's documented form: its declarative base types __mapper_args__ as an instance attribute, so
    # mypy refuses a ClassVar annotation; SQLAlchemy reads this mapping once when it maps the class.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class AuditEvent(Base):
    """Append-only. Never holds a secret."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_key_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # any JSON object (AuditService)

    __table_args__ = (NEVER_REUSED,)


class KeyUsage(Base):
    """Verifications of one key in one hour that ended one way (written in batches)."""

    __tablename__ = "key_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.key_id", ondelete="CASCADE"))
    hour: Mapped[datetime] = mapped_column(TZDateTime())  # the start of the hour, UTC
    outcome: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("key_id", "hour", "outcome", name="uq_key_usage_key_hour_outcome"),
                      NEVER_REUSED)


class BalanceSnapshot(Base):
    """One successful load of an account's balances, valued (issue 9). Never holds a secret.

    Every amount, price and value is a decimal string (``"0.6"``, ``"31200"``): exact on both
    databases (SQLite has no exact numeric type). ``assets`` is a list of
    ``{"asset", "free", "used", "total", "usd", "btc", "usd_price"}`` (the last three null when
    the asset has no price). ``fetched_epoch`` (whole seconds since the epoch) is what pruning
    groups by hour and day.
    """

    __tablename__ = "balance_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("exchange_accounts.id", ondelete="CASCADE"))
    fetched_at: Mapped[datetime] = mapped_column(TZDateTime())
    fetched_epoch: Mapped[int] = mapped_column(BigInteger)
    account_type: Mapped[str] = mapped_column(String(16))
    total_usd: Mapped[str] = mapped_column(String(100))
    total_btc: Mapped[str] = mapped_column(String(100))
    unpriced_assets: Mapped[int] = mapped_column(Integer)
    assets: Mapped[list[dict[str, str | None]]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_balance_snapshots_account_fetched", "account_id", "fetched_at"),
        Index("ix_balance_snapshots_account_epoch", "account_id", "fetched_epoch"),
        NEVER_REUSED,
    )


class JobLease(Base):
    """Who may run a once-per-deployment job until when (``strongroom.jobs.leases``)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float)  # epoch seconds


class Job(Base):
    """A durable job (``strongroom.jobs.queue``): enqueued in the transaction of the change that causes it,
    claimed by one worker at a time under a lease. Times are epoch seconds. ``last_error`` is an error's
    type or a reason its handler declared safe: never a secret."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[JobStatus] = mapped_column(EnumText(JobStatus, 16), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_at: Mapped[float] = mapped_column(Float)  # due from then (epoch seconds)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_jobs_status_run_at", "status", "run_at"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        NEVER_REUSED,
    )


class Schedule(Base):
    """A recurring job: every ``interval_seconds`` the firing due at ``next_run_at`` enqueues one job of ``kind``.
    A firing is taken by one conditional UPDATE of ``next_run_at``: once, whatever number of schedulers run."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    interval_seconds: Mapped[float] = mapped_column(Float)
    next_run_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    last_fired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_fired_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the scheduler that took it


class Event(Base):
    """One thing that happened (``strongroom.events``), written in the transaction of the change itself
    (an outbox: the event exists if and only if the change committed). ``public_id`` (``evt_...``) is what
    clients and webhook receivers see (the Standard Webhooks ``webhook-id``); ``id`` orders events and
    is the cursor. ``user_id`` is the owner whose event it is (None: the deployment's, admins only);
    ``admin_only`` events are shown to admins only. ``data`` never holds a secret."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[EventType] = mapped_column(EnumText(EventType, 64))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    admin_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_events_user_id_id", "user_id", "id"),
        Index("ix_events_type_id", "type", "id"),
        NEVER_REUSED,
    )


class Order(Base):
    """An order placed through an exchange account (``strongroom.trading``), written ``pending`` before the venue
    is called. ``client_order_id`` is unique per account (the idempotency key); ``request_hash`` is the SHA-256 of
    the request's canonical form (the same id with another request is a conflict). Amounts and prices are
    decimal strings; ``fees`` is a list of ``{"currency", "cost"}``. ``created_epoch`` (seconds) is what the
    per-minute limit counts. Never holds a secret or a venue's error text (``error_code`` is our code)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("exchange_accounts.id", ondelete="CASCADE"))
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the key that placed it (None: a session)
    client_order_id: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    exchange_order_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[str] = mapped_column(String(100))
    price: Mapped[str | None] = mapped_column(String(100), nullable=True)
    time_in_force: Mapped[str | None] = mapped_column(String(8), nullable=True)
    post_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16))
    filled: Mapped[str] = mapped_column(String(100), default="0")
    average_price: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fees: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    error_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_epoch: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("account_id", "client_order_id", name="uq_orders_account_client_order_id"),
        Index("ix_orders_account_status_id", "account_id", "status", "id"),
        Index("ix_orders_account_created", "account_id", "created_epoch"),
        NEVER_REUSED,
    )


class WebhookEndpoint(Base):
    """A receiver of events (``strongroom.webhooks``): a URL, which event types, how deliveries are signed.

    The signing secret(s) are sealed (``{"current": s, "previous": s?}``; ``whsec_`` HMAC secrets or
    ``whsk_`` Ed25519 private keys): registered in the vault's ``SEALED_TABLES``. ``previous_expires_at``
    (epoch seconds) ends the previous secret's signing after a rotation. ``created_by_admin``: the owner
    was an admin when creating it (admin-only events go only there). ``all_users``: an admin's endpoint
    that receives every user's events, not only its owner's. ``drain_job_id`` is the last
    delivery job enqueued for it (a queued one takes new deliveries too); ``retry_at`` the due time of
    its pending retry job (a compare-and-set keeps one per time)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_by_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    all_users: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(String(500), default="")
    signing: Mapped[WebhookSigning] = mapped_column(EnumText(WebhookSigning, 16))
    public_key: Mapped[str | None] = mapped_column(String(100))  # ed25519: whpk_ base64 (public)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    secret_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    secret_wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    previous_expires_at: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    failing_since: Mapped[datetime | None] = mapped_column(TZDateTime())
    drain_job_id: Mapped[int | None] = mapped_column(Integer)
    retry_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)

    __table_args__ = (Index("ix_webhook_endpoints_user_enabled", "user_id", "enabled"), NEVER_REUSED)


class WebhookDelivery(Base):
    """One event to one endpoint: its state, attempts so far and when the next is due (epoch seconds).
    ``claim_job_id`` is the delivery job sending it (``sending``). A replay is a new delivery of the event."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    status: Mapped[DeliveryStatus] = mapped_column(EnumText(DeliveryStatus, 16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    claim_job_id: Mapped[int | None] = mapped_column(Integer)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(TZDateTime())

    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_due", "endpoint_id", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id", "id"),
        NEVER_REUSED,
    )


class TradingPolicy(Base):
    """A risk policy (``strongroom.trading``): an account's (``account_id``), or a key's narrowing of its owner's
    (``key_id``). ``subject`` is ``account:<id>`` or ``key:<key id>`` (unique). A null limit is no limit;
    ``allowed_symbols`` null is every symbol. ``revision`` grows with every change (compare-and-set); an UPDATE
    of an account policy's row that sets it to itself is the account's order lock (a row lock on PostgreSQL,
    the write lock on SQLite) under which open orders and orders of the last minute are counted."""

    __tablename__ = "trading_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(80), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_accounts.id", ondelete="CASCADE"),
                                                   nullable=True)
    key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.key_id", ondelete="CASCADE"), nullable=True)
    allowed_symbols: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    max_notional_usd: Mapped[str | None] = mapped_column(String(100), nullable=True)
    max_open_orders: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_orders_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price_band_percent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    allow_market_orders: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    kill_switch: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)

    __table_args__ = (NEVER_REUSED,)


class EventMark(Base):
    """An event that must be written once per subject (``strongroom.events.record_once``): the mark
    (``api_key.expiring:<key id>:<expiry>``, ...) is the primary key, so of concurrent writers one
    inserts it and writes the event, the others find it and write nothing."""

    __tablename__ = "event_marks"

    mark: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class WebhookAttempt(Base):
    """One attempt of a delivery: the answer's status (None: no answer), its latency, a short excerpt of
    its body, and the kind of error (``timeout``, ``connect``, ``address_refused``, ``status``, ...)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    response_excerpt: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (NEVER_REUSED,)
