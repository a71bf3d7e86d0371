"""What authentication reads from a request, taken from the ASGI scope without decoding more than it needs."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar, overload

if TYPE_CHECKING:
    from strongroom.enums import RefusalReason

T = TypeVar("T")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Every header that carries a credential on some surface (Authorization: Basic or Bearer, a bearer
#: key's X-API-Key, the key id of a signed request: Strongroom's, Kalshi's, 3Commas'). A request
#: with two different credentials is refused, whatever the surface accepts, rather than one winning.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "sr-access-key", "kalshi-access-key", "apikey")


class RawHeaders(Mapping[str, str]):
    """The headers as received (ASGI: lower-case names), decoded one at a time on lookup.

    Authentication asks for two or three headers of a request; decoding every header into a dict
    first cost more than the lookups. A repeated header answers its first value.
    """

    __slots__ = ("_index", "_raw")

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._index: dict[bytes, bytes] | None = None

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str, /) -> str: ...
    @overload
    def get(self, name: str, default: T, /) -> str | T: ...
    def get(self, name: str, default: T | None = None) -> str | T | None:
        index = self._index
        if index is None:  # first lookup: index by name once (the first of a repeated header wins)
            index = self._index = dict(reversed(self._raw))
        value = index.get(name.encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def index(self) -> dict[bytes, bytes]:
        """Return the headers by raw (lower-case) name, undecoded: the first of a repeated header wins."""
        index = self._index
        if index is None:
            index = self._index = dict(reversed(self._raw))
        return index

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        index = self._index
        if index is None:
            index = self._index = dict(reversed(self._raw))
        return name.encode("latin-1") in index

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k.decode("latin-1") for k, _ in self._raw))

    def __len__(self) -> int:
        return len({k for k, _ in self._raw})


class RequestFacts:
    """One request as authentication sees it.

    ``path`` is the raw path as received (no query), ``query`` the raw query string, ``headers``
    a case-insensitive mapping with lower-case names. The body is read only when a scheme that
    signs it asks (:meth:`read_body`); until then ``body`` is empty.
    """

    __slots__ = ("_authorization", "_body_reader", "body", "client_ip", "headers", "method", "path", "query",
                 "ratelimit", "refusal", "replay")

    def __init__(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes = b"",
                 client_ip: str | None = None,
                 body_reader: Callable[[], Awaitable[bytes]] | None = None) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.client_ip = client_ip
        # the rate-limit window the request was counted in (the key's, else the client IP's): headers
        self.ratelimit: tuple[int, int, int] | None = None
        # why authentication refused the request (set by the pipeline; what a verifier reports)
        self.refusal: RefusalReason | None = None
        # the signature this request claimed (replay key, claim token): given up if the request fails
        self.replay: tuple[str, str | float] | None = None
        self._authorization: tuple[str, str] | None = None
        self._body_reader = body_reader

    @property
    def authorization(self) -> tuple[str, str]:
        """Return the Authorization header as ``(scheme in lower case, credentials)``; ``("", "")`` if absent."""
        if self._authorization is None:
            scheme, _, value = (self.headers.get("authorization") or "").partition(" ")
            self._authorization = (scheme.lower(), value.strip())
        return self._authorization

    def ambiguous(self) -> bool:
        """Return True if the request carries two different credentials (CREDENTIAL_HEADERS), for
        example a bearer key in Authorization and another in X-API-Key. The same value sent twice
        (a bearer key in both) is one credential."""
        headers = self.headers
        if type(headers) is RawHeaders:  # the common case, inline: one credential header at most
            index = headers._index
            if index is None:
                index = headers._index = dict(reversed(headers._raw))
            # (CREDENTIAL_HEADERS spelt out: five lookups cost less than a set intersection)
            if ((b"authorization" in index) + (b"x-api-key" in index) + (b"sr-access-key" in index)
                    + (b"kalshi-access-key" in index) + (b"apikey" in index)) < 2:
                return False
        values = set()
        for name in CREDENTIAL_HEADERS:
            value = self.authorization[1] if name == "authorization" else (headers.get(name) or "").strip()
            if value:
                values.add(value)
        return len(values) > 1

    @property
    def has_body(self) -> bool:
        """True if the request announces a body (Content-Length or Transfer-Encoding)."""
        return "content-length" in self.headers or "transfer-encoding" in self.headers

    async def read_body(self) -> bytes:
        """Read the raw body once (when the request announces one) and return it."""
        if self._body_reader is not None:
            reader, self._body_reader = self._body_reader, None
            self.body = await reader() if self.has_body else b""
        return self.body


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """Return the client's IP: the peer, unless the peer is a trusted proxy, in which case the
    right-most X-Forwarded-For address that is not itself a trusted proxy."""
    if not peer or not trusted or not forwarded_for:
        return peer

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer
