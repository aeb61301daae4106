"""The guarded transport against real sockets on 127.0.0.1.

Servers are `http.server` instances in threads; each counts the TCP connections it accepts, so a
refused request is shown to have sent no byte. A stand-in "internet" backend maps a few public
test addresses to loopback ports: the guard sees a public address, the socket reaches our server.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node.activitypub import fetch, transport
from node.activitypub.addresses import IPAddress
from node.activitypub.transport import (
    ForbiddenAddressError,
    GuardedNetworkBackend,
    GuardedTransport,
    HostPools,
    make_async_client,
    system_resolver,
)

PUBLIC_A = "93.184.215.14"
PUBLIC_B = "198.41.0.4"
UA = "Archipel-tests/1"

Respond = Callable[[str, Any], tuple[int, dict[str, str], bytes]]


def _ok(path: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
    host = headers.get("Host", "")
    body = json.dumps({"id": f"http://{host}{path}", "type": "Note"}).encode()
    return 200, {"Content-Type": "application/activity+json"}, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        status, headers, body = self.server.respond(self.path, self.headers)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    """A loopback HTTP(S) server that records connections, requests and TLS SNI names."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True

    async def assert_untouched(self) -> None:
        """Prove no earlier connection reached us: a sentinel request must be the first one."""
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(f"http://127.0.0.1:{self.port}/sentinel")
        assert self.connections == 1
        assert [path for path, _host in self.requests] == ["/sentinel"]


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    servers: list[_Server] = []

    def start(respond: Respond = _ok, tls: ssl.SSLContext | None = None) -> _Server:
        server = _Server(respond, tls)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _Internet(httpcore.AsyncNetworkBackend):
    """Inner backend: public test addresses lead to loopback ports; nothing else leaves the box."""

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = routes
        self.attempts: list[str] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append(host)
        if host in self.routes:
            port = self.routes[host]
        elif not ip_address(host).is_loopback:
            raise httpcore.ConnectError(f"test network: no route to {host}")
        return await self._real.connect_tcp("127.0.0.1", port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


class _Resolver:
    """Injected resolver: a fixed table, with a record of the lookups made."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ip_address(text) for text in self.table[host]]


def _guarded_client(
    *,
    allow_private_addresses: bool = False,
    resolver: _Resolver | None = None,
    internet: _Internet | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=GuardedTransport(
            allow_private_addresses=allow_private_addresses,
            resolver=resolver,
            network_backend=internet,
            verify=verify,
        ),
        trust_env=False,
    )


async def _refuse_resolution(host: str, port: int) -> list[IPAddress]:
    raise AssertionError(f"literal hosts must not be resolved (asked for {host!r})")


# --- refusing ---------------------------------------------------------------------------------


async def test_loopback_literal__refused_before_connecting(serve: Callable[..., _Server]) -> None:
    server = serve()
    async with make_async_client(allow_private_addresses=False, user_agent=UA) as client:
        with pytest.raises(ForbiddenAddressError) as caught:
            await client.get(f"http://127.0.0.1:{server.port}/actor")
    error = caught.value
    assert isinstance(error, httpx.ConnectError)
    assert error.host == "127.0.0.1"
    assert error.address == ip_address("127.0.0.1")
    assert "127.0.0.1" in str(error) and "loopback" in str(error)
    await server.assert_untouched()


async def test_hostname_resolving_to_loopback__refused(serve: Callable[..., _Server]) -> None:
    server = serve()
    resolver = _Resolver({"evil.example": ["127.0.0.1"]})
    client = make_async_client(allow_private_addresses=False, user_agent=UA, resolver=resolver)
    async with client:
        with pytest.raises(ForbiddenAddressError) as caught:
            await client.get(f"http://evil.example:{server.port}/actor")
    assert caught.value.host == "evil.example"
    assert "'evil.example'" in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert resolver.lookups == ["evil.example"]
    await server.assert_untouched()


async def test_hostname_with_one_private_address_among_public__refused(
    serve: Callable[..., _Server],
) -> None:
    server = serve()
    resolver = _Resolver({"mixed.example": [PUBLIC_A, "10.0.0.7"]})
    internet = _Internet({PUBLIC_A: server.port})
    async with _guarded_client(resolver=resolver, internet=internet) as client:
        with pytest.raises(ForbiddenAddressError, match="10.0.0.7"):
            await client.get(f"http://mixed.example:{server.port}/")
    assert internet.attempts == []
    await server.assert_untouched()


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f.1", "017700000001", "127.1", "127.0.0.1.", "[::ffff:127.0.0.1]"],
)
async def test_other_spellings_of_loopback__refused_without_resolving(
    serve: Callable[..., _Server], host: str
) -> None:
    server = serve()
    client = make_async_client(
        allow_private_addresses=False, user_agent=UA, resolver=_refuse_resolution
    )
    async with client:
        with pytest.raises(ForbiddenAddressError, match="127.0.0.1|7f00:1"):
            await client.get(f"http://{host}:{server.port}/")
    await server.assert_untouched()


async def test_invalid_host__refused_even_when_private_addresses_are_allowed() -> None:
    backend = GuardedNetworkBackend(allow_private_addresses=True, resolver=_refuse_resolution)
    with pytest.raises(ForbiddenAddressError, match="not an IPv4 address"):
        await backend.connect_tcp("1.2.3.4.5", 80)


async def test_unix_sockets__refused() -> None:
    backend = GuardedNetworkBackend(allow_private_addresses=True)
    with pytest.raises(ForbiddenAddressError, match="Unix"):
        await backend.connect_unix_socket("/run/postgresql/.s.PGSQL.5432")


async def test_redirect_from_public_host_to_loopback__refused(
    serve: Callable[..., _Server],
) -> None:
    private = serve()

    def redirect(path: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        return 302, {"Location": f"http://127.0.0.1:{private.port}/secret"}, b""

    public = serve(redirect)
    resolver = _Resolver({"public.example": [PUBLIC_A]})
    internet = _Internet({PUBLIC_A: public.port})
    url = f"http://public.example:{public.port}/notes/1"
    async with _guarded_client(resolver=resolver, internet=internet) as client:
        with pytest.raises(fetch.ForbiddenAddress) as caught:
            await fetch.fetch_document(client, url, allow_http=True)
        assert "127.0.0.1" in str(caught.value)
        # httpx's own redirect following goes through the same guard
        with pytest.raises(ForbiddenAddressError):
            await client.get(url, follow_redirects=True)
    assert public.requests == [("/notes/1", f"public.example:{public.port}")] * 2
    assert set(internet.attempts) == {PUBLIC_A}  # never 127.0.0.1
    await private.assert_untouched()


async def test_redirect_to_name_resolving_to_private_address__refused(
    serve: Callable[..., _Server],
) -> None:
    private = serve()

    def redirect(path: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        return 301, {"Location": f"http://metadata.internal:{private.port}/latest"}, b""

    public = serve(redirect)
    resolver = _Resolver({"public.example": [PUBLIC_A], "metadata.internal": ["169.254.169.254"]})
    internet = _Internet({PUBLIC_A: public.port, "169.254.169.254": private.port})
    async with _guarded_client(resolver=resolver, internet=internet) as client:
        with pytest.raises(fetch.ForbiddenAddress, match="169.254.169.254"):
            await fetch.fetch_document(
                client, f"http://public.example:{public.port}/x", allow_http=True
            )
    assert internet.attempts == [PUBLIC_A]
    await private.assert_untouched()


async def test_environment_proxies_do_not_bypass_the_guard(
    serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve()
    target = serve()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with make_async_client(allow_private_addresses=False, user_agent=UA) as client:
        with pytest.raises(ForbiddenAddressError):
            await client.get(f"http://127.0.0.1:{target.port}/x")
    async with make_async_client(allow_private_addresses=True, user_agent=UA) as client:
        response = await client.get(f"http://127.0.0.1:{target.port}/direct")
    assert response.status_code == 200
    assert target.requests == [("/direct", f"127.0.0.1:{target.port}")]  # not via the proxy
    await proxy.assert_untouched()


# --- connecting -------------------------------------------------------------------------------


async def test_private_addresses_allowed__connects(serve: Callable[..., _Server]) -> None:
    server = serve()
    resolver = _Resolver({"chamber.test": ["127.0.0.1"]})
    client = make_async_client(allow_private_addresses=True, user_agent=UA, resolver=resolver)
    async with client:
        by_ip = await client.get(f"http://127.0.0.1:{server.port}/a")
        by_name = await client.get(f"http://chamber.test:{server.port}/b")
    assert by_ip.status_code == by_name.status_code == 200
    assert by_name.json()["id"] == f"http://chamber.test:{server.port}/b"
    assert server.requests == [
        ("/a", f"127.0.0.1:{server.port}"),
        ("/b", f"chamber.test:{server.port}"),  # Host is the name, the socket went to the IP
    ]


async def test_connects_to_the_checked_address_after_one_lookup(
    serve: Callable[..., _Server],
) -> None:
    server = serve()

    class Rebinding(_Resolver):
        async def __call__(self, host: str, port: int) -> list[IPAddress]:
            answer = [PUBLIC_A] if not self.lookups else ["127.0.0.1"]
            self.lookups.append(host)
            return [ip_address(text) for text in answer]

    resolver = Rebinding({})
    internet = _Internet({PUBLIC_A: server.port})
    async with _guarded_client(resolver=resolver, internet=internet) as client:
        response = await client.get(f"http://rebind.example:{server.port}/")
    assert response.status_code == 200
    assert resolver.lookups == ["rebind.example"]
    assert internet.attempts == [PUBLIC_A]  # the literal that was checked, not the name


async def test_falls_back_to_the_next_address(serve: Callable[..., _Server]) -> None:
    server = serve()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    resolver = _Resolver({"dual.example": [PUBLIC_B, PUBLIC_A]})
    internet = _Internet({PUBLIC_B: closed_port, PUBLIC_A: server.port})
    async with _guarded_client(resolver=resolver, internet=internet) as client:
        response = await client.get(f"http://dual.example:{server.port}/")
    assert response.status_code == 200
    assert internet.attempts == [PUBLIC_B, PUBLIC_A]


def _self_signed(hostname: str, directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_uses_the_hostname_for_sni_and_verification(
    serve: Callable[..., _Server], tmp_path: Path
) -> None:
    cert_path, key_path = _self_signed("public.example", tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_path, key_path)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc]
    server = serve(tls=server_tls)
    resolver = _Resolver({"public.example": [PUBLIC_A]})
    internet = _Internet({PUBLIC_A: server.port})
    trust = ssl.create_default_context(cafile=str(cert_path))
    client = _guarded_client(resolver=resolver, internet=internet, verify=trust)
    async with client:
        response = await client.get(f"https://public.example:{server.port}/secure")
    assert response.status_code == 200
    assert sni == ["public.example"]  # the certificate has no IP SAN: verification used the name
    assert internet.attempts == [PUBLIC_A]
    assert server.requests == [("/secure", f"public.example:{server.port}")]


class _H2Server:
    """A loopback TLS server that speaks only HTTP/2 (ALPN "h2"); counts its connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.paths: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        writer.write(h2c.data_to_send())
        paths: dict[int, str] = {}
        try:
            while data := await reader.read(65535):
                for event in h2c.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        paths[event.stream_id] = dict(event.headers)[b":path"].decode()
                    elif isinstance(event, h2.events.StreamEnded):
                        self.paths.append(paths.pop(event.stream_id))
                        body = b'{"ok":true}'
                        h2c.send_headers(
                            event.stream_id,
                            [(":status", "200"), ("content-length", str(len(body)))],
                        )
                        h2c.send_data(event.stream_id, body, end_stream=True)
                writer.write(h2c.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


async def test_http2__one_guarded_connection_carries_concurrent_requests(tmp_path: Path) -> None:
    """Where a host offers HTTP/2, requests share one connection; it was opened through the
    guard (to the checked address), and a hostile name is still refused on the same client."""
    cert_path, key_path = _self_signed("public.example", tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_path, key_path)
    server_tls.set_alpn_protocols(["h2"])
    server = _H2Server()
    await server.start(server_tls)
    resolver = _Resolver({"public.example": [PUBLIC_A], "evil.example": [PUBLIC_B, "10.0.0.1"]})
    internet = _Internet({PUBLIC_A: server.port})
    trust = ssl.create_default_context(cafile=str(cert_path))
    client = _guarded_client(resolver=resolver, internet=internet, verify=trust)
    base = f"https://public.example:{server.port}"
    try:
        async with client:
            first = await client.get(f"{base}/first")
            rest = await asyncio.gather(*(client.get(f"{base}/n{i}") for i in range(5)))
            with pytest.raises(ForbiddenAddressError):
                await client.get(f"https://evil.example:{server.port}/")
    finally:
        await server.stop()
    assert {r.http_version for r in [first, *rest]} == {"HTTP/2"}
    assert server.connections == 1
    assert internet.attempts == [PUBLIC_A]  # evil.example never reached the network
    assert sorted(server.paths) == sorted(["/first", *(f"/n{i}" for i in range(5))])


async def test_http1__keep_alive_reuses_the_guarded_connection(
    serve: Callable[..., _Server],
) -> None:
    server = serve()
    resolver = _Resolver({"public.example": [PUBLIC_A]})
    internet = _Internet({PUBLIC_A: server.port})
    async with _guarded_client(resolver=resolver, internet=internet) as client:
        for i in range(3):
            response = await client.get(f"http://public.example:{server.port}/n{i}")
            assert response.status_code == 200
    assert server.connections == 1
    assert internet.attempts == [PUBLIC_A]
    assert resolver.lookups == ["public.example"]


async def test_each_host_has_its_own_pool_and_idle_ones_close(
    serve: Callable[..., _Server],
) -> None:
    server = serve()
    resolver = _Resolver({"a.example": [PUBLIC_A], "b.example": [PUBLIC_B]})
    internet = _Internet({PUBLIC_A: server.port, PUBLIC_B: server.port})
    client = _guarded_client(resolver=resolver, internet=internet)
    pools = client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pools, HostPools)
    now = [0.0]
    pools.clock = lambda: now[0]
    async with client:
        for host in ("a.example", "b.example", "a.example"):
            assert (await client.get(f"http://{host}:{server.port}/")).status_code == 200
        assert sorted(host for _, host, _ in pools.pools) == [b"a.example", b"b.example"]
        assert internet.attempts == [PUBLIC_A, PUBLIC_B]  # a.example's connection reused
        now[0] = pools.idle_expiry + 1
        await client.get(f"http://{PUBLIC_A}:{server.port}/")  # a new host: idle pools close
        assert [host for _, host, _ in pools.pools] == [PUBLIC_A.encode()]


# --- failures that are not refusals -----------------------------------------------------------


async def test_unknown_name__connect_error_not_forbidden() -> None:
    client = make_async_client(allow_private_addresses=False, user_agent=UA, resolver=_Resolver({}))
    async with client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("https://nowhere.example/")
    assert not isinstance(caught.value, ForbiddenAddressError)
    assert "nowhere.example" in str(caught.value)


async def test_empty_answer__connect_error() -> None:
    client = make_async_client(
        allow_private_addresses=False, user_agent=UA, resolver=_Resolver({"empty.example": []})
    )
    async with client:
        with pytest.raises(httpx.ConnectError, match="did not resolve"):
            await client.get("https://empty.example/")


async def test_slow_resolver__connect_timeout() -> None:
    async def slow(host: str, port: int) -> list[IPAddress]:
        import asyncio

        await asyncio.sleep(5)
        return []

    client = make_async_client(
        allow_private_addresses=False, user_agent=UA, resolver=slow, timeout=0.05
    )
    async with client:
        with pytest.raises(httpx.ConnectTimeout, match="slow.example"):
            await client.get("https://slow.example/")


async def test_system_resolver__literal() -> None:
    assert await system_resolver("127.0.0.1", 80) == [ip_address("127.0.0.1")]


# --- wiring -----------------------------------------------------------------------------------


def test_make_async_client__wires_the_guard() -> None:
    client = make_async_client(allow_private_addresses=False, user_agent=UA, timeout=7)
    guarded = client._transport
    assert isinstance(guarded, GuardedTransport)
    pools = guarded._pool
    assert isinstance(pools, HostPools)
    pool = pools.make_pool()  # what each host gets
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert pool._network_backend is guarded.network_backend
    assert isinstance(guarded.network_backend, GuardedNetworkBackend)
    assert guarded.network_backend.allow_private_addresses is False
    assert pool._http2 is True  # offered by ALPN over TLS
    assert pool._max_keepalive_connections >= 1  # kept alive between requests to a host
    assert client._mounts == {}
    assert client.trust_env is False
    assert client.follow_redirects is False
    assert client.headers["User-Agent"] == UA
    assert client.timeout == httpx.Timeout(7)


def test_all_names_exist() -> None:
    for name in transport.__all__:
        assert hasattr(transport, name), name


@pytest.mark.parametrize(
    ("errno", "unknown"), [(socket.EAI_NONAME, True), (socket.EAI_AGAIN, False)]
)
async def test_a_name_that_does_not_exist_is_told_apart_from_a_resolver_failure(
    errno: int, unknown: bool
) -> None:
    """No such name is a typo (not retried, 422 on a declaration); a failing resolver is an
    outage (retryable, 503)."""

    async def resolver(host: str, port: int) -> list[IPAddress]:
        raise socket.gaierror(errno, "resolver answer")

    backend = GuardedNetworkBackend(allow_private_addresses=False, resolver=resolver)
    with pytest.raises((transport.UnknownHostError, httpcore.ConnectError)) as raised:
        await backend.connect_tcp("chamber.example", 443)
    assert isinstance(raised.value, transport.UnknownHostError) is unknown
