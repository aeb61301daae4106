"""The federation service: remote actors and keys, blocks, and signing as a local actor.

One instance per process, built in the app's lifespan (or by ``archipel worker``); its I/O
(database sessions, the guarded HTTP client, the clock) comes in as constructor arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.actors import ActorUrls, get_local_actor
from node.activitypub.caches import KeyCache, SenderDirectory
from node.activitypub.fetch import BadStatus, FetchError, Unreachable, fetch_document
from node.activitypub.http_auth import HttpSignatureAuth, InMemorySignatureSchemeMemory
from node.activitypub.keys import load_rsa_public_pem, unseal_ed25519, unseal_rsa
from node.activitypub.models import DomainBlock, LocalActor, RemoteActor
from node.activitypub.proofs import sign_eddsa_jcs_2022
from node.activitypub.transport import UnknownHostError
from node.activitypub.urls import InvalidUrlError, same_origin
from node.db import insert_for, read_only, session_scope, utcnow
from node.secretbox import SecretBox

__all__ = [
    "ACTOR_TYPES",
    "Federation",
    "FederationError",
    "RemoteUnavailable",
    "authority_of",
    "id_of",
]

log = logging.getLogger(__name__)

ACTOR_TYPES = frozenset({"Person", "Group", "Service", "Application", "Organization"})


class FederationError(Exception):
    """A remote document or handle could not be used; the message says why."""


class RemoteUnavailable(FederationError):
    """The remote server is down or failing (no answer, a timeout, a 5xx): try again later,
    unlike a document or a handle that does not exist."""


def _failure(exc: FetchError) -> FederationError:
    outage = isinstance(exc, Unreachable) or (isinstance(exc, BadStatus) and exc.status >= 500)
    return (RemoteUnavailable if outage else FederationError)(str(exc))


def id_of(value: Any) -> str | None:
    """The id of a reference that is either a URL string or an object with an ``id``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def authority_of(url: str) -> str:
    """``host`` or ``host:port`` of a URL, lower-cased (what domain blocks match)."""
    return urlsplit(url).netloc.lower().rsplit("@", 1)[-1]


def _block_names(url: str) -> set[str]:
    """What a domain block on ``url`` may name: its ``host:port``, or its host alone."""
    authority = authority_of(url)
    hostname = authority.split(":")[0] if not authority.startswith("[") else authority
    return {authority, hostname}


@dataclass
class Federation:
    base_url: str
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    http: httpx.AsyncClient
    instance_username: str
    allow_http: bool = False
    max_document_bytes: int = 1_000_000
    actor_cache_ttl: timedelta = timedelta(days=1)
    clock: Callable[[], datetime] = utcnow
    scheme_memory: InMemorySignatureSchemeMemory = field(
        default_factory=InMemorySignatureSchemeMemory
    )
    _signing_keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    #: Parsed Ed25519 keys by their sealed form (a new key has a new sealed form).
    _proof_keys: dict[str, ed25519.Ed25519PrivateKey] = field(default_factory=dict)
    #: Parsed remote RSA keys by key id, with their owner (``resolve_key``).
    key_cache: KeyCache = field(default_factory=KeyCache)
    #: Blocked hosts and local recipients as the inbox checks them before verifying.
    senders: SenderDirectory = field(init=False)

    def __post_init__(self) -> None:
        self.senders = SenderDirectory(self.sessionmaker, clock=self.clock)
        self.key_cache.clock = self.clock

    # --- local actors -------------------------------------------------------------------------

    def urls(self, username: str) -> ActorUrls:
        return ActorUrls(self.base_url, username)

    def is_local(self, url: str) -> bool:
        try:
            return same_origin(url, self.base_url)
        except InvalidUrlError:
            return False

    def local_username(self, actor_uri: str) -> str | None:
        prefix = self.base_url + "/actors/"
        if actor_uri.startswith(prefix) and "/" not in actor_uri[len(prefix) :]:
            return actor_uri[len(prefix) :].split("#")[0]
        return None

    def sign_object(self, actor: LocalActor, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` with an ``eddsa-jcs-2022`` proof (FEP-8b32) by ``actor``'s Ed25519
        key, which any third party can verify later from the actor's public document."""
        sealed = actor.ed25519_private_sealed
        key = self._proof_keys.get(sealed)
        if key is None:
            if len(self._proof_keys) >= 4096:
                self._proof_keys.clear()
            key = self._proof_keys[sealed] = unseal_ed25519(sealed, self.box)
        return sign_eddsa_jcs_2022(
            document, key, self.urls(actor.username).ed25519_key_id, created=self.clock()
        )

    def signer(self, actor: LocalActor) -> HttpSignatureAuth:
        """The ``httpx.Auth`` that signs requests as ``actor`` (RFC 9421 first, then cavage)."""
        key = self._signing_keys.get(actor.username)
        if key is None:
            key = unseal_rsa(actor.rsa_private_sealed, self.box)
            self._signing_keys[actor.username] = key
        return HttpSignatureAuth(
            self.urls(actor.username).rsa_key_id,
            key,
            memory=self.scheme_memory,
            clock=self.clock,
        )

    async def instance_signer(self) -> HttpSignatureAuth:
        async with read_only(self.sessionmaker) as session:
            actor = await get_local_actor(session, self.instance_username)
        if actor is None:
            raise FederationError("the chamber actor does not exist: run `archipel init`")
        return self.signer(actor)

    # --- blocks -------------------------------------------------------------------------------

    async def is_blocked(self, session: AsyncSession, url: str) -> bool:
        return bool(await self.blocked_among(session, [url]))

    async def blocked_among(self, session: AsyncSession, urls: Iterable[str]) -> set[str]:
        """Which of ``urls`` are on a blocked domain (its ``host:port`` or its host name), in
        one query."""
        names = {url: _block_names(url) for url in urls}
        if not names:
            return set()
        wanted = set().union(*names.values())
        rows = await session.execute(select(DomainBlock.host).where(DomainBlock.host.in_(wanted)))
        blocked = set(rows.scalars())
        return {url for url, candidates in names.items() if candidates & blocked}

    # --- fetching -----------------------------------------------------------------------------

    async def fetch(self, url: str) -> dict[str, Any]:
        """A remote AS2 document, fetched with a signed GET (authorized fetch)."""
        async with read_only(self.sessionmaker) as session:
            if await self.is_blocked(session, url):
                raise FederationError(f"{authority_of(url)} is blocked on this node")
        try:
            fetched = await fetch_document(
                self.http,
                url,
                max_bytes=self.max_document_bytes,
                allow_http=self.allow_http,
                auth=await self.instance_signer(),
            )
        except FetchError as exc:
            raise _failure(exc) from exc
        return fetched.document

    async def cached_actor(self, session: AsyncSession, uri: str) -> RemoteActor:
        """The remote actor as this transaction sees it; it must have been fetched before
        (``get_remote_actor``), so that no network call happens inside a transaction."""
        actor = (
            await session.execute(select(RemoteActor).where(RemoteActor.uri == uri.split("#")[0]))
        ).scalar_one_or_none()
        if actor is None:
            raise FederationError(f"{uri} has not been fetched yet")
        return actor

    async def get_remote_actor(self, uri: str, *, refresh: bool = False) -> RemoteActor:
        """The cached actor, fetched when unknown, expired, or ``refresh`` is asked.

        Opens its own short transactions: call it before, not inside, a write transaction.
        """
        uri = uri.split("#")[0]
        if self.is_local(uri):
            raise FederationError(f"{uri} is a local actor, not a remote one")
        async with read_only(self.sessionmaker) as session:
            cached = (
                await session.execute(select(RemoteActor).where(RemoteActor.uri == uri))
            ).scalar_one_or_none()
        now = self.clock()
        if cached is not None and not refresh and now - cached.fetched_at < self.actor_cache_ttl:
            return cached
        document = await self.fetch(uri)
        values = {**self._actor_values(uri, document), "fetched_at": now}
        async with session_scope(self.sessionmaker) as session:
            # One atomic upsert: concurrent first deliveries from an actor we do not know yet
            # all store it (a select-then-insert loses the race with a duplicate key).
            await session.execute(
                insert_for(session, RemoteActor)
                .values(uri=uri, **values)
                .on_conflict_do_update(index_elements=[RemoteActor.uri], set_=values)
            )
            row = (
                await session.execute(
                    select(RemoteActor)
                    .where(RemoteActor.uri == uri)
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
        return row

    async def store_actor_document(
        self, session: AsyncSession, uri: str, document: dict[str, Any]
    ) -> RemoteActor | None:
        """Refresh a cached actor from a document it sent itself (its signed ``Update``):
        name, avatar, inbox, keys. Only an actor we already cache; ``FederationError`` when
        the document is not a usable actor."""
        if id_of(document) != uri:
            raise FederationError("an actor's Update must carry its own document")
        cached = (
            await session.execute(select(RemoteActor).where(RemoteActor.uri == uri))
        ).scalar_one_or_none()
        if cached is None:
            return None
        if cached.rsa_key_id is not None:
            self.key_cache.discard(cached.rsa_key_id)  # the key may change with the document
        for name, value in self._actor_values(uri, document).items():
            setattr(cached, name, value)
        cached.fetched_at = self.clock()
        return cached

    def _actor_values(self, uri: str, document: dict[str, Any]) -> dict[str, Any]:
        kind = document.get("type")
        kinds = set(kind) if isinstance(kind, list) else {kind}
        if not kinds & ACTOR_TYPES:
            raise FederationError(f"{uri} is a {kind!r}, not an actor")
        inbox = document.get("inbox")
        if not isinstance(inbox, str) or not same_origin(inbox, uri):
            raise FederationError(f"{uri} has no inbox on its own host")
        endpoints = document.get("endpoints")
        shared = endpoints.get("sharedInbox") if isinstance(endpoints, dict) else None
        if not isinstance(shared, str) or not same_origin(shared, uri):
            shared = None
        key_id = None
        pem = None
        public_key = document.get("publicKey")
        keys = public_key if isinstance(public_key, list) else [public_key]
        for key in keys:
            if (
                isinstance(key, dict)
                and isinstance(key.get("id"), str)
                and isinstance(key.get("publicKeyPem"), str)
                and key.get("owner", uri) == uri
                and same_origin(key["id"], uri)
            ):
                key_id, pem = key["id"], key["publicKeyPem"]
                break
        return {
            "host": authority_of(uri),
            "inbox": inbox,
            "shared_inbox": shared,
            "rsa_key_id": key_id,
            "rsa_public_pem": pem,
            "document": document,
            "gone_at": None,
        }

    async def resolve_key(
        self, key_id: str, *, refresh: bool = False
    ) -> tuple[rsa.RSAPublicKey, str]:
        """The RSA key ``key_id`` and its owner's URI, through ``publicKey.owner`` if needed:
        from this process's ``key_cache``, else the stored actor, else fetched (``refresh``:
        fetched again, for a key that no longer verifies)."""
        if not refresh:
            hit = self.key_cache.get(key_id)
            if hit is not None:
                return hit  # type: ignore[no-any-return]
            async with read_only(self.sessionmaker) as session:
                row = (
                    await session.execute(
                        select(RemoteActor.rsa_public_pem, RemoteActor.uri).where(
                            RemoteActor.rsa_key_id == key_id
                        )
                    )
                ).first()
            if row is not None and row.rsa_public_pem:
                found = (load_rsa_public_pem(row.rsa_public_pem), row.uri)
                self.key_cache.put(key_id, found)
                return found
        else:
            self.key_cache.discard(key_id)
        key_url = key_id.split("#")[0]
        owner_uri = key_url  # "actor#main-key": the actor document holds the key
        if key_url == key_id:
            document = await self.fetch(key_url)  # a key document (a "/main-key" stub)
            owner = id_of(document.get("owner")) or id_of(document.get("controller"))
            if owner is None and document.get("type") in ACTOR_TYPES:
                owner = id_of(document)
            if owner is None:
                raise FederationError(f"key {key_id} names no owner")
            owner_uri = owner
        if not same_origin(owner_uri, key_id):
            raise FederationError(f"key {key_id} claims an owner on another host: {owner_uri}")
        actor = await self.get_remote_actor(owner_uri, refresh=refresh)
        if actor.rsa_key_id != key_id or actor.rsa_public_pem is None:
            raise FederationError(f"actor {owner_uri} does not publish the key {key_id}")
        fetched = (load_rsa_public_pem(actor.rsa_public_pem), actor.uri)
        self.key_cache.put(key_id, fetched)
        return fetched

    async def resolve_handle(self, handle: str) -> str:
        """An actor URI from ``@user@host`` (WebFinger) or from an actor URL (checked)."""
        handle = handle.strip()
        if handle.startswith(("http://", "https://")):
            document = await self.fetch(handle)
            actor_id = id_of(document)
            if actor_id is None:
                raise FederationError(f"{handle} has no id")
            return actor_id
        account = handle.removeprefix("acct:").lstrip("@")
        user, sep, host = account.rpartition("@")
        if not sep or not user or not host or "/" in host:
            raise FederationError(f"{handle!r} is neither @user@host nor an actor URL")
        scheme = "http" if self.allow_http and self._looks_local(host) else "https"
        url = f"{scheme}://{host}/.well-known/webfinger"
        async with read_only(self.sessionmaker) as session:
            if await self.is_blocked(session, url):
                raise FederationError(f"{host} is blocked on this node")
        try:
            response = await self.http.get(
                url,
                params={"resource": f"acct:{user}@{host}"},
                headers={"Accept": "application/jrd+json, application/json"},
            )
        except (httpx.InvalidURL, UnknownHostError) as exc:  # not a host name, or no such host
            raise FederationError(f"WebFinger at {host} failed: {exc}") from exc
        except httpx.HTTPError as exc:
            raise RemoteUnavailable(f"WebFinger at {host} failed: {exc}") from exc
        if response.status_code >= 500:
            raise RemoteUnavailable(f"WebFinger at {host} answered {response.status_code}")
        if response.status_code != 200 or len(response.content) > 100_000:
            raise FederationError(f"WebFinger at {host} answered {response.status_code}")
        try:
            links = response.json().get("links", [])
        except ValueError:
            raise FederationError(f"WebFinger at {host} did not return JSON") from None
        for link in links if isinstance(links, list) else []:
            if (
                isinstance(link, dict)
                and link.get("rel") == "self"
                and isinstance(link.get("href"), str)
                and "json" in str(link.get("type", "application/activity+json"))
            ):
                return await self.resolve_handle(link["href"])
        raise FederationError(f"WebFinger at {host} gave no ActivityPub actor for {handle}")

    def _looks_local(self, host: str) -> bool:
        name = host.split(":")[0].strip("[]")
        return name in ("localhost", "127.0.0.1", "::1") or name.startswith("127.")
