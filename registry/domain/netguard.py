"""Where an outgoing webhook may go: the URL's shape, and every address its host resolves to.

Pure: the resolver's answer comes in as a list of strings. The worker checks the addresses of every
attempt and connects to the one it checked, so a DNS answer that changes after the check cannot win.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

MAX_URL = 2000
IP = ipaddress.IPv4Address | ipaddress.IPv6Address

CGNAT = ipaddress.ip_network("100.64.0.0/10")
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
# IPv6 prefixes that carry an IPv4 address inside: the IPv4 address is what is reached.
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class AddressRefused(ValueError):
    """A URL or an address a webhook may not reach; the message says why, for the form or the log."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-case ASCII (IDNA), without brackets
    port: int
    path: str  # path and query, what goes on the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == default else f"{shown}:{self.port}"


def parse_url(url: str, *, allow_http: bool) -> Target:
    """The URL's shape: https (http only where allowed), a host, no user name or password, a port."""
    if not isinstance(url, str) or not url.strip():
        raise AddressRefused("Give the endpoint's URL, e.g. https://hooks.example.com/registry.")
    url = url.strip()
    if len(url) > MAX_URL:
        raise AddressRefused(f"The URL is too long (at most {MAX_URL} characters).")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise AddressRefused("The URL cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AddressRefused("This is not a URL we can read (check the host and the port).") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_http and scheme == "http"):
        raise AddressRefused("The URL must start with https://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise AddressRefused("The URL cannot contain a user name or password; use the signature instead.")
    if parts.fragment:
        raise AddressRefused("The URL cannot contain a #fragment.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise AddressRefused("The URL has no host name.")
    if port == 0:
        raise AddressRefused("The URL's port must be between 1 and 65535.")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None:
        try:
            host = idna.encode(host, uts46=True).decode("ascii").lower()
        except idna.IDNAError:
            raise AddressRefused("The URL's host name is not a valid domain name.") from None
        if "." not in host:
            raise AddressRefused("The URL's host must be a full domain name, e.g. hooks.example.com.")
    else:
        host = str(literal)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in SIX_TO_FOUR:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal(raw: str, *, allow_loopback: bool = False) -> str | None:
    """Why an address may not be reached, or None. Only public unicast addresses may."""
    try:
        address: IP = ipaddress.ip_address(raw.split("%", 1)[0])
    except ValueError:
        return f"{raw!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = refusal(str(inner), allow_loopback=allow_loopback)
            return f"{address} carries {why}" if why else None
    if address in METADATA:
        return f"{address} is a cloud metadata address"
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    for label, test in (("an unspecified", address.is_unspecified), ("a link-local", address.is_link_local),
                        ("a multicast", address.is_multicast), ("a private", address.is_private),
                        ("a reserved", address.is_reserved)):
        if test:
            return f"{address} is {label} address"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return f"{address} is a shared (CGNAT) address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def choose(addresses: list[str], *, allow_loopback: bool = False) -> str:
    """The address to connect to: every one the name resolved to must be allowed (a name with one
    bad answer among good ones is refused, whichever the connection would have used)."""
    if not addresses:
        raise AddressRefused("the host name did not resolve")
    for raw in addresses:
        why = refusal(raw, allow_loopback=allow_loopback)
        if why:
            raise AddressRefused(why)
    return addresses[0].split("%", 1)[0]
