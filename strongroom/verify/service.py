"""The verifier: one request as its client sent it (method, path, headers, body, address) in, a
verdict out, through the same authentication pipeline, schemes, caches, limits, usage and audit as
Strongroom's own routes.

A verification is a request of the key it names: it counts in the key's usage and last-used, its
per-key rate limit, and, when refused, in the failure budgets of the key and of the END CLIENT's
address (the one in the verdict's facts), never the address of whoever asked.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING

from anyio import to_thread

from strongroom import scopes as scope_rules
from strongroom.auth.schemes import KALSHI, NATIVE, BasicScheme, BearerKeyScheme
from strongroom.auth.schemes.base import AuthScheme
from strongroom.auth.schemes.signed import threecommas
from strongroom.enums import RefusalReason
from strongroom.errors import AmbiguousCredentials, Forbidden, InsufficientScope, RateLimited, Unauthenticated
from strongroom.verify.rules import ForwardRule, required_scopes

if TYPE_CHECKING:
    from strongroom.auth.facts import RequestFacts
    from strongroom.auth.pipeline import Authenticator
    from strongroom.principal import Principal


class Reason(StrEnum):
    """Why a verification failed: the stable codes a verifier answers."""

    UNKNOWN_KEY = "unknown_key"  # no such key, no credentials, or credentials of no key's shape
    EXPIRED = "expired"
    REVOKED = "revoked"  # the key is disabled
    BAD_SIGNATURE = "bad_signature"  # a signature (or a key's secret) that does not verify, or a stale timestamp
    REPLAYED = "replayed"
    IP_NOT_ALLOWED = "ip_not_allowed"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    RATE_LIMITED = "rate_limited"
    BODY_NOT_VERIFIABLE = "body_not_verifiable"  # a body-signing scheme, and the verifier cannot see the body
    AMBIGUOUS_CREDENTIALS = "ambiguous_credentials"  # two different credentials in one request


REASONS: dict[RefusalReason, Reason] = {
    RefusalReason.EXPIRED: Reason.EXPIRED,
    RefusalReason.DISABLED: Reason.REVOKED,
    RefusalReason.IP_NOT_ALLOWED: Reason.IP_NOT_ALLOWED,
    RefusalReason.RATE_LIMITED: Reason.RATE_LIMITED,
    RefusalReason.BAD_SECRET: Reason.BAD_SIGNATURE,
    RefusalReason.BAD_SIGNATURE: Reason.BAD_SIGNATURE,
    RefusalReason.STALE_TIMESTAMP: Reason.BAD_SIGNATURE,
    RefusalReason.MALFORMED_SIGNATURE_HEADERS: Reason.BAD_SIGNATURE,
    RefusalReason.REPLAYED_SIGNATURE: Reason.REPLAYED,
}  # everything else (unknown, malformed or absent credentials): unknown_key

# What a verifier accepts: every way a platform key proves itself, signed schemes first (they are
# recognised by their key header). Passwords and access tokens are not keys: refused as unknown_key.
KEY_SCHEMES: tuple[AuthScheme, ...] = (KALSHI, NATIVE, threecommas(), BearerKeyScheme(),
                                       BasicScheme(passwords=False))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer: ``reason`` None means valid (then ``principal`` is the key's)."""

    reason: Reason | None
    principal: Principal | None = None
    ratelimit: tuple[int, int, int] | None = None  # (limit, remaining, seconds to reset) of the key's window
    retry_after: int | None = None

    @property
    def valid(self) -> bool:
        return self.reason is None


def require_verifier(principal: Principal) -> None:
    """Raise InsufficientScope unless ``principal`` may ask for verifications: a key holding the
    ``verify`` scope, or an admin signed in without a key."""
    if scope_rules.VERIFY in principal.scopes or (principal.is_admin and principal.key_id is None):
        return
    raise InsufficientScope("verifying keys needs the 'verify' scope (or an admin's session)")


class Verifier:
    """Verifies requests with :data:`KEY_SCHEMES` through ``auth``; ``rules`` map routes to scopes."""

    def __init__(self, auth: Authenticator, rules: tuple[ForwardRule, ...] = (),
                 schemes: tuple[AuthScheme, ...] = KEY_SCHEMES) -> None:
        self.auth = auth
        self.rules = rules
        self.schemes = schemes

    def required_for(self, method: str, path: str) -> tuple[str, ...]:
        """Return the scopes the operator's rules require of ``method`` ``path``."""
        return required_scopes(self.rules, method, path) if self.rules else ()

    async def verify(self, facts: RequestFacts, *, required: Collection[str] = (),
                     body_visible: bool = True) -> Verdict:
        """Return the verdict on ``facts`` (``facts.client_ip`` is the end client's address).

        ``required``: scopes the key must hold. ``body_visible`` False: the body is not in
        ``facts`` (a proxy's sub-request), so schemes that sign the body are refused
        ``body_not_verifiable``. Raises ServiceUnavailable (503) when a backing store does not answer.
        """
        if not body_visible:
            scheme = next((s for s in self.schemes if s.claims(facts)), None)
            if scheme is not None and scheme.reads_body:
                return Verdict(Reason.BODY_NOT_VERIFIABLE)
        try:
            principal = await self.auth.authenticate(facts, self.schemes)
        except RateLimited as exc:
            return Verdict(Reason.RATE_LIMITED, retry_after=exc.retry_after)
        except AmbiguousCredentials:
            return Verdict(Reason.AMBIGUOUS_CREDENTIALS)
        except (Unauthenticated, Forbidden):
            return Verdict(REASONS.get(facts.refusal, Reason.UNKNOWN_KEY) if facts.refusal else Reason.UNKNOWN_KEY)
        missing = [s for s in required if not scope_rules.covers(principal.scopes, s)]
        if missing:
            await self.auth.release(facts)  # a refused request gives its signature back, as on any route
            over = await self.auth.count_failure(facts.client_ip, principal.key_id)
            await to_thread.run_sync(partial(
                self.auth.audit.refusal, "auth.key", Reason.INSUFFICIENT_SCOPE.value, client_ip=facts.client_ip,
                user_id=principal.user_id, key_id=principal.key_id,
                details={"method": facts.method, "path": facts.path[:200], "missing": missing[:8]}))
            if over is not None:
                return Verdict(Reason.RATE_LIMITED, retry_after=over.retry_after)
            return Verdict(Reason.INSUFFICIENT_SCOPE, principal=principal)
        return Verdict(None, principal, facts.ratelimit)
