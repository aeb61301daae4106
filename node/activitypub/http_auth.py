"""Signing outgoing requests as an actor: an ``httpx.Auth`` that double-knocks.

Each request is signed with RFC 9421 first; on 401 or 403 it is signed again with
draft-cavage-12 (what most of the fediverse speaks) and sent once more. The scheme a
host accepted is kept in a ``SignatureSchemeMemory`` shared by the app's client, so the
next request to that host is signed the right way at once. This is the "double-knocking"
of the SWICG ActivityPub HTTP Signature report, as Fedify's ``doubleKnock`` does it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from threading import Lock
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from node.activitypub.signatures import Scheme, sign_cavage, sign_rfc9421

__all__ = [
    "HttpSignatureAuth",
    "InMemorySignatureSchemeMemory",
    "SignatureSchemeMemory",
]

_RETRY_STATUSES = frozenset({401, 403})
_SIGNING_HEADERS = ("signature", "signature-input", "content-digest", "digest")


class SignatureSchemeMemory(Protocol):
    """Which signature scheme each remote host accepted ("host" or "host:port")."""

    def get(self, host: str) -> Scheme | None:
        """The scheme that last worked with ``host``, if known."""
        ...

    def remember(self, host: str, scheme: Scheme) -> None:
        """Record that ``host`` accepted a request signed with ``scheme``."""
        ...


class InMemorySignatureSchemeMemory:
    """A ``SignatureSchemeMemory`` in a bounded dict; the least recently used host goes first."""

    def __init__(self, max_hosts: int = 10_000) -> None:
        self._schemes: OrderedDict[str, Scheme] = OrderedDict()
        self._max_hosts = max_hosts
        self._lock = Lock()

    def get(self, host: str) -> Scheme | None:
        with self._lock:
            scheme = self._schemes.get(host)
            if scheme is not None:
                self._schemes.move_to_end(host)
            return scheme

    def remember(self, host: str, scheme: Scheme) -> None:
        with self._lock:
            self._schemes[host] = scheme
            self._schemes.move_to_end(host)
            while len(self._schemes) > self._max_hosts:
                self._schemes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._schemes)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HttpSignatureAuth(httpx.Auth):
    """Sign each request as the actor ``key_id`` with its RSA ``private_key``.

    ``memory`` is shared between requests (give the app's client one instance);
    ``clock`` returns the signing time (tests pass a fixed one). Use it on a client that
    does not follow redirects (``transport.make_async_client``): a signature covers one
    URL, so each hop must be a request of its own, signed anew.
    """

    requires_request_body = True

    def __init__(
        self,
        key_id: str,
        private_key: rsa.RSAPrivateKey,
        *,
        memory: SignatureSchemeMemory | None = None,
        clock: Callable[[], datetime] = _utcnow,
        first_scheme: Scheme = "rfc9421",
    ) -> None:
        self.key_id = key_id
        self.private_key = private_key
        self.memory: SignatureSchemeMemory = (
            memory if memory is not None else InMemorySignatureSchemeMemory()
        )
        self.clock = clock
        self.first_scheme: Scheme = first_scheme

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        host = _host(request.url)
        known = self.memory.get(host)
        scheme: Scheme = known or self.first_scheme
        self.sign(request, scheme)
        response = yield request
        if response.status_code in _RETRY_STATUSES:
            scheme = "cavage" if scheme == "rfc9421" else "rfc9421"
            self.sign(request, scheme)
            response = yield request
            if response.status_code in _RETRY_STATUSES:
                return  # both refused: the signature is not the problem, or the key is
        if response.status_code < 500 and scheme != known:
            self.memory.remember(host, scheme)

    def sign(self, request: httpx.Request, scheme: Scheme) -> None:
        """Sign ``request`` in place with ``scheme``, replacing any earlier signature."""
        for name in _SIGNING_HEADERS:
            request.headers.pop(name, None)
        signer = sign_rfc9421 if scheme == "rfc9421" else sign_cavage
        added = signer(
            request.method,
            str(request.url),
            request.headers,
            request.content,
            self.private_key,
            self.key_id,
            self.clock(),
        )
        request.headers.update(added)


def _host(url: httpx.URL) -> str:
    return url.host if url.port is None else f"{url.host}:{url.port}"
