"""In-process caches of the inbox's hot path: remote keys, blocked hosts, local recipients.

Several server processes may share one database, so none of these caches is the authority
on a decision that another process can change:

- ``KeyCache`` holds parsed remote public keys (bounded, each for ``ttl``). A key that no
  longer verifies is fetched again once (``node.activitypub.inbox``): a rotation, seen by
  any process, heals itself.
- ``SenderDirectory`` answers "is this host blocked?" and "does this recipient exist?"
  before a signature is checked. It only *refuses* after asking the database (a cached
  "blocked" or "unknown" is confirmed by a query), and what it lets through is checked
  again, in SQL, by the one statement that stores the activity (``inbox_store``). So a
  block or an account added or removed by another process (``archipel block``, an admin
  page served by a sibling process) takes effect on the next POST, without a notification;
  the cache's ``ttl`` only bounds how long a newly blocked host still gets its signature
  checked before the store refuses it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.models import DomainBlock, LocalActor
from node.db import read_only, utcnow

__all__ = ["KeyCache", "SenderDirectory", "block_candidates"]


def block_candidates(url: str) -> tuple[str, str]:
    """The two names a domain block may be stored under: ``host:port`` and ``host``."""
    authority = urlsplit(url).netloc.lower().rsplit("@", 1)[-1]
    hostname = authority.split(":")[0] if not authority.startswith("[") else authority
    return authority, hostname


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    expires: datetime


class KeyCache:
    """``key id -> (parsed public key, owner URI)``, at most ``max_entries`` (least recently
    used first out), each kept for ``ttl``."""

    def __init__(
        self,
        max_entries: int = 10_000,
        ttl: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key_id: str) -> Any | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            del self._entries[key_id]
            return None
        self._entries.move_to_end(key_id)
        return entry.value

    def put(self, key_id: str, value: Any) -> None:
        self._entries[key_id] = _Entry(value, self.clock() + self.ttl)
        self._entries.move_to_end(key_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key_id: str) -> None:
        self._entries.pop(key_id, None)


class SenderDirectory:
    """Blocked hosts and local usernames as this process last read them (see the module).

    ``blocked`` and ``has_recipient`` answer from memory when the answer lets the POST go
    on, and from the database when it would refuse it.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        ttl: timedelta = timedelta(seconds=5),
        max_usernames: int = 100_000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.ttl = ttl
        self.max_usernames = max_usernames
        self.clock = clock
        self._blocked: frozenset[str] = frozenset()
        self._blocked_until: datetime | None = None
        self._usernames: set[str] = set()

    def forget(self) -> None:
        """Read everything again on the next question (this process changed it)."""
        self._blocked_until = None
        self._usernames.clear()

    async def blocked(self, url: str) -> bool:
        candidates = block_candidates(url)
        now = self.clock()
        if self._blocked_until is None or now >= self._blocked_until:
            async with read_only(self.sessionmaker) as session:
                hosts = (await session.execute(select(DomainBlock.host))).scalars()
                self._blocked = frozenset(hosts)
            self._blocked_until = now + self.ttl
            return any(name in self._blocked for name in candidates)
        if not any(name in self._blocked for name in candidates):
            return False
        return await self.blocked_now(url)  # refuse only on the database's word

    async def blocked_now(self, url: str) -> bool:
        """Whether ``url``'s host is blocked, as the database says now."""
        async with read_only(self.sessionmaker) as session:
            row = (
                await session.execute(
                    select(DomainBlock.host).where(DomainBlock.host.in_(block_candidates(url)))
                )
            ).first()
        if row is None:
            self._blocked_until = None  # the cached list is out of date
        return row is not None

    async def has_recipient(self, username: str) -> bool:
        if username in self._usernames:
            return True
        async with read_only(self.sessionmaker) as session:
            row = (
                await session.execute(select(LocalActor.id).where(LocalActor.username == username))
            ).first()
        if row is None:
            return False
        if len(self._usernames) >= self.max_usernames:
            self._usernames.clear()
        self._usernames.add(username)
        return True

    def not_a_recipient(self, username: str) -> None:
        """The store found no such actor: it was deleted since it was cached."""
        self._usernames.discard(username)
