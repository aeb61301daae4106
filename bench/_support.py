"""Shared pieces of the end-to-end benchmarks: the RSA floor, a minimal fake remote host on
127.0.0.1, and throwaway PostgreSQL databases for ``--database-url``."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.engine import make_url

from bench.signatures import rate

__all__ = [
    "FakeHost",
    "add_database_argument",
    "backends",
    "rsa_floor",
]

AS2 = "application/activity+json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def rsa_floor(key: rsa.RSAPrivateKey, seconds: float) -> tuple[float, float]:
    """Raw RSA-2048 PKCS#1 v1.5 / SHA-256 signs per second and verifies per second."""
    public = key.public_key()
    message = b"x" * 200
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    sign_rate = rate(lambda: key.sign(message, padding.PKCS1v15(), hashes.SHA256()), seconds)
    verify_rate = rate(
        lambda: public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256()), seconds
    )
    return sign_rate, verify_rate


class FakeHost:
    """A remote server on 127.0.0.1 that serves fixed AS2 documents and answers 202 to POSTs.

    Just enough HTTP/1.1 for httpx (Content-Length bodies, keep-alive). It counts POSTs by
    path, and how many carried an HTTP signature (``Signature``, draft-cavage or RFC 9421).
    """

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.posts: Counter[str] = Counter()
        self.signed_posts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_document(self, path: str, document: dict[str, Any]) -> None:
        self.documents[path] = json.dumps(document).encode()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                path = target.split("?")[0]
                body = b""
                if method == "GET" and path in self.documents:
                    status, body = "200 OK", self.documents[path]
                elif method == "POST":
                    self.posts[path] += 1
                    if "signature" in headers:
                        self.signed_posts += 1
                    status = "202 Accepted"
                else:
                    status = "404 Not Found"
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: {AS2}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help=(
            "also run on PostgreSQL: postgresql://USER@127.0.0.1:5432/DB, an existing database "
            "the bench connects to in order to create (and drop) a throwaway DB_<random> per run"
        ),
    )


def _check_loopback(url: str) -> None:
    host = make_url(url).host
    if host not in LOOPBACK:
        raise SystemExit(f"--database-url must point to 127.0.0.1, not {host!r}")


@asynccontextmanager
async def _scratch_postgres(server_url: str) -> AsyncIterator[str]:
    import asyncpg

    url = make_url(server_url).set(drivername="postgresql")
    name = f"{url.database or 'postgres'}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def _no_database() -> AsyncIterator[None]:
    yield None


def backends(database_url: str | None) -> list[tuple[str, Any]]:
    """``(label, factory)`` pairs; ``factory()`` is an async context manager that yields the
    database URL to give ``archipel init`` (None: the node's own SQLite file)."""
    result: list[tuple[str, Any]] = [("SQLite", _no_database)]
    if database_url:
        _check_loopback(database_url)
        result.append(("PostgreSQL", lambda: _scratch_postgres(database_url)))
    return result
