"""What every authentication scheme is: a small strategy object that a surface declares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from strongroom.enums import RefusalReason
from strongroom.errors import CredentialsRefused, DomainError, SignatureInvalid, Unauthenticated

if TYPE_CHECKING:
    from strongroom.auth.directory import Claim, KeyDirectory
    from strongroom.auth.facts import RequestFacts
    from strongroom.keys.services import KeyRecord


class Refused(Exception):
    """A scheme's refusal. ``reason`` is audited; ``error`` is what the caller sees (401/403/429)."""

    def __init__(self, reason: RefusalReason, error: DomainError | None = None, *, user_id: int | None = None,
                 key_id: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.error = error or invalid_credentials()
        self.user_id = user_id
        self.key_id = key_id


def refused_key(reason: RefusalReason, record: KeyRecord, error: Unauthenticated | None = None) -> Refused:
    """Return a refusal attributed to ``record``'s key and user."""
    return Refused(reason, error or invalid_credentials(), user_id=record.user.id, key_id=record.key_id)


def invalid_credentials() -> Unauthenticated:
    """Return the 401 for unknown, malformed, disabled or expired credentials (the caller is not told which)."""
    return CredentialsRefused("invalid credentials")


def invalid_signature() -> Unauthenticated:
    """Return the 401 for a signature that does not verify, is stale or is replayed."""
    return SignatureInvalid("invalid credentials")


class AuthScheme(ABC):
    """One way to authenticate. A surface lists the schemes it accepts, in the order to try them.

    ``claims`` says whether a request carries this scheme's credentials (cheap: header lookups);
    the first scheme that claims a request authenticates it, and its refusal is final. A scheme
    verifies against a :class:`~strongroom.auth.directory.KeyDirectory` and returns a
    :class:`~strongroom.auth.directory.Claim`; the pipeline admits it.
    """

    #: stable id: OpenAPI security scheme name, metrics label
    id: str = "scheme"
    #: True if the scheme signs the body, so the body must be read before authentication
    reads_body: bool = False

    @abstractmethod
    def claims(self, facts: RequestFacts) -> bool:
        """Return True if ``facts`` carries this scheme's credentials."""

    @abstractmethod
    async def authenticate(self, facts: RequestFacts, directory: KeyDirectory) -> Claim:
        """Return what ``facts``'s credentials establish; raise :class:`Refused` if they do not hold."""

    def vouched(self, facts: RequestFacts, directory: KeyDirectory) -> bool:
        """Return True if ``facts``'s credentials verified recently (a cheap memory check: no database,
        no password hashing, no public-key operation), so that verifying them again is worth it
        even for an address that spent its failure budget. The default: never."""
        return False

    def openapi(self) -> dict[str, dict[str, Any]]:
        """Return this scheme's OpenAPI security scheme objects, by name."""
        return {}
