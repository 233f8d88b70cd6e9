"""Shared short-lived state: dedupe claims, cached replies, conversation state, rate limits, locks.

`RedisState` is what production uses (shared by every app process). `MemoryState` implements the same
interface in-process and is only for the single-process embedded default (no REDIS_URL).
Values are strings; callers encode JSON themselves.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Protocol


class LockTimeout(Exception):
    """The lock was held by someone else for longer than we were willing to wait."""


class StateStore(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def get_many(self, keys: list[str]) -> list[str | None]: ...
    async def set(self, key: str, value: str, ttl_s: float) -> None: ...
    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        """Set key only if absent; True when this caller got it."""
    async def delete(self, key: str) -> None: ...
    async def hit(self, key: str, window_s: float) -> int:
        """Count one event in a fixed window starting at the first hit; return the count so far."""
    def lock(self, name: str, ttl_s: float, wait_s: float) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemoryState:
    """In-process state for the embedded default. Expiry is checked lazily on read."""

    def __init__(self, clock=time.monotonic) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._clock = clock
        self._writes = 0

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._data[key]
            return None
        return item[0]

    def _put(self, key: str, value: str, ttl_s: float) -> None:
        self._data[key] = (value, self._clock() + ttl_s)
        self._writes += 1
        if self._writes % 10_000 == 0:  # keep memory bounded without a timer task
            now = self._clock()
            for k in [k for k, (_, exp) in self._data.items() if exp <= now]:
                del self._data[k]

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return [self._live(k) for k in keys]

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        self._put(key, value, ttl_s)

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def hit(self, key: str, window_s: float) -> int:
        item = self._live(key)
        if item is None:
            self._put(key, "1", window_s)
            return 1
        count = int(item) + 1
        self._data[key] = (str(count), self._data[key][1])
        return count

    @contextlib.asynccontextmanager
    async def lock(self, name: str, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with asyncio.timeout(wait_s):  # not wait_for: on 3.11 it can leak an acquired lock (gh-86296)
                await lock.acquire()
        except TimeoutError:
            raise LockTimeout(name) from None
        try:
            yield
        finally:
            lock.release()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


class RedisState:
    """Redis-backed state shared by every app process. Keys are namespaced by `prefix`."""

    def __init__(self, url: str, prefix: str = "linli:") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)
        self._p = prefix

    async def get(self, key: str) -> str | None:
        return await self._redis.get(self._p + key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        return await self._redis.mget([self._p + k for k in keys])

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        await self._redis.set(self._p + key, value, px=max(1, int(ttl_s * 1000)))

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        return bool(await self._redis.set(self._p + key, value, px=max(1, int(ttl_s * 1000)), nx=True))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._p + key)

    async def hit(self, key: str, window_s: float) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._p + key)
            pipe.pexpire(self._p + key, max(1, int(window_s * 1000)), nx=True)
            count, _ = await pipe.execute()
        return int(count)

    @contextlib.asynccontextmanager
    async def lock(self, name: str, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        from redis.exceptions import LockError

        lock = self._redis.lock(self._p + "lock:" + name, timeout=ttl_s, blocking_timeout=wait_s)
        if not await lock.acquire():
            raise LockTimeout(name)
        try:
            yield
        finally:
            with contextlib.suppress(LockError):  # expired while we held it: nothing to release
                await lock.release()

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def open_state(redis_url: str | None, prefix: str = "linli:") -> StateStore:
    return RedisState(redis_url, prefix) if redis_url else MemoryState()
