"""Standard Webhooks signatures: ``v1`` (HMAC-SHA256, ``whsec_`` secrets) and ``v1a`` (Ed25519, ``whsk_``/``whpk_``).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; ``webhook-signature`` is a space-separated
list of ``v1,<base64>`` / ``v1a,<base64>`` entries: one per secret in force (after a rotation the previous
secret signs too, until it expires). HMAC signing is the ``standardwebhooks`` package's own; Ed25519 is
``cryptography``'s.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

from strongroom.enums import WebhookSigning

SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 random bytes


def new_hmac_secret() -> str:
    """Return a new HMAC signing secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_ed25519_key() -> tuple[str, str]:
    """Return a new Ed25519 key pair ``(whsk_ private, whpk_ public)``, each base64 of its 32 raw bytes."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "whsk_" + base64.b64encode(seed).decode(), "whpk_" + base64.b64encode(public).decode()


def new_secret(signing: WebhookSigning) -> tuple[str, str | None]:
    """Return ``(secret to seal, public key or None)`` for a new secret of ``signing``."""
    if signing == WebhookSigning.ED25519:
        return new_ed25519_key()
    return new_hmac_secret(), None


class Signer:
    """Signs deliveries with one or more secrets of one kind (built once per batch: keys decoded once)."""

    def __init__(self, signing: WebhookSigning, secrets_in_force: Iterable[str]) -> None:
        self.signing = signing
        self._hmac = [Webhook(s) for s in secrets_in_force] if signing == WebhookSigning.HMAC else []
        self._ed = ([Ed25519PrivateKey.from_private_bytes(base64.b64decode(s.removeprefix("whsk_")))
                     for s in secrets_in_force] if signing == WebhookSigning.ED25519 else [])

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """Return the ``webhook-signature`` header for ``body`` sent as ``msg_id`` at ``timestamp`` (epoch s)."""
        if self._hmac:
            at = datetime.fromtimestamp(timestamp, UTC)
            return " ".join(w.sign(msg_id, at, body) for w in self._hmac)
        content = f"{msg_id}.{timestamp}.".encode() + body
        return " ".join("v1a," + base64.b64encode(key.sign(content)).decode() for key in self._ed)
