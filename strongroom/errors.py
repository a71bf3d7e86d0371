"""Domain errors with stable codes.

Services raise these; every surface maps ``code`` to its own status and body.
Messages must never contain a secret or an exchange's raw error text.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``message`` is for humans."""

    code: str = "error"
    status: int = 400  # the native surface's status; other surfaces map ``code`` themselves

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: dict[str, str] | None = None,
        retry_after: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.__class__.__doc__ or self.code
        self.fields = fields or {}
        self.retry_after = retry_after
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(DomainError):
    """The request is not valid."""

    code = "validation_failed"
    status = 422


class BadRequest(DomainError):
    """The request is not acceptable."""

    code = "bad_request"
    status = 400


class AmbiguousCredentials(BadRequest):
    """The request carries more than one credential (for example a bearer key and X-API-Key)."""

    code = "ambiguous_credentials"
    status = 400


class NotFound(DomainError):
    """Not found."""

    code = "not_found"
    status = 404


class Conflict(DomainError):
    """The resource conflicts with an existing one."""

    code = "conflict"
    status = 409


class InvalidCredentials(DomainError):
    """The exchange rejected the credentials."""

    code = "invalid_credentials"
    status = 400


class WithdrawalPermission(DomainError):
    """The exchange key can withdraw funds; such keys are refused."""

    code = "withdrawal_permission"
    status = 400


class ExchangeUnavailable(DomainError):
    """The exchange could not be reached; try again later."""

    code = "exchange_unavailable"
    status = 503


class Unauthenticated(DomainError):
    """Authentication failed."""

    code = "unauthenticated"
    status = 401


class CredentialsRefused(Unauthenticated):
    """Unknown, malformed, disabled or expired credentials (the caller is not told which)."""


class SignInRefused(Unauthenticated):
    """A sign-in with a username and password that do not match (surfaces may answer it apart from a bad token)."""


class SignatureInvalid(Unauthenticated):
    """A signed request whose signature does not verify, is outside the time window, or is a replay."""


class Forbidden(DomainError):
    """You do not have permission to perform this action."""

    code = "forbidden"
    status = 403


class IpNotAllowed(Forbidden):
    """The client's IP is outside the key's allowlist."""


class InsufficientScope(Forbidden):
    """The credential lacks the scope this action needs."""

    code = "insufficient_scope"


class InsufficientUsageLevel(Forbidden):
    """The user's usage level does not allow this action."""

    code = "insufficient_usage_level"


class RateLimited(DomainError):
    """Too many requests."""

    code = "rate_limited"
    status = 429


class PayloadTooLarge(DomainError):
    """The request body is too large."""

    code = "payload_too_large"
    status = 413


class LimitExceeded(BadRequest):
    """A configured limit was reached."""

    code = "limit_exceeded"


class CredentialsUnreadable(Conflict):
    """The stored credentials cannot be decrypted (tampered with, or their master key is gone)."""

    code = "credentials_unreadable"


class ServiceUnavailable(DomainError):
    """A backing service (e.g. the shared rate-limit store) does not answer; try again shortly."""

    code = "unavailable"
    status = 503


class MethodNotAllowed(DomainError):
    """The path exists, but not for this method. ``allow`` lists the methods it has."""

    code = "method_not_allowed"
    status = 405

    def __init__(self, message: str | None = None, *, allow: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(message or "method not allowed", **kwargs)
        self.allow = tuple(allow)


class MalformedBody(BadRequest):
    """The body cannot be parsed (malformed JSON, wrong Content-Length)."""

    code = "bad_request"


class AlreadyConnected(Conflict):
    """This exchange API key is already connected (to any user)."""

    code = "conflict"


class AccountExists(Conflict):
    """The user already has a live account on that exchange (surfaces that allow one per exchange)."""

    code = "account_exists"


class CredentialsRejected(Conflict):
    """The exchange now rejects the stored credentials; the account is marked invalid."""

    code = "credentials_rejected"


class ExchangeNotSupported(Conflict):
    """Strongroom cannot reach this exchange live (ccxt has no client for it): no balances, no key check."""

    code = "exchange_not_supported"


class InsufficientFunds(DomainError):
    """The exchange account does not hold enough free funds for this order."""

    code = "insufficient_funds"
    status = 400


class OrderRejected(DomainError):
    """The exchange refused this order (or this cancel): its size, price, type or state does not allow it."""

    code = "order_rejected"
    status = 400


class OrderOutcomeUnknown(DomainError):
    """The exchange may or may not have accepted the order (its answer was lost or came too late).

    Never sent again blindly: the caller looks the order up by its client order id.
    """

    code = "order_outcome_unknown"
    status = 504


class NotSupported(DomainError):
    """Strongroom does not do this (for example trading actions of a vendor's API: it never trades)."""

    code = "not_supported"
    status = 422


class RiskPolicyRefused(Forbidden):
    """The account's (or the key's) risk policy refuses this; ``rule`` names the policy field that refused."""

    code = "risk_policy"

    def __init__(self, message: str | None = None, *, rule: str = "policy", **kwargs: Any) -> None:
        super().__init__(message or f"refused by the trading policy ({rule})", **kwargs)
        self.rule = rule
