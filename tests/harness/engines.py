"""One compiled-statement cache for every engine the tests make.

SQLAlchemy keeps the SQL it compiled from each statement in a cache of its engine, keyed by
the engine's dialect object. Tests make new engines all the time (each app, each chamber),
so each of them compiled every statement again (a fifth of the in-process tests' CPU).
``SharedCompiledCache`` keys the entries by what the dialect *is* instead (its class and its
settings, the server's version among them): engines of the same kind reuse what another
compiled, as the connections of one engine do (the compiled SQL is the same for both; each
execution still runs on its own connection and dialect).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, MutableMapping
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect
from sqlalchemy.util import LRUCache

__all__ = ["SharedCompiledCache", "dialect_signature"]

#: Per-instance helpers of a dialect (some made on first use): two engines of one kind each
#: have their own, alike; they are left out of its signature.
_HELPERS = frozenset(
    {
        "_type_memos",
        "dbapi",
        "loaded_dbapi",
        "identifier_preparer",
        "type_compiler",
        "type_compiler_instance",
    }
)
_PLAIN = (str, int, float, bool, bytes, type(None))


def _settled(value: Any) -> Hashable:
    """A hashable stand-in for one setting of a dialect: itself if plain, else the object
    itself (compared by identity: two dialects given different serializers stay apart)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value):
        return value
    try:
        hash(value)
    except TypeError:
        return ("unhashable", id(value))
    return ("object", value)


def dialect_signature(dialect: Dialect) -> Hashable:
    """What compiling depends on: the dialect's class and every setting of the instance
    (server version, parameter style, schema, options given to ``create_engine`` ...)."""
    settings = tuple(
        sorted(
            (name, _settled(value)) for name, value in vars(dialect).items() if name not in _HELPERS
        )
    )
    return (type(dialect), settings)


class SharedCompiledCache(MutableMapping[Any, Any]):
    """An engine's ``compiled_cache`` (an LRU of ``capacity`` entries) in which the dialect
    of each key is replaced by its signature, so that alike engines share entries.

    Given as an execution option, it is not used while an engine first connects (SQLAlchemy
    runs the dialect's own set-up queries without options), so a dialect's signature is
    taken once it is complete, and kept for that dialect."""

    def __init__(self, capacity: int) -> None:
        self._entries: LRUCache[Any, Any] = LRUCache(capacity)
        self._signatures: WeakKeyDictionary[Dialect, Hashable] = WeakKeyDictionary()

    def _key(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        dialect = key[0]
        signature = self._signatures.get(dialect)
        if signature is None:
            signature = self._signatures[dialect] = dialect_signature(dialect)
        return (signature, *key[1:])

    def get(self, key: Any, default: Any = None) -> Any:
        return self._entries.get(self._key(key), default)

    def __getitem__(self, key: Any) -> Any:
        return self._entries[self._key(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._entries[self._key(key)] = value

    def __delitem__(self, key: Any) -> None:
        del self._entries[self._key(key)]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
