"""Origins of ActivityPub URLs: which server vouches for an object id.

Pure module (no httpx). Hosts are read with `addresses.parse_host`, so `EXAMPLE.org.`,
`example.org` and `example.org:443` over https are one origin, and `2130706433` is 127.0.0.1.
URLs that different parsers could read differently (userinfo, backslashes, whitespace, control
characters, non-ASCII hosts) are refused rather than guessed at.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import NamedTuple
from urllib.parse import urlsplit

from node.activitypub.addresses import InvalidHostError, parse_host

__all__ = ["DEFAULT_PORTS", "InvalidUrlError", "Origin", "origin_of", "same_origin"]

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}


class InvalidUrlError(ValueError):
    """A URL that is not an absolute http(s) URL with a plain host."""


class Origin(NamedTuple):
    """(scheme, host, port) with the scheme lower-cased, the host normalised, the port explicit."""

    scheme: str
    host: str
    port: int


def origin_of(url: str) -> Origin:
    """The origin of an absolute http(s) URL; raise `InvalidUrlError` for anything else."""
    if any(ord(char) <= 0x20 or ord(char) == 0x7F or char == "\\" for char in url):
        raise InvalidUrlError(f"URL {url!r} contains whitespace, control characters or '\\'")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidUrlError(f"unparsable URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidUrlError(f"URL {url!r} is not http or https")
    netloc = parts.netloc
    if not netloc:
        raise InvalidUrlError(f"URL {url!r} has no host")
    if "@" in netloc:
        raise InvalidUrlError(f"URL {url!r} carries credentials (userinfo)")
    host_text, port = _split_port(netloc, url)
    try:
        host = parse_host(host_text)
    except InvalidHostError as exc:
        raise InvalidUrlError(f"URL {url!r}: {exc}") from None
    if isinstance(host, IPv6Address):
        host_str = host.compressed
    else:
        host_str = str(host)
    return Origin(scheme, host_str, DEFAULT_PORTS[scheme] if port is None else port)


def same_origin(a: str, b: str) -> bool:
    """True when both URLs are valid http(s) URLs with the same origin; False otherwise."""
    try:
        return origin_of(a) == origin_of(b)
    except InvalidUrlError:
        return False


def _split_port(netloc: str, url: str) -> tuple[str, int | None]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise InvalidUrlError(f"URL {url!r} has an unclosed IPv6 literal")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidUrlError(f"URL {url!r} has garbage after its IPv6 literal")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_found = netloc.rpartition(":")
        if not sep:
            host, port_text = netloc, None
        else:
            port_text = port_text_found
        if ":" in host:
            raise InvalidUrlError(f"URL {url!r} has an IPv6 literal without brackets")
    if port_text is None or port_text == "":
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise InvalidUrlError(f"URL {url!r} has an invalid port {port_text!r}")
    return host, int(port_text)
