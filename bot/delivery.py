"""One push, delivered exactly once: dedupe, rate limit, route to a handler, store, remember the reply.

WeChat re-sends a push it got no answer for within 5 s, up to 3 times, and possibly while the first is
still being handled. The first delivery claims the push's key in the shared state; a retry waits for the
first one's reply and returns it unchanged. The database's unique key on the inbound record is the last
line of defence when the shared state has forgotten (a Redis restart): the retry then finds the stored
reply instead of writing anything twice.

One person's pushes are handled one at a time (a double tap, or a picture right behind its words, must see
what the first one wrote and asked): in this process by a queue per person, across processes by a claim on
the person's turn in the shared state, taken in the same round trip as the dedupe claim.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
from dataclasses import dataclass

from bot.sender import show_kept
from handlers import texts
from handlers.context import Context
from handlers.dispatch import Directory
from handlers.router import PERSON_KEYS, route
from handlers.types import Inbound
from storage import tickets as repo
from storage.models import InboundMessage
from storage.state import ScopedState
from storage.writer import Conflict, Duplicate, Writer

log = logging.getLogger(__name__)
KEPT, TURN = "kept:", "turn:"
KEPT_FLAG_S = 30 * 86400
PER_PERSON = (KEPT, *PERSON_KEYS)  # read ahead with the claim, in the same round trip
TURN_HOLD_S = 5.0  # a person's turn outlives no push: WeChat gives up after 5 s
TURN_WAIT_S = 3.0  # waiting longer for another process's turn: go ahead (the database still keeps order)


class Replayed(Exception):
    """A signed query seen before with another body: someone replays a signature (plain mode signs no body)."""


class OneAtATime:
    """In this process, one push per person at a time; the next waits its turn, in arrival order."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future]] = {}  # a person being served -> those waiting

    def __call__(self, who: str) -> "_Turn":
        return _Turn(self, who)

    def _release(self, who: str) -> None:
        waiting = self._waiting[who]
        while waiting:
            nxt = waiting.pop(0)
            if not nxt.done():  # hand the turn over (a waiter that gave up is skipped)
                nxt.set_result(None)
                return
        del self._waiting[who]

    def __len__(self) -> int:
        return len(self._waiting)


class _Turn:
    __slots__ = ("_queue", "_who")

    def __init__(self, queue: OneAtATime, who: str) -> None:
        self._queue, self._who = queue, who

    async def __aenter__(self) -> None:
        waiting = self._queue._waiting.get(self._who)
        if waiting is None:
            self._queue._waiting[self._who] = []
            return
        turn = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._queue._release(self._who)  # handed the turn just as we gave up: pass it on
            elif turn in waiting:
                waiting.remove(turn)
            raise

    async def __aexit__(self, *_exc) -> None:
        self._queue._release(self._who)


@dataclass
class Limits:
    reply_cache_s: float = 300  # how long a retry gets the first reply from the shared state
    retry_wait_s: float = 4.0  # how long a concurrent retry waits for the first delivery's reply
    write_timeout_s: float = 3.5  # WeChat gives up after 5 s; answer before that, stored or not
    rate_count: int = 20  # messages per resident …
    rate_window_s: float = 60  # … per this many seconds


class Delivery:
    def __init__(self, ctx: Context, writer: Writer, limits: Limits | None = None) -> None:
        self.ctx, self.writer, self.limits = ctx, writer, limits or Limits()
        self.state: ScopedState = ctx.state
        self.on_notices = lambda: None  # wakes the outbox sender after a commit that wrote notices
        self._releasing: set[asyncio.Task] = set()  # claim releases under way (kept so they are not collected)
        # Pushes being answered in this process: a retry arriving meanwhile waits on the future instead of
        # polling the shared state. Result: the stored reply ("" for none), or None when there is none.
        self._answering: dict[str, asyncio.Future[str | None]] = {}
        self.one_at_a_time = OneAtATime()
        self._tokens = (f"{os.getpid()}.{n}" for n in itertools.count())  # whose turn it is, across processes

    async def deliver(self, msg: Inbound, replay: tuple[str, str, float] | None = None) -> str | None:
        """The reply text for this push (None: answer `success`). `replay`: (the signed query's key, the body's
        digest, seconds the query stays fresh) in plain mode, where the signature does not cover the body."""
        key, openid, limits = msg.dedupe_key, msg.openid, self.limits
        token = next(self._tokens)
        read_ahead = [("claim", "claim:" + key, "1", limits.reply_cache_s),
                      ("claim", TURN + openid, token, TURN_HOLD_S),
                      ("hit", "rate:" + openid, limits.rate_window_s),
                      ("get", Directory.VERSION_KEY)] + [("get", prefix + openid) for prefix in PER_PERSON]
        if replay is not None:
            read_ahead.append(("remember", "signed:" + replay[0], replay[1], replay[2]))
        async with self.one_at_a_time(openid), self.state.scope(read_ahead) as (claimed, my_turn, count, version, *rest):
            if replay is not None and rest[-1] not in (None, replay[1]):
                self._release_later(None, openid, token if my_turn else None)
                raise Replayed()
            self.ctx.directory.note_version(version)
            release = [("release", TURN + openid, token)] if my_turn else []
            try:
                if claimed is False:
                    earlier = await self._earlier_reply(key)
                    if earlier is not None:
                        return earlier or None
                    # The first delivery died or the state was lost: handle it; the database refuses a second record.
                if my_turn is False:  # this person's previous push is being handled in another process
                    if await self._wait_for_turn(openid, token):
                        release = [("release", TURN + openid, token)]
                answered = self._answering[key] = asyncio.get_running_loop().create_future()
                try:
                    reply, stored = await self._answer(msg, count, release)
                    release = []  # the answer's flush carried it
                    if stored:
                        answered.set_result(reply or "")
                    return reply
                finally:
                    if self._answering.get(key) is answered:
                        del self._answering[key]
                    if not answered.done():
                        answered.set_result(None)  # nothing stored: a waiting retry handles the push afresh
            finally:
                if release:
                    self._release_later(None, openid, token)

    async def _wait_for_turn(self, openid: str, token: str) -> bool:
        """Wait for another process to finish this person's previous push, then read their state afresh."""
        loop = asyncio.get_running_loop()
        deadline, delay, mine = loop.time() + TURN_WAIT_S, 0.005, False
        while loop.time() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            if mine := bool(await _quietly(self.state.inner.claim(TURN + openid, token, TURN_HOLD_S), "turn claim")):
                break
        await self.state.refresh([prefix + openid for prefix in PER_PERSON])
        return mine

    async def _answer(self, msg: Inbound, count: int | None, release: list) -> tuple[str | None, bool]:
        """(the reply, whether it is stored for retries)."""
        key = msg.dedupe_key
        over_limit = count is not None and count > self.limits.rate_count
        try:
            reply = await self._handle(msg, over_limit)
            if reply is not None:
                reply = await self._with_kept_notices(msg.openid, reply)
        except asyncio.CancelledError:
            # The webhook stopped waiting (its 4.5 s are up): WeChat's retry must start afresh, not wait
            # retry_wait_s for a reply this delivery will never write. A commit still under way is caught by
            # the database's key. Not awaited: the webhook is answering now.
            self._release_later(key, msg.openid, None)  # the person's turn: deliver() gives it back
            raise
        except Exception:
            log.exception("could not handle %s", key)
            await _quietly(self.state.inner.batch([("delete", "claim:" + key), *release]), "claim release")
            return texts.TRY_AGAIN_LATER, False  # WeChat's retry: a fresh try
        await self._flush(key, reply or "", release)
        return reply, True

    def _release_later(self, key: str | None, openid: str, token: str | None) -> None:
        """Give up the push's claim and the person's turn without waiting for Redis to say so."""
        ops = ([("delete", "claim:" + key)] if key else []) + ([("release", TURN + openid, token)] if token else [])
        if not ops:
            return
        task = asyncio.get_running_loop().create_task(_quietly(self.state.inner.batch(ops), "claim release"))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def mark_kept(self, openid: str) -> None:
        """The sender could not reach this person: show what it kept with their next reply."""
        await _quietly(self.state.inner.set(KEPT + openid, "1", KEPT_FLAG_S), "kept flag")

    async def _with_kept_notices(self, openid: str, reply: str) -> str:
        if not await self.state.get(KEPT + openid):
            return reply
        await self.state.delete(KEPT + openid)
        kept = await show_kept(self.writer.engine, openid)
        return texts.with_kept_notices(kept, reply) if kept else reply

    async def _flush(self, key: str, reply: str, release: list) -> None:
        """The state writes held back while handling, the reply for retries and the person's turn given back,
        in one round trip."""
        await _quietly(self.state.flush([("set", "reply:" + key, reply, self.limits.reply_cache_s), *release]),
                       "state flush")

    async def _handle(self, msg: Inbound, over_limit: bool) -> str | None:
        outcome = await route(msg, self.ctx, over_limit=over_limit)
        if outcome.unit is None:
            return outcome.reply
        unit = outcome.unit
        unit.dedupe_key = msg.dedupe_key
        unit.add(InboundMessage, dedupe_key=msg.dedupe_key, openid=msg.openid, kind=msg.kind,
                 received_at=msg.received_at, reply=outcome.reply or "")
        try:
            # A slow commit still completes (the writer task owns it; giving up cancels only our wait):
            # the resident is just not told about it this time.
            async with asyncio.timeout(self.limits.write_timeout_s):
                await self.writer.submit(unit)
        except Duplicate:
            async with self.ctx.sessions() as session:
                return (await repo.stored_reply(session, msg.dedupe_key)) or None
        except Conflict:
            return outcome.conflict_reply or texts.TRY_AGAIN_LATER
        if any(table.name == "outbox" for table, _ in unit.inserts):
            self.on_notices()
        for step in outcome.after_commit:
            await _quietly(step(), "after-commit step")
        return outcome.reply

    async def _earlier_reply(self, key: str) -> str | None:
        """The reply of the first delivery of this push, once it is stored; None if it never comes."""
        answering = self._answering.get(key)
        if answering is None:  # answered elsewhere (another process), or long ago
            return await self._wait_for_reply(key)
        try:
            async with asyncio.timeout(self.limits.retry_wait_s):
                return await asyncio.shield(answering)
        except TimeoutError:
            return None

    async def _wait_for_reply(self, key: str) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.retry_wait_s
        delay = 0.005
        while True:
            reply = await _quietly(self.state.inner.get("reply:" + key), "reply lookup")
            if reply is not None or loop.time() >= deadline:
                return reply
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


async def _quietly(awaitable, what: str):
    """Shared state is an optimisation: when Redis is down, log it and carry on without it."""
    try:
        return await awaitable
    except Exception as exc:
        log.warning("%s failed: %s", what, exc)
        return None
