"""Which addresses federation may reach; how URL hosts and origins are read.

The Fedify rows replay the cases of Fedify's SSRF fixes to validatePublicUrl /
isValidPublicIPv4Address / isValidPublicIPv6Address / expandIPv6Address
(fedify-dev/fedify, packages/vocab-runtime/src/url.test.ts): IPv4-mapped hex forms,
NAT64 and local-use NAT64, Teredo, 6to4, CGNAT, benchmarking, multicast, reserved,
documentation, 6to4-relay and IETF-protocol ranges.
"""

from __future__ import annotations

import ast
import ipaddress
from pathlib import Path

import pytest

from node.activitypub import addresses, urls
from node.activitypub.addresses import (
    InvalidHostError,
    forbidden_reason,
    is_public_address,
    parse_host,
)
from node.activitypub.urls import InvalidUrlError, Origin, origin_of, same_origin

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "192.88.98.255",
    "192.88.100.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "2a00:1450:4007:80e::200e",
    "2c0f:fb50:4003::1",
    # IPv6 forms wrapping a public IPv4 are judged by the IPv4 they wrap.
    "::ffff:8.8.8.8",
    "::ffff:808:808",
    "::8.8.8.8",
    "64:ff9b::808:808",  # Fedify: NAT64 public
    "64:ff9b::8.8.8.8",  # Fedify
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]

FORBIDDEN = [
    # IPv4 special-purpose space
    ("0.0.0.0", "this network"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "RFC 1918"),
    ("10.255.255.255", "RFC 1918"),
    ("100.64.0.1", "RFC 6598"),  # Fedify: shared address space
    ("100.127.255.255", "RFC 6598"),  # Fedify
    ("127.0.0.1", "loopback"),  # Fedify
    ("127.16.0.1", "loopback"),  # Fedify
    ("127.255.255.254", "loopback"),
    ("169.254.0.1", "link-local"),  # Fedify
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("172.16.0.1", "RFC 1918"),
    ("172.31.255.255", "RFC 1918"),
    ("192.0.0.1", "RFC 6890"),  # Fedify: IETF protocol assignments
    ("192.0.0.9", "RFC 6890"),  # is_global says True on Python 3.11
    ("192.0.0.170", "RFC 6890"),
    ("192.0.2.1", "RFC 5737"),  # Fedify: documentation
    ("192.88.99.0", "RFC 7526"),  # Fedify: 6to4 relay anycast
    ("192.88.99.1", "RFC 7526"),  # Fedify
    ("192.88.99.2", "RFC 7526"),  # Fedify: 6a44 relay anycast
    ("192.88.99.255", "RFC 7526"),  # Fedify
    ("192.168.1.1", "RFC 1918"),  # Fedify
    ("198.18.0.1", "RFC 2544"),  # Fedify: benchmarking
    ("198.19.255.255", "RFC 2544"),  # Fedify
    ("198.51.100.1", "RFC 5737"),  # Fedify
    ("203.0.113.1", "RFC 5737"),  # Fedify
    ("224.0.0.1", "multicast"),  # Fedify; is_global says True on Python 3.11
    ("233.252.0.1", "multicast"),
    ("239.255.255.255", "multicast"),  # Fedify
    ("240.0.0.1", "reserved"),  # Fedify
    ("255.255.255.255", "broadcast"),  # Fedify
    # IPv6
    ("::", "unspecified"),  # Fedify
    ("::1", "loopback"),  # Fedify
    ("fc00::1", "unique local"),  # Fedify
    ("fd12:3456:789a::1", "unique local"),
    ("fe80::1", "link-local"),  # Fedify
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),  # is_global says True on Python 3.11
    ("feff::1", "site-local"),
    ("ff00::1", "multicast"),  # Fedify
    ("ff02::1", "multicast"),
    ("100::1", "discard"),
    ("100::ffff:ffff:ffff:ffff", "discard"),
    ("2001:db8::1", "documentation"),  # Fedify accepts it; it is not routable
    ("3fff::1", "documentation"),
    ("5f00::1", "segment routing"),
    ("2001:10::1", "IETF protocol"),  # ORCHID
    ("2001:20::1", "IETF protocol"),  # ORCHIDv2
    ("4000::1", "2000::/3"),
    ("::2:0:0:0:1", "2000::/3"),
    # Teredo: refused whatever it wraps
    ("2001::", "Teredo"),  # Fedify
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),  # Fedify
    # IPv4-mapped, in every spelling (the WHATWG parser emits the hex one)
    ("::ffff:7f00:1", "IPv4-mapped, wrapping 127.0.0.1"),  # Fedify
    ("::ffff:127.0.0.1", "IPv4-mapped, wrapping 127.0.0.1"),
    ("0:0:0:0:0:ffff:7f00:0001", "IPv4-mapped, wrapping 127.0.0.1"),
    ("::ffff:10.0.0.1", "IPv4-mapped, wrapping 10.0.0.1"),
    ("::ffff:a9fe:a9fe", "IPv4-mapped, wrapping 169.254.169.254"),
    ("::ffff:0.0.0.0", "IPv4-mapped, wrapping 0.0.0.0"),
    ("::ffff:100.64.0.1", "IPv4-mapped, wrapping 100.64.0.1"),
    # IPv4-translated (SIIT) and IPv4-compatible
    ("::ffff:0:127.0.0.1", "IPv4-translated"),
    ("::ffff:0:8.8.8.8", "IPv4-translated"),
    ("::127.0.0.1", "IPv4-compatible, wrapping 127.0.0.1"),
    ("::10.0.0.1", "IPv4-compatible, wrapping 10.0.0.1"),
    ("::a9fe:a9fe", "IPv4-compatible, wrapping 169.254.169.254"),
    # NAT64 well-known prefix wrapping private IPv4
    ("64:ff9b::7f00:1", "NAT64, wrapping 127.0.0.1"),  # Fedify
    ("64:ff9b::127.0.0.1", "NAT64, wrapping 127.0.0.1"),  # Fedify
    ("64:ff9b::a00:1", "NAT64, wrapping 10.0.0.1"),  # Fedify
    ("64:ff9b::10.0.0.1", "NAT64, wrapping 10.0.0.1"),  # Fedify
    ("64:ff9b::a9fe:a9fe", "NAT64, wrapping 169.254.169.254"),
    ("64:ff9b::e000:1", "NAT64, wrapping 224.0.0.1"),
    # Local-use NAT64 (RFC 8215): its layout is the operator's, so it is refused outright
    ("64:ff9b:1::", "RFC 8215"),  # Fedify
    ("64:ff9b:1::a00:1", "RFC 8215"),  # Fedify
    ("64:ff9b:1::10.0.0.1", "RFC 8215"),  # Fedify
    ("64:ff9b:1::808:808", "RFC 8215"),  # Fedify
    # 6to4 wrapping private IPv4
    ("2002::", "6to4, wrapping 0.0.0.0"),
    ("2002:a00:1::", "6to4, wrapping 10.0.0.1"),  # Fedify
    ("2002:7f00:1::", "6to4, wrapping 127.0.0.1"),  # Fedify
    ("2002:c0a8:1::", "6to4, wrapping 192.168.0.1"),  # Fedify
    ("2002:a9fe:1::", "6to4, wrapping 169.254.0.1"),  # Fedify
    ("2002:a9fe:a9fe::1", "6to4, wrapping 169.254.169.254"),
    # Scoped addresses are bound to a local interface
    ("fe80::1%eth0", "scoped"),
    ("2001:4860::1%eth0", "scoped"),
]


@pytest.mark.parametrize("text", PUBLIC)
def test_is_public_address__public(text: str) -> None:
    ip = ipaddress.ip_address(text)
    assert is_public_address(ip)
    assert forbidden_reason(ip) is None


@pytest.mark.parametrize(("text", "why"), FORBIDDEN)
def test_is_public_address__forbidden(text: str, why: str) -> None:
    ip = ipaddress.ip_address(text)
    assert not is_public_address(ip)
    reason = forbidden_reason(ip)
    assert reason is not None and why in reason


# Fedify's validatePublicUrl cases, read through our URL and host parsers.
FEDIFY_URLS_REFUSED = [
    "https://127.0.0.1",
    "https://[::1]",
    "http://[::ffff:7f00:1]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[64:ff9b::a00:1]/",
    "https://[64:ff9b:1::a00:1]/",
    "https://[64:ff9b:1::808:808]/",
    "https://[2001::]/",
    "https://[2002:a00:1::]/",
    "https://100.64.0.1",
    "https://198.18.0.1",
    "https://224.0.0.1",
    "https://240.0.0.1",
    "https://192.0.2.1",
    "https://192.88.99.1",
    "https://198.51.100.1",
    "https://203.0.113.1",
    "https://[2001:db8::1]",  # Fedify accepts this one
    # Other spellings of loopback that getaddrinfo would accept
    "https://2130706433/",
    "https://0x7f.1/",
    "https://0x7f000001/",
    "https://017700000001/",
    "https://127.1/",
    "https://127.0.0.1./",
    "https://[::ffff:127.0.0.1]/",
    "https://0/",
]


def _url_host_is_public(url: str) -> bool:
    host = parse_host(origin_of(url).host)
    return not isinstance(host, str) and is_public_address(host)


@pytest.mark.parametrize("url", FEDIFY_URLS_REFUSED)
def test_url_literal_hosts__refused(url: str) -> None:
    assert not _url_host_is_public(url)


@pytest.mark.parametrize("url", ["https://[64:ff9b::8.8.8.8]", "https://8.8.8.8/"])
def test_url_literal_hosts__public(url: str) -> None:
    assert _url_host_is_public(url)


HOSTS = [
    ("example.org", "example.org"),
    ("Example.ORG.", "example.org"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("_service.example.org", "_service.example.org"),
    ("localhost", "localhost"),
    ("0xg.example", "0xg.example"),  # not a number, so a name
    ("127.0.0.1", ipaddress.ip_address("127.0.0.1")),
    ("127.0.0.1.", ipaddress.ip_address("127.0.0.1")),
    ("2130706433", ipaddress.ip_address("127.0.0.1")),
    ("0x7f.1", ipaddress.ip_address("127.0.0.1")),
    ("0X7F.0.0.1", ipaddress.ip_address("127.0.0.1")),
    ("0x7f000001", ipaddress.ip_address("127.0.0.1")),
    ("017700000001", ipaddress.ip_address("127.0.0.1")),
    ("0177.0.0.01", ipaddress.ip_address("127.0.0.1")),
    ("127.1", ipaddress.ip_address("127.0.0.1")),
    ("10.1.256", ipaddress.ip_address("10.1.1.0")),
    ("0", ipaddress.ip_address("0.0.0.0")),
    ("4294967295", ipaddress.ip_address("255.255.255.255")),
    ("[::1]", ipaddress.ip_address("::1")),
    ("::1", ipaddress.ip_address("::1")),
    ("[::FFFF:127.0.0.1]", ipaddress.ip_address("::ffff:7f00:1")),
    ("[fe80::1%25eth0]", ipaddress.ip_address("fe80::1%eth0")),
]


@pytest.mark.parametrize(("host", "expected"), HOSTS)
def test_parse_host(host: str, expected: object) -> None:
    assert parse_host(host) == expected


BAD_HOSTS = [
    "",
    ".",
    "a..b",
    "-",
    "exa mple.org",
    "exa/mple.org",
    "evil.com\\@good.org",
    "user@example.org",
    "bücher.example",
    "a" * 64 + ".example",
    ("a" * 60 + ".") * 5 + "org",
    "1.2.3.4.5",
    "example.123",
    "256.1.1.1",
    "1.2.3.256",
    "4294967296",
    "08.0.0.1",
    "0x1g.0.0.1",
    "[::1",
    "::1]",
    "[example.org]",
    "[127.0.0.1]",
    "[::1]:80",
    "1:2:3",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_parse_host__invalid(host: str) -> None:
    with pytest.raises(InvalidHostError):
        parse_host(host)


ORIGINS = [
    ("https://example.org/users/a", Origin("https", "example.org", 443)),
    ("HTTPS://Example.ORG./x", Origin("https", "example.org", 443)),
    ("https://example.org:443/", Origin("https", "example.org", 443)),
    ("https://example.org:/", Origin("https", "example.org", 443)),
    ("http://example.org/", Origin("http", "example.org", 80)),
    ("http://127.0.0.1:8000/a", Origin("http", "127.0.0.1", 8000)),
    ("https://[2001:4860::8888]:8443/", Origin("https", "2001:4860::8888", 8443)),
    ("https://2130706433/", Origin("https", "127.0.0.1", 443)),
    ("https://example.org?q#f", Origin("https", "example.org", 443)),
]


@pytest.mark.parametrize(("url", "expected"), ORIGINS)
def test_origin_of(url: str, expected: Origin) -> None:
    assert origin_of(url) == expected


BAD_URLS = [
    "",
    "/relative/path",
    "//example.org/x",
    "ftp://example.org/",
    "javascript:alert(1)",
    "https://",
    "https:///path",
    "https://user:pass@example.org/",
    "https://evil.example\\@good.example/",
    "https://example.org\t/",
    "https://exa mple.org/",
    "https://example.org:0/",
    "https://example.org:65536/",
    "https://example.org:https/",
    "https://::1/",
    "https://[::1/",
    "https://[::1]junk/",
    "https://bücher.example/",
    "https://1.2.3.4.5/",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_origin_of__invalid(url: str) -> None:
    with pytest.raises(InvalidUrlError):
        origin_of(url)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("https://example.org/a", "https://example.org/b#c", True),
        ("https://example.org/a", "https://EXAMPLE.org.:443/z", True),
        ("https://example.org/a", "http://example.org/a", False),
        ("https://example.org/a", "https://example.org:8443/a", False),
        ("https://example.org/a", "https://sub.example.org/a", False),
        ("https://example.org/a", "https://example.org.evil/a", False),
        ("https://127.0.0.1/", "https://2130706433/", True),
        ("https://[::1]/", "https://[0:0::1]/", True),
        ("https://a@example.org/", "https://example.org/", False),
        ("not a url", "not a url", False),
    ],
)
def test_same_origin(a: str, b: str, expected: bool) -> None:
    assert same_origin(a, b) is expected


@pytest.mark.parametrize("module", [addresses, urls])
def test_all_names_exist(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert hasattr(module, name), name


@pytest.mark.parametrize("module", [addresses, urls])
def test_pure_modules_import_only_the_standard_library(module: object) -> None:
    path = Path(module.__file__)  # type: ignore[attr-defined]
    allowed = {"__future__", "ipaddress", "string", "typing", "urllib", "node"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots = {node.module.split(".")[0]}
            if node.module.startswith("node."):
                assert node.module == "node.activitypub.addresses", node.module
        else:
            continue
        assert roots <= allowed, roots
