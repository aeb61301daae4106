"""Outgoing HTTP that cannot be steered to private addresses (SSRF guard).

The guard sits at the lowest layer httpx offers, the httpcore *network backend*: every TCP
connection the client opens — first request, keep-alive replacement, each redirect hop — goes
through `GuardedNetworkBackend.connect_tcp`, which resolves the hostname itself, refuses the
connection if any resolved address is not public (`addresses.forbidden_reason`), and then connects
to the checked IP *literal*. The address connected to is therefore the address checked: there is
no second DNS lookup a rebinding attacker could answer differently.

Connections are kept alive and reused, in one small pool per host (`HostPools`); over TLS the
client offers HTTP/2 by ALPN (`http2=True`, the `h2` package) and one connection then carries
every concurrent request to that host. Either way a connection is only ever opened by
`connect_tcp`: reuse never skips the guard, it only saves a new, guarded, connection.

TLS is unaffected: httpcore's `AsyncHTTPConnection._connect` (httpcore 1.0) calls
`connect_tcp(host=origin.host, ...)` and then, separately,
`stream.start_tls(ssl_context, server_hostname=sni_hostname or origin.host)` — SNI and certificate
verification use the URL's hostname, never the IP we chose; the `Host` header is built by httpx
from the URL as well.

Injection: `httpx.AsyncHTTPTransport` builds its `httpcore.AsyncConnectionPool` inside
`__init__` and exposes no `network_backend` argument, so `GuardedTransport` subclasses it and
replaces `self._pool` with `HostPools`, whose per-host pools are built the same way plus
`network_backend=`. Request/response
mapping, exception mapping and streaming stay httpx's own code. `_pool` is a private attribute:
the tests assert the swap took effect, so an httpx upgrade that renames it fails loudly.
Proxies are never configured (`proxy=None`, `trust_env=False`), so `HTTP(S)_PROXY`/`ALL_PROXY`
cannot route around the guard.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

from node.activitypub.addresses import InvalidHostError, IPAddress, forbidden_reason, parse_host

__all__ = [
    "ForbiddenAddressError",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "HostPools",
    "Resolver",
    "make_async_client",
    "system_resolver",
    "UnknownHostError",
]

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""`async (hostname, port) -> addresses`; tests inject one to map names to chosen addresses."""

# httpcore's SOCKET_OPTION alias (httpcore._backends.base), spelled out to avoid a private import.
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
#: Per host (`HostPools`): connections kept open between requests (HTTP/1.1 keep-alive, or
#: one multiplexed HTTP/2 connection where the host offers it through ALPN).
_DEFAULT_LIMITS = httpx.Limits(
    max_connections=16, max_keepalive_connections=4, keepalive_expiry=30.0
)


class UnknownHostError(httpx.ConnectError):
    """The host name does not exist (the resolver says so for certain): a typo or a gone
    domain, not an outage worth retrying."""


#: getaddrinfo's answers that mean "no such name", not "the resolver failed".
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class ForbiddenAddressError(httpx.ConnectError):
    """A connection refused by the guard: the host is, or resolves to, a non-public address.

    A subclass of `httpx.ConnectError`, so code that retries or reports connect failures handles
    it without knowing about the guard; `host`, `address` and `reason` say what was refused.
    """

    def __init__(self, host: str, address: IPAddress | None, reason: str) -> None:
        if address is None:
            message = f"refused to connect to {host!r}: {reason}"
        elif str(address) == host:
            message = f"refused to connect to {host}: it is {reason}"
        else:
            message = f"refused to connect to {host!r}: {address} is {reason}"
        super().__init__(message)
        self.host = host
        self.address = address
        self.reason = reason


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve `host` with the event loop's `getaddrinfo` (TCP, IPv4 and IPv6)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addresses.append(ipaddress.ip_address(sockaddr[0]))
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend that resolves, checks, then connects to the checked IP literal.

    With `allow_private_addresses=False` a connection is refused when *any* resolved address is
    not public (a name answering both 203.0.113.7 and 10.0.0.1 is hostile). With True (tests,
    chambers federating on a LAN) every address is allowed; malformed hosts are refused either way.
    `backend` is the backend that really opens sockets (default `httpcore.AnyIOBackend`).
    """

    def __init__(
        self,
        *,
        allow_private_addresses: bool,
        resolver: Resolver | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private_addresses = allow_private_addresses
        self._resolver: Resolver = resolver if resolver is not None else system_resolver
        self._backend = backend if backend is not None else httpcore.AnyIOBackend()

    async def resolve_checked(
        self, host: str, port: int, time_limit: float | None = None
    ) -> list[IPAddress]:
        """The addresses to try for `host`, in resolver order; raise if the guard refuses.

        Resolution is bounded by `time_limit` seconds (`httpcore.ConnectTimeout` past it).
        """
        try:
            parsed = parse_host(host)
        except InvalidHostError as exc:
            raise ForbiddenAddressError(host, None, str(exc)) from None
        if isinstance(parsed, str):
            addresses = _unique(await self._resolve(host, port, time_limit))
            if not addresses:
                raise httpcore.ConnectError(f"{host!r} did not resolve to any address")
        else:
            addresses = [parsed]
        if not self.allow_private_addresses:
            for address in addresses:
                reason = forbidden_reason(address)
                if reason is not None:
                    raise ForbiddenAddressError(host, address, reason)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a TCP stream to the first reachable checked address of `host`."""
        addresses = await self.resolve_checked(host, port, timeout)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # resolve_checked never returns an empty list
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's backend interface
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refused: federation traffic never goes to a local socket."""
        raise ForbiddenAddressError(path, None, "Unix domain sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        """Delegate to the wrapped backend (httpcore uses it between connect retries)."""
        await self._backend.sleep(seconds)

    async def _resolve(self, host: str, port: int, time_limit: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(time_limit):
                return list(await self._resolver(host, port))
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                raise UnknownHostError(f"{host!r} does not exist (no such host name)") from exc
            raise httpcore.ConnectError(f"could not resolve {host!r}: {exc}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host!r}: {exc}") from exc


class GuardedTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` whose connection pool uses a `GuardedNetworkBackend`.

    No proxy, no Unix socket, no environment: what it connects to is what the guard checked.
    `network_backend` replaces the guard's inner backend (tests map public IPs to loopback).
    """

    def __init__(
        self,
        *,
        allow_private_addresses: bool,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        http2: bool = True,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        ssl_context = (
            _default_ssl_context(http2)
            if verify is True
            else httpx.create_ssl_context(verify=verify, trust_env=False)
        )
        super().__init__(verify=ssl_context, trust_env=False, http2=http2, limits=limits)
        self.network_backend = GuardedNetworkBackend(
            allow_private_addresses=allow_private_addresses,
            resolver=resolver,
            backend=network_backend,
        )
        # One pool per host (`HostPools`), each built with the arguments httpx passes
        # (httpx 0.28 AsyncHTTPTransport.__init__) plus the guarded backend.
        self._pool = HostPools(  # type: ignore[assignment]
            lambda: httpcore.AsyncConnectionPool(
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                http1=True,
                http2=http2,
                network_backend=self.network_backend,
            ),
            idle_expiry=limits.keepalive_expiry or 5.0,
        )


_OriginKey = tuple[bytes, bytes, int | None]
"""(scheme, host, port) of a request: what a pool serves (`httpcore.Origin` is not hashable)."""


class HostPools:
    """One `httpcore.AsyncConnectionPool` per origin, made on first use by ``make_pool``.

    httpcore's pool walks all its connections, several times over, on every request and
    response (its bookkeeping is quadratic in the number of connections): one pool for
    hundreds of hosts spends milliseconds per delivery there. Per host, the pool holds a
    few connections and that walk is short. A host's pool unused for ``idle_expiry`` seconds
    with no connection busy is closed when another host's pool is made.
    """

    def __init__(
        self,
        make_pool: Callable[[], httpcore.AsyncConnectionPool],
        *,
        idle_expiry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.make_pool = make_pool
        self.idle_expiry = idle_expiry
        self.clock = clock
        self.pools: dict[_OriginKey, httpcore.AsyncConnectionPool] = {}
        self._used: dict[_OriginKey, float] = {}

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port)
        self._used[origin] = self.clock()  # before any await: never closed as idle now
        pool = self.pools.get(origin)
        if pool is None:
            pool = self.pools[origin] = self.make_pool()
            await self._close_idle()
        return await pool.handle_async_request(request)

    async def _close_idle(self) -> None:
        cutoff = self.clock() - self.idle_expiry
        idle = [
            origin
            for origin, used in self._used.items()
            if used < cutoff
            and all(c.is_idle() or c.is_closed() for c in self.pools[origin].connections)
        ]
        for origin in idle:
            if self._used.get(origin, cutoff) < cutoff:  # not used again while closing others
                pool = self.pools.pop(origin)
                del self._used[origin]
                await pool.aclose()

    async def aclose(self) -> None:
        pools, self.pools, self._used = list(self.pools.values()), {}, {}
        for pool in pools:
            await pool.aclose()

    async def __aenter__(self) -> HostPools:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()


def make_async_client(
    *,
    allow_private_addresses: bool,
    user_agent: str,
    timeout: float = 10,
    auth: httpx.Auth | None = None,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The `httpx.AsyncClient` for federation: guarded transport, no env proxies, no redirects.

    Redirects are not followed by default (`fetch.fetch_document` follows them itself, each hop
    guarded); a caller passing `follow_redirects=True` still gets every hop checked. Tests pass
    their own ``transport`` (in-process apps, a fake remote); production never does.
    """
    if transport is None:
        transport = GuardedTransport(
            allow_private_addresses=allow_private_addresses, resolver=resolver
        )
    return httpx.AsyncClient(
        transport=transport,
        headers={"User-Agent": user_agent},
        timeout=httpx.Timeout(timeout),
        auth=auth,
        trust_env=False,
        follow_redirects=False,
        max_redirects=5,
    )


@functools.cache
def _default_ssl_context(http2: bool) -> ssl.SSLContext:
    """The verifying context, built once per process: loading the CA bundle costs about 20 ms,
    and an `ssl.SSLContext` is safe to share between connections and clients. One per
    ``http2``: httpcore sets the context's ALPN protocols before each handshake, so clients
    sharing one must offer the same."""
    return httpx.create_ssl_context(verify=True, trust_env=False)


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))
