"""The SSRF guard: which webhook URLs and addresses Strongroom may send to.

A URL is ``http`` or ``https`` with a host, no credentials and at most 2048 characters. Its host must
resolve only to public addresses: loopback, private (RFC 1918), link-local (and so the cloud metadata
address 169.254.169.254), CGNAT ``100.64.0.0/10``, ``0.0.0.0/8``, unique-local ``fc00::/7``,
IPv4-mapped IPv6, multicast, reserved and every other non-global address are refused, unless
``STRONGROOM_WEBHOOK_ALLOW_PRIVATE=true``. A delivery connects to the address vetted here (never a
second lookup that DNS rebinding could change).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from strongroom.errors import BadRequest

MAX_URL = 2048
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
CGNAT = ipaddress.ip_network("100.64.0.0/10")
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
            ipaddress.ip_address("100.100.100.200")}


class AddressRefused(BadRequest):
    """The webhook URL's host resolves to an address Strongroom does not send to (SSRF guard)."""

    code = "webhook_url_refused"


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart: where to connect and what to say (Host header, SNI, path)."""

    scheme: str
    host: str  # as written, lower case (a name in its ASCII form, or an IP literal without brackets)
    port: int
    path: str  # path and query, at least "/", ASCII (anything else percent-encoded)


def parse(url: str) -> Target:
    """Return ``url`` taken apart. Raises BadRequest for anything but an http(s) URL with a host, no
    credentials and no fragment, of at most 2048 characters."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise BadRequest(f"a webhook URL is 1 to {MAX_URL} characters", fields={"url": "too long or empty"})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest("the webhook URL is not a valid URL", fields={"url": "not a URL"}) from None
    if parts.scheme not in ("http", "https"):
        raise BadRequest("a webhook URL is http or https", fields={"url": "http or https only"})
    if not parts.hostname:
        raise BadRequest("the webhook URL has no host", fields={"url": "no host"})
    if parts.username is not None or parts.password is not None:
        raise BadRequest("a webhook URL carries no credentials (user:password@)", fields={"url": "credentials"})
    if any(c.isspace() for c in url):
        raise BadRequest("the webhook URL contains whitespace", fields={"url": "whitespace"})
    host = parts.hostname
    if not host.isascii():  # an internationalised name: its ASCII form goes in the Host header and the SNI
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadRequest("the webhook URL's host is not a valid name", fields={"url": "host"}) from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not path.isascii():  # sent percent-encoded (UTF-8), as browsers and httpx do; what is already encoded stays
        path = quote(path, safe="/?:@!$&'()*+,;=%~")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def refusal(address: Address) -> str | None:
    """Return why ``address`` is refused as a webhook destination (a short phrase), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address):
        if address in CGNAT:
            return "a CGNAT address (100.64.0.0/10)"
        if address in THIS_NETWORK:
            return "an address of 0.0.0.0/8"
    elif address in UNIQUE_LOCAL:
        return "a unique-local IPv6 address (fc00::/7)"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved or not address.is_global:
        return "a non-public address"
    return None


def literal(host: str) -> Address | None:
    """Return ``host`` as an IP address if it is one (brackets and an IPv6 zone dropped), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def vet(addresses: list[Address], host: str, allow_private: bool) -> Address:
    """Return the address to connect to among ``addresses`` (``host``'s). Raises AddressRefused if there is
    none, or if any is refused (one refused answer refuses the name: no choosing among a mixed set)."""
    if not addresses:
        raise AddressRefused(f"the webhook host {host} does not resolve", fields={"url": "does not resolve"})
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise AddressRefused(
                    f"the webhook host {host} resolves to {why}, which Strongroom does not send to "
                    "(STRONGROOM_WEBHOOK_ALLOW_PRIVATE=true allows it)", fields={"url": "refused address"})
    return addresses[0]


def _from_getaddrinfo(infos: list[tuple[object, ...]]) -> list[Address]:
    found: list[Address] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def resolve(target: Target, allow_private: bool) -> Address:
    """Resolve ``target``'s host (blocking) and vet it; return the address to connect to. Raises AddressRefused."""
    address = literal(target.host)
    if address is not None:
        return vet([address], target.host, allow_private)
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        infos = []
    return vet(_from_getaddrinfo(list(infos)), target.host, allow_private)


async def resolve_async(target: Target, allow_private: bool) -> Address:
    """:func:`resolve` on the running loop (its resolver runs in a thread). Raises AddressRefused."""
    import asyncio

    address = literal(target.host)
    if address is not None:
        return vet([address], target.host, allow_private)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        infos = []
    return vet(_from_getaddrinfo(list(infos)), target.host, allow_private)


def check_url(url: str, allow_private: bool) -> Target:
    """Return ``url`` parsed, its host resolving only to allowed addresses. Raises BadRequest / AddressRefused."""
    target = parse(url)
    resolve(target, allow_private)
    return target
