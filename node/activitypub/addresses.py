"""Which IP addresses a federation request may reach, and how URL hosts are read.

Pure module (no httpx): the guarded transport (`transport.py`) calls it on every address a
hostname resolves to, right before connecting.

The policy is an allow-list: an address is public only if it is global unicast, not in any
special-purpose block of the IANA registries, and — for IPv6 forms that carry an IPv4 address
(IPv4-mapped, IPv4-compatible, NAT64, 6to4) — only if the embedded IPv4 is public too.
`ipaddress.is_global` alone is not enough: on the Python 3.11 we run, it calls multicast
(224.0.0.1), 192.0.0.0/24, the 6to4 relay 192.88.99.0/24, site-local fec0::/10, NAT64 and 6to4
wrappers of private addresses "global". Fedify's SSRF advisories (validatePublicUrl,
isValidPublicIPv4Address/IPv6Address, expandIPv6Address) are the regression list for this module;
see tests/activitypub/test_addresses.py.
"""

from __future__ import annotations

import ipaddress
import string
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

__all__ = [
    "IPAddress",
    "InvalidHostError",
    "forbidden_reason",
    "is_public_address",
    "parse_host",
]

IPAddress = IPv4Address | IPv6Address


class InvalidHostError(ValueError):
    """A URL host that is neither a valid hostname nor an IP address in any accepted form."""


# Every block here is refused, whatever `is_global` says. (network, why, reference)
_IPV4_FORBIDDEN: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(cidr), why)
    for cidr, why in (
        ("0.0.0.0/8", "'this network' (RFC 791)"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "shared carrier-grade NAT space (RFC 6598)"),
        ("127.0.0.0/8", "loopback (RFC 1122)"),
        ("169.254.0.0/16", "link-local (RFC 3927)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
        ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
        ("192.88.99.0/24", "6to4 relay anycast (RFC 7526)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking (RFC 2544)"),
        ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
        ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
        ("224.0.0.0/4", "multicast (RFC 5771)"),
        ("240.0.0.0/4", "reserved or broadcast (RFC 1112, RFC 919)"),
    )
)

_IPV6_FORBIDDEN: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(cidr), why)
    for cidr, why in (
        ("::/128", "unspecified (RFC 4291)"),
        ("::1/128", "loopback (RFC 4291)"),
        ("::ffff:0:0:0/96", "IPv4-translated (RFC 2765)"),
        ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation (RFC 8215)"),
        ("100::/64", "discard-only (RFC 6666)"),
        ("2001::/32", "Teredo tunnelling (RFC 4380)"),
        ("2001::/23", "IETF protocol assignments (RFC 2928)"),
        ("2001:db8::/32", "documentation (RFC 3849)"),
        ("3fff::/20", "documentation (RFC 9637)"),
        ("5f00::/16", "segment routing SIDs (RFC 9602)"),
        ("fc00::/7", "unique local (RFC 4193)"),
        ("fe80::/10", "link-local (RFC 4291)"),
        ("fec0::/10", "site-local (RFC 3879)"),
        ("ff00::/8", "multicast (RFC 4291)"),
    )
)

# IPv6 blocks whose last 32 bits are an IPv4 address that a packet really goes to.
_IPV6_EMBEDDING_IPV4_LOW: tuple[tuple[IPv6Network, str], ...] = (
    (IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
    (IPv6Network("::/96"), "IPv4-compatible"),
    (IPv6Network("64:ff9b::/96"), "NAT64"),
)
_IPV6_6TO4 = IPv6Network("2002::/16")  # 2002:AABB:CCDD::/48 wraps AA.BB.CC.DD (RFC 3056)
_IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be reached from a federation request, or None when it is public."""
    if isinstance(ip, IPv4Address):
        return _ipv4_reason(ip)
    if ip.scope_id:
        return "a scoped (interface-bound) IPv6 address"
    for network, why in _IPV6_FORBIDDEN:
        if ip in network:
            return why
    for network, label in _IPV6_EMBEDDING_IPV4_LOW:
        if ip in network:
            return _embedded_reason(label, IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _IPV6_6TO4:
        return _embedded_reason("6to4", IPv4Address((int(ip) >> 80) & 0xFFFFFFFF))
    if ip not in _IPV6_GLOBAL_UNICAST:
        return "outside IPv6 global unicast space 2000::/3"
    if not ip.is_global:
        return "not globally routable"
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a global unicast address a federation request may connect to."""
    return forbidden_reason(ip) is None


def _ipv4_reason(ip: IPv4Address) -> str | None:
    for network, why in _IPV4_FORBIDDEN:
        if ip in network:
            return why
    if not ip.is_global:
        return "not globally routable"
    return None


def _embedded_reason(label: str, embedded: IPv4Address) -> str | None:
    reason = _ipv4_reason(embedded)
    if reason is None:
        return None
    return f"{label}, wrapping {embedded} which is {reason}"


# --- hosts ------------------------------------------------------------------------------------

_HOSTNAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_")
_HEX_DIGITS = frozenset(string.hexdigits)
_OCTAL_DIGITS = frozenset(string.octdigits)


def parse_host(host: str) -> IPAddress | str:
    """Read a URL host as an IP literal or a normalised hostname.

    - `[v6]` and bare IPv6 literals become `IPv6Address` (a `%25` zone is decoded);
    - a host whose last label is a number is an IPv4 address in the WHATWG URL sense, so the
      forms that `inet_aton`/`getaddrinfo` also accept — `2130706433`, `0x7f.1`, `017700000001`,
      `127.1`, `127.0.0.1.` — become the `IPv4Address` they denote, and any other numeric-looking
      host (`1.2.3.4.5`, `example.123`, `256.1.1.1`) is an `InvalidHostError`;
    - a hostname is returned lower-cased without its trailing dot, after checking its labels.

    Non-ASCII hostnames are refused: pass the IDNA (punycode) form, as `httpx.URL.raw_host` gives.
    """
    if not host:
        raise InvalidHostError("empty host")
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            raise InvalidHostError(f"unbalanced brackets in host {host!r}")
        return _parse_ipv6(host[1:-1], host)
    if ":" in host:
        return _parse_ipv6(host, host)
    if not host.isascii():
        raise InvalidHostError(f"non-ASCII host {host!r}: use its IDNA (xn--) form")
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if _ends_in_number(labels):
        return _parse_ipv4_whatwg(labels, host)
    if not name or len(name) > 253:
        raise InvalidHostError(f"invalid hostname {host!r}")
    for label in labels:
        if (
            not 1 <= len(label) <= 63
            or not set(label) <= _HOSTNAME_CHARS
            or label[0] == "-"
            or label[-1] == "-"
        ):
            raise InvalidHostError(f"invalid hostname {host!r}")
    return name


def _parse_ipv6(text: str, original: str) -> IPv6Address:
    text = text.replace("%25", "%", 1)
    try:
        return IPv6Address(text)
    except ValueError:
        raise InvalidHostError(f"invalid IPv6 literal {original!r}") from None


def _ends_in_number(labels: list[str]) -> bool:
    last = labels[-1]
    if not last:
        return False
    if last.isdigit() and last.isascii():
        return True
    return _ipv4_number(last) is not None


def _ipv4_number(part: str) -> int | None:
    """One dotted part in the WHATWG/inet_aton sense: decimal, 0x-hex or 0-octal."""
    if not part:
        return None
    if part[:2] in ("0x", "0X"):
        hex_digits = part[2:]
        if not set(hex_digits) <= _HEX_DIGITS:
            return None
        return int(hex_digits, 16) if hex_digits else 0
    if not (part.isascii() and part.isdigit()):
        return None
    if len(part) > 1 and part[0] == "0":
        if not set(part) <= _OCTAL_DIGITS:
            return None
        return int(part, 8)
    return int(part, 10)


def _parse_ipv4_whatwg(labels: list[str], original: str) -> IPv4Address:
    if len(labels) > 4:
        raise InvalidHostError(f"host {original!r} ends in a number but is not an IPv4 address")
    numbers = [_ipv4_number(label) for label in labels]
    if any(number is None for number in numbers):
        raise InvalidHostError(f"host {original!r} ends in a number but is not an IPv4 address")
    values = [number for number in numbers if number is not None]
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (5 - len(values)):
        raise InvalidHostError(f"IPv4 address {original!r} is out of range")
    address = last
    for index, value in enumerate(head):
        address += value << (8 * (3 - index))
    return ipaddress.IPv4Address(address)
