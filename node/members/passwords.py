"""Password hashing with Argon2id (argon2-cffi's maintained defaults).

Argon2 costs about a fifth of a second of CPU and 64 MiB per hash, on purpose: async code
calls ``hash_password_async`` / ``verify_password_async``, which run it in a worker thread
(argon2-cffi releases the GIL), at most ``MAX_CONCURRENT_CHECKS`` at a time per event loop, so
the loop keeps serving other requests and a burst of sign-ins cannot exhaust memory. The
synchronous functions stay for the command line and for those threads.
"""

from __future__ import annotations

import asyncio
from weakref import WeakKeyDictionary

import anyio.to_thread
from anyio import CapacityLimiter
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MAX_CONCURRENT_CHECKS",
    "MIN_PASSWORD_LENGTH",
    "hash_password",
    "hash_password_async",
    "verify_password",
    "verify_password_async",
]

MIN_PASSWORD_LENGTH = 10
#: Argon2 computations running at once per event loop (the others wait their turn): two
#: cores' worth, 128 MiB at the default memory cost.
MAX_CONCURRENT_CHECKS = 2
_hasher = PasswordHasher()
_limiters: WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = WeakKeyDictionary()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _limiter() -> CapacityLimiter:
    """This event loop's limiter, made on first use (a limiter belongs to one loop)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(MAX_CONCURRENT_CHECKS)
    return limiter


async def hash_password_async(password: str) -> str:
    """``hash_password`` in a worker thread, bounded; a cancelled caller waits for the thread
    to end, so the bound holds."""
    return await anyio.to_thread.run_sync(hash_password, password, limiter=_limiter())


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """``verify_password`` in a worker thread, bounded like ``hash_password_async``."""
    if not password_hash:
        return False
    return await anyio.to_thread.run_sync(
        verify_password, password_hash, password, limiter=_limiter()
    )
