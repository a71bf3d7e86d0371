"""The closed sets of the domain, as enums: their values are what the database stores and what
the wire shows (``StrEnum``: each member is also its string)."""

from __future__ import annotations

from enum import StrEnum


class KeyKind(StrEnum):
    """How a platform API key proves itself."""

    BEARER = "bearer"  # the secret itself, sent as a bearer token (stored as a peppered HMAC)
    HMAC = "hmac"  # a shared secret that signs requests (stored envelope-encrypted)
    RSA = "rsa"  # RSA public key (PSS or PKCS#1 v1.5 signatures)
    ED25519 = "ed25519"  # Ed25519 public key

    @property
    def public_key(self) -> bool:
        """True for kinds verified with a stored public key (rsa, ed25519)."""
        return self in (KeyKind.RSA, KeyKind.ED25519)


class AccountStatus(StrEnum):
    """The life of an exchange account. ``disconnected`` is terminal (credentials destroyed)."""

    ACTIVE = "active"
    DISABLED = "disabled"
    INVALID = "invalid"  # the exchange rejected the stored credentials
    UNVERIFIED = "unverified"  # no validator for this venue
    SUSPENDED = "suspended"  # the key was found able to withdraw
    DISCONNECTED = "disconnected"


# Every status but the terminal one: the account still holds credentials.
LIVE_STATUSES: frozenset[AccountStatus] = frozenset(AccountStatus) - {AccountStatus.DISCONNECTED}


class CredentialStatus(StrEnum):
    """The life of a stored exchange credential (Cadenza's "credential"). ``revoked`` is terminal (secrets destroyed)."""

    CREATED = "created"  # stored; the venue has no live check, so it was never verified
    ACTIVE = "active"  # the exchange accepted it at the last live check
    EXPIRED = "expired"  # the exchange refused it at the last live check (or it can withdraw): rotate it
    REVOKED = "revoked"


class UsageLevel(StrEnum):
    """Kalshi's API usage levels (lowest first); on Kalshi's surface uploading one's own public key needs premier."""

    BASIC = "basic"
    ADVANCED = "advanced"
    PREMIER = "premier"
    MARKET_MAKER = "market_maker"


class AuthMethod(StrEnum):
    """How a principal authenticated (``/v1/me`` shows it as ``auth_scheme``)."""

    ACCESS_TOKEN = "access_token"
    BEARER_KEY = "bearer_key"  # Authorization: Bearer <key>
    X_API_KEY = "x_api_key"  # X-API-Key: <key>
    BASIC_KEY = "basic_key"  # Basic key_id:secret
    BASIC_PASSWORD = "basic"  # Basic username:password
    PASSWORD_GRANT = "token"  # POST /v1/auth/token (and the sessions it starts)
    SIGNED_REQUEST = "signed_request"  # SR-ACCESS-* headers
    KALSHI_SIGNATURE = "kalshi_signature"  # KALSHI-ACCESS-* headers
    THREECOMMAS_SIGNATURE = "threecommas_signature"  # APIKEY + Signature headers
    CLI = "cli"  # the operator's command line
    CONSOLE = "console"  # a web console session (/console)


class RefusalReason(StrEnum):
    """Why authentication refused a request (audited; the caller only sees 401/403/429)."""

    NO_CREDENTIALS = "no_credentials"
    UNKNOWN_KEY = "unknown_key"
    DISABLED = "disabled"
    EXPIRED = "expired"
    IP_NOT_ALLOWED = "ip_not_allowed"
    RATE_LIMITED = "rate_limited"
    MALFORMED_KEY = "malformed_key"
    INVALID_ACCESS_TOKEN = "invalid_access_token"
    MALFORMED_BASIC = "malformed_basic"
    BAD_SECRET = "bad_secret"
    BAD_PASSWORD = "bad_password"
    SCHEME_NOT_ACCEPTED = "scheme_not_accepted"
    MALFORMED_SIGNATURE_HEADERS = "malformed_signature_headers"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED_SIGNATURE = "replayed_signature"


class JobStatus(StrEnum):
    """The life of a durable job (``strongroom.jobs.queue``). ``succeeded``, ``dead`` and ``canceled`` are
    final; an operator may put a dead or canceled job back to ``queued`` (``strongroom jobs retry``)."""

    QUEUED = "queued"  # waiting for its run_at
    RUNNING = "running"  # claimed by a worker under a lease (back to be claimed again when the lease expires)
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # failed its last attempt (dead letter)
    CANCELED = "canceled"


class EventType(StrEnum):
    """What happened (``strongroom.events``): the ``type`` of an event and of a webhook delivery.
    ``master_key.rotated`` and ``user.deleted`` are admin-only: they go only to admins and to endpoints an admin
    created."""

    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    API_KEY_ROLLED = "api_key.rolled"
    API_KEY_EXPIRING = "api_key.expiring"
    API_KEY_EXPIRED = "api_key.expired"
    API_KEY_FAILURE_BUDGET_EXHAUSTED = "api_key.failure_budget_exhausted"
    EXCHANGE_ACCOUNT_CONNECTED = "exchange_account.connected"
    EXCHANGE_ACCOUNT_INVALIDATED = "exchange_account.invalidated"
    EXCHANGE_ACCOUNT_SUSPENDED = "exchange_account.suspended"
    EXCHANGE_ACCOUNT_DISCONNECTED = "exchange_account.disconnected"
    BALANCES_CHANGED = "balances.changed"
    MASTER_KEY_ROTATED = "master_key.rotated"
    USER_DELETED = "user.deleted"  # admin-only: the user's keys and accounts went with them
    WEBHOOK_DISABLED = "webhook.disabled"  # an endpoint failing for days (or answering 410) was turned off
    WEBHOOK_TEST = "webhook.test"  # POST /v1/webhooks/{id}/test: delivered to that endpoint only
    ORDER_CREATED = "order.created"
    ORDER_FILLED = "order.filled"
    ORDER_CANCELED = "order.canceled"
    ORDER_REJECTED = "order.rejected"


ADMIN_ONLY_EVENTS = frozenset({EventType.MASTER_KEY_ROTATED, EventType.USER_DELETED})


class WebhookSigning(StrEnum):
    """How a webhook endpoint's deliveries are signed (Standard Webhooks): ``v1`` HMAC-SHA256 with a
    ``whsec_`` secret, or ``v1a`` Ed25519 with a ``whsk_`` private key (the receiver holds ``whpk_``)."""

    HMAC = "hmac"
    ED25519 = "ed25519"


class DeliveryStatus(StrEnum):
    """A webhook delivery (one event to one endpoint): waiting (``pending``, due at its next attempt),
    being sent (``sending``, claimed by a job), ``delivered`` (a 2xx) or ``failed`` (out of attempts, 410,
    or its endpoint disabled)."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
