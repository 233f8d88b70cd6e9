"""Shared short-lived state: dedupe claims, cached replies, conversation state, rate limits, locks.

`RedisState` is what production uses (shared by every app process). `MemoryState` implements the same
interface in-process and is only for the single-process embedded default (no REDIS_URL).
Values are strings; callers encode JSON themselves.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

# One operation of a batch: ("get", key) | ("set", key, value, ttl_s) | ("delete", key)
#                          | ("claim", key, value, ttl_s) | ("hit", key, window_s)
#                          | ("release", key, value): delete the key only if it still holds this value
#                          | ("remember", key, value, ttl_s): set it if absent; the value it held before, or None
Op = tuple


TIMEOUT_S = 2.0  # Redis answers in well under a millisecond; one that takes longer than this is treated as down


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
    async def batch(self, ops: list[Op]) -> list:
        """Several operations in one round trip (a Redis pipeline); their results in order."""
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemoryState:
    """In-process state for the embedded default. Expiry is checked lazily on read."""

    def __init__(self, clock=time.monotonic) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._clock = clock
        # Keys by the whole second they expire in (a heap of seconds), so that dropping what expired costs
        # only what expired, not a scan of every key (under load hundreds of thousands of claims are live).
        self._expiring: dict[int, list[str]] = {}
        self._seconds: list[int] = []
        self._ops = {"get": self._live, "set": self._put, "delete": self._drop, "claim": self._claim,
                     "hit": self._hit, "release": self._release, "remember": self._remember}

    # The operations take the time once per call or batch (a batch is one moment, as in Redis's script).
    def _live(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._data[key]
            return None
        return item[0]

    def _put(self, key: str, value: str, ttl_s: float, now: float) -> None:
        expires = now + ttl_s
        self._data[key] = (value, expires)
        second = int(expires) + 1
        if (keys := self._expiring.get(second)) is None:
            keys = self._expiring[second] = []
            heapq.heappush(self._seconds, second)
        keys.append(key)

    def _sweep(self, now: float) -> None:
        """Drop what expired by now: memory stays bounded without a timer task."""
        seconds = self._seconds
        while seconds and seconds[0] <= now:
            for k in self._expiring.pop(heapq.heappop(seconds)):
                item = self._data.get(k)
                if item is not None and item[1] <= now:  # not set again since
                    del self._data[k]

    def _drop(self, key: str, _now: float) -> None:
        self._data.pop(key, None)

    def _claim(self, key: str, value: str, ttl_s: float, now: float) -> bool:
        if self._live(key, now) is not None:
            return False
        self._put(key, value, ttl_s, now)
        return True

    def _release(self, key: str, value: str, now: float) -> None:
        if self._live(key, now) == value:
            del self._data[key]

    def _remember(self, key: str, value: str, ttl_s: float, now: float) -> str | None:
        if (before := self._live(key, now)) is None:
            self._put(key, value, ttl_s, now)
        return before

    def _hit(self, key: str, window_s: float, now: float) -> int:
        item = self._live(key, now)
        if item is None:
            self._put(key, "1", window_s, now)
            return 1
        count = int(item) + 1
        self._data[key] = (str(count), self._data[key][1])
        return count

    async def get(self, key: str) -> str | None:
        return self._live(key, self._clock())

    async def get_many(self, keys: list[str]) -> list[str | None]:
        now = self._clock()
        return [self._live(k, now) for k in keys]

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        self._at_now(self._put, key, value, ttl_s)

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        return self._at_now(self._claim, key, value, ttl_s)

    async def delete(self, key: str) -> None:
        self._drop(key, 0.0)

    async def hit(self, key: str, window_s: float) -> int:
        return self._at_now(self._hit, key, window_s)

    def _at_now(self, operation, *args):
        now = self._clock()
        self._sweep(now)
        return operation(*args, now)

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

    async def batch(self, ops: list[Op]) -> list:
        try:
            calls = [self._ops[op[0]] for op in ops]  # all looked up first: an unknown one runs nothing
        except KeyError as exc:
            raise ValueError(f"unknown state operation {exc.args[0]!r}") from None
        now = self._clock()
        self._sweep(now)
        return [call(*op[1:], now) for call, op in zip(calls, ops)]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


# Runs the operations of several callers' batches in one command, in order. The operations travel as one
# JSON argument (cheap to encode; the keys are inside it, which is fine on a single Redis, not a cluster).
_BATCH_LUA = """
local out, n = {}, 0
for _, op in ipairs(cjson.decode(ARGV[1])) do
  local kind, key = op[1], op[2]
  n = n + 1
  if kind == 'mget' then
    local values = redis.call('MGET', unpack(key))
    for i = 1, #key do out[n + i - 1] = values[i] end
    n = n + #key - 1
  elseif kind == 'delete' then
    redis.call('DEL', key); out[n] = false
  elseif kind == 'set' then
    redis.call('SET', key, op[3], 'PX', op[4]); out[n] = false
  elseif kind == 'claim' then
    out[n] = redis.call('SET', key, op[3], 'PX', op[4], 'NX') and 1 or 0
  elseif kind == 'release' then
    if redis.call('GET', key) == op[3] then redis.call('DEL', key) end
    out[n] = false
  elseif kind == 'remember' then
    out[n] = redis.call('GET', key)
    if not out[n] then redis.call('SET', key, op[3], 'PX', op[4]) end
  elseif kind == 'hit' then
    out[n] = redis.call('INCR', key)
    if out[n] == 1 then redis.call('PEXPIRE', key, op[3]) end
  end
end
return out
"""


class RedisState:
    """Redis-backed state shared by every app process. Keys are namespaced by `prefix`."""

    def __init__(self, url: str, prefix: str = "linli:") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, decode_responses=True, socket_timeout=TIMEOUT_S,
                                     socket_connect_timeout=TIMEOUT_S)
        self._p = prefix
        self._batch_script = self._redis.register_script(_BATCH_LUA)
        self._queued: list[tuple[list[Op], list[tuple], asyncio.Future]] = []  # batches waiting to be sent
        self._sending: asyncio.Task | None = None
        self._batch_conn = None  # the connection batches go out on, held between them (see _run_batch_script)

    # Single operations go through the batch queue too: one connection and one order for everything this
    # process asks of Redis (a claim released just before a retry's claim arrives is released first).
    async def get(self, key: str) -> str | None:
        return (await self.batch([("get", key)]))[0]

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return await self.batch([("get", k) for k in keys])

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        await self.batch([("set", key, value, ttl_s)])

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        return (await self.batch([("claim", key, value, ttl_s)]))[0]

    async def delete(self, key: str) -> None:
        await self.batch([("delete", key)])

    async def hit(self, key: str, window_s: float) -> int:
        return (await self.batch([("hit", key, window_s)]))[0]

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

    async def batch(self, ops: list[Op]) -> list:
        """The operations in order and atomically, in ONE command shared with every other batch queued
        meanwhile: redis-py spends about 80 µs of CPU per command, so under load a command per message (or
        a dozen, one per operation) would cost more than everything else a message needs."""
        if not ops:
            return []
        wire: list = []
        for op in ops:
            kind = op[0]
            if kind == "get":
                if wire and wire[-1][0] == "mget":  # gets in a row: one MGET (Redis's script calls cost CPU)
                    wire[-1][1].append(self._p + op[1])
                else:
                    wire.append(("mget", [self._p + op[1]]))
            elif kind in ("set", "claim", "remember"):
                wire.append((kind, self._p + op[1], op[2], max(1, int(op[3] * 1000))))
            elif kind == "hit":
                wire.append((kind, self._p + op[1], max(1, int(op[2] * 1000))))
            elif kind == "delete":
                wire.append((kind, self._p + op[1]))
            elif kind == "release":
                wire.append((kind, self._p + op[1], op[2]))
            else:
                raise ValueError(f"unknown state operation {kind!r}")
        fut = asyncio.get_running_loop().create_future()
        self._queued.append((ops, wire, fut))
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send_queued())
        return await fut

    async def _send_queued(self) -> None:
        """Send what is queued as one script call; repeat while more was queued during the round trip."""
        try:
            while self._queued:
                group, self._queued = self._queued, []
                try:
                    raw = await self._run_batch_script(json.dumps([w for _, wire, _ in group for w in wire],
                                                                  ensure_ascii=False))
                except Exception as exc:  # Redis unreachable: every caller of this round learns it
                    for _, _, fut in group:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                at = 0
                for ops, _, fut in group:
                    results = [_result(op, value) for op, value in zip(ops, raw[at : at + len(ops)])]
                    at += len(ops)
                    if not fut.done():  # the caller may have stopped waiting
                        fut.set_result(results)
        finally:
            self._sending = None

    async def _run_batch_script(self, payload: str) -> list:
        """EVALSHA on a connection of its own, held for batches (only one batch is in flight at a time):
        taking a connection from redis-py's pool and giving it back, with its retry wrapper, cost about 40 µs
        of CPU per command, a third of the whole round trip. Its socket has no timeout of its own (redis-py
        would send each command through a new task, `wait_for`); one deadline covers the round trip instead.
        A connection that fails or times out is closed (a late reply must not answer the next batch) and
        connects again on the next batch; the callers of the failed one go on without shared state."""
        from redis.exceptions import NoScriptError, ResponseError

        conn = self._batch_conn
        if conn is None:
            pool = self._redis.connection_pool
            conn = self._batch_conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
        command = conn.pack_command("EVALSHA", self._batch_script.sha, 0, payload)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await conn.send_packed_command(command, check_health=False)
                try:
                    return await conn.read_response()
                except NoScriptError:  # Redis restarted or flushed its scripts: load it again
                    load = conn.pack_command("SCRIPT", "LOAD", _BATCH_LUA)
                    await conn.send_packed_command(load, check_health=False)
                    await conn.read_response()
                    await conn.send_packed_command(command, check_health=False)
                    return await conn.read_response()
        except ResponseError:  # Redis answered (with an error): the connection is in step
            raise
        except BaseException:
            await conn.disconnect(nowait=True)
            raise

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._batch_conn is not None:
            await self._batch_conn.disconnect()
            self._batch_conn = None
        await self._redis.aclose()


def _result(op: Op, value):
    if op[0] == "claim":
        return value == 1
    if op[0] == "remember":
        return value or None  # Lua's false for "absent"
    return None if op[0] in ("set", "delete", "release") else value


def open_state(redis_url: str | None, prefix: str = "linli:") -> StateStore:
    return RedisState(redis_url, prefix) if redis_url else MemoryState()


@dataclass(slots=True)
class _Scope:
    values: dict[str, str | None] = field(default_factory=dict)  # read ahead, or written in this scope
    writes: list[Op] = field(default_factory=list)
    degraded: bool = False  # the read-ahead failed: behave as if the state were empty, write nothing


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("linli_state_scope", default=None)


class _Entered:
    """The context manager of ScopedState.scope."""

    __slots__ = ("_inner", "_read_ahead", "_token")

    def __init__(self, inner: StateStore, read_ahead: list[Op]) -> None:
        self._inner, self._read_ahead = inner, read_ahead

    async def __aenter__(self) -> list:
        scope, read_ahead = _Scope(), self._read_ahead
        try:
            results = await self._inner.batch(read_ahead)
        except Exception as exc:
            log.warning("shared state unreachable, going on without it: %s", exc)
            scope.degraded, results = True, [None] * len(read_ahead)
        values = scope.values
        for op, result in zip(read_ahead, results):
            if op[0] == "get":
                values[op[1]] = result
        self._token = _scope.set(scope)
        return results

    async def __aexit__(self, *_exc) -> None:
        _scope.reset(self._token)


class ScopedState:
    """A StateStore that, inside `scope()`, answers reads from one read-ahead batch and holds writes back
    until `flush()`, so that handling one message costs two round trips to Redis, not a dozen.

    Handlers need not know: outside a scope every call goes straight to the store underneath. If the
    read-ahead fails (Redis restarting), the scope behaves as an empty state and its writes are dropped:
    shared state only speeds things up; the database keeps what must be kept.
    """

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner

    def scope(self, read_ahead: list[Op]) -> "_Entered":
        """``async with state.scope(ops) as results``: run `read_ahead` (any ops, e.g. a claim and gets) in one
        batch, then answer reads from it and hold writes back until `flush` (a class rather than an
        asynccontextmanager: this runs for every push)."""
        return _Entered(self.inner, read_ahead)

    async def flush(self, extra: list[Op] = ()) -> None:
        """Write what the current scope held back, plus `extra`, in one batch."""
        scope = _scope.get()
        ops = ([] if scope is None or scope.degraded else scope.writes) + list(extra)
        if scope is not None:
            scope.writes = []
        if ops and not (scope and scope.degraded):
            await self.inner.batch(ops)

    async def refresh(self, keys: list[str]) -> None:
        """Read these keys again into the current scope (someone else may have changed them meanwhile)."""
        scope = _scope.get()
        if scope is None or scope.degraded or not keys:
            return
        try:
            values = await self.inner.get_many(keys)
        except Exception as exc:
            log.warning("shared state unreachable, keeping what was read: %s", exc)
            return
        scope.values.update(zip(keys, values))

    async def get(self, key: str) -> str | None:
        scope = _scope.get()
        if scope is not None and (key in scope.values or scope.degraded):
            return scope.values.get(key)
        return await self.inner.get(key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        scope = _scope.get()
        known = {} if scope is None else scope.values
        missing = [k for k in keys if k not in known]
        if missing and not (scope and scope.degraded):
            known = {**known, **dict(zip(missing, await self.inner.get_many(missing)))}
        return [known.get(k) for k in keys]

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        scope = _scope.get()
        if scope is None:
            return await self.inner.set(key, value, ttl_s)
        scope.values[key] = value
        scope.writes.append(("set", key, value, ttl_s))

    async def delete(self, key: str) -> None:
        scope = _scope.get()
        if scope is None:
            return await self.inner.delete(key)
        if key in scope.values and scope.values[key] is None:
            return  # read ahead as absent, or deleted already in this scope: nothing to write
        scope.values[key] = None
        scope.writes.append(("delete", key))

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        return await self.inner.claim(key, value, ttl_s)

    async def hit(self, key: str, window_s: float) -> int:
        return await self.inner.hit(key, window_s)

    def lock(self, name: str, ttl_s: float, wait_s: float):
        return self.inner.lock(name, ttl_s, wait_s)

    async def batch(self, ops: list[Op]) -> list:
        return await self.inner.batch(ops)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()
