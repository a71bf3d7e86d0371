"""Secret formats and their hashing.

Bearer keys look like ``sr_<22+ base62 chars><6-char CRC32 checksum>`` (GitHub's format), so
secret scanners can recognise them and a mistyped string is refused before any lookup.
They are stored only as HMAC-SHA256 under a server pepper that is not in the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from collections.abc import Callable

ALPHABET = string.digits + string.ascii_letters  # base62
SECRET_CHARS = 30  # 30 base62 chars ≈ 178 bits


def base62(number: int, width: int) -> str:
    """Return ``number`` in base62, left-padded with '0' to ``width``."""
    out = []
    while number:
        number, rem = divmod(number, 62)
        out.append(ALPHABET[rem])
    return "".join(reversed(out)).rjust(width, "0")


def checksum(body: str) -> str:
    """Return the 6-char base62 CRC32 of ``body``."""
    return base62(zlib.crc32(body.encode()), 6)


def new_token(prefix: str) -> str:
    """Return a fresh ``<prefix>_<secret><checksum>`` token."""
    body = f"{prefix}_" + "".join(secrets.choice(ALPHABET) for _ in range(SECRET_CHARS))
    return body + checksum(body)


def well_formed(token: str, prefix: str) -> bool:
    """Return True if ``token`` has ``prefix``, base62 characters and a matching checksum."""
    head = f"{prefix}_"
    if not token.startswith(head) or len(token) < len(head) + 22 + 6 or len(token) > 200:
        return False
    rest = token[len(head):]
    if not (rest.isascii() and rest.isalnum()):  # base62 only; ~2x faster than a per-character check
        return False
    return hmac.compare_digest(checksum(token[:-6]), token[-6:])


class Hasher:
    """Keyed hashes under the server pepper (never stored in the database).

    ``mac`` is the key provider's HMAC-SHA256 under the pepper (in-process for a key file, inside the
    HSM or KMS otherwise). It is asked once per purpose at start, for that purpose's hashing key
    (HMAC(pepper, label), the same bytes as ever, so hashes stored before a migration still match);
    each hash is then computed in-process, with no HSM or KMS round trip per request.
    """

    def __init__(self, mac: Callable[[bytes], bytes]) -> None:
        self._token_key = mac(b"strongroom token hash v1")
        self._fingerprint_key = mac(b"strongroom exchange key fingerprint v1")
        self._cache_key = mac(b"strongroom memory cache v1")

    def token(self, token: str) -> str:
        """Return the hex HMAC-SHA256 stored for a bearer key, access or refresh token."""
        return hmac.digest(self._token_key, token.encode(), "sha256").hex()  # one-shot: no HMAC object

    def fingerprint(self, exchange: str, api_key: str) -> str:
        """Return the keyed fingerprint of an exchange API key (duplicate detection without decrypting)."""
        return hmac.new(self._fingerprint_key, f"{exchange}\0{api_key}".encode(), hashlib.sha256).hexdigest()

    def memory_key(self, *parts: str) -> bytes:
        """Return a keyed digest to index in-memory caches by secret material without keeping it."""
        return hmac.new(self._cache_key, "\0".join(parts).encode(), hashlib.sha256).digest()


def hint(secret: str) -> str:
    """Return a display hint: the first and last 4 characters (or fewer for short strings)."""
    if len(secret) <= 8:
        return secret[:1] + "…"
    return f"{secret[:4]}…{secret[-4:]}"
