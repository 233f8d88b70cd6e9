"""One push, delivered exactly once: dedupe, rate limit, route to a handler, store, remember the reply.

WeChat re-sends a push it got no answer for within 5 s, up to 3 times, and possibly while the first is
still being handled. The first delivery claims the push's key in the shared state; a retry waits for the
first one's reply and returns it unchanged. The database's unique key on the inbound record is the last
line of defence when the shared state has forgotten (a Redis restart): the retry then finds the stored
reply instead of writing anything twice.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.sender import show_kept
from handlers import texts
from handlers.context import Context
from handlers.dispatch import Directory
from handlers.router import route
from handlers.types import Inbound
from storage import tickets as repo
from storage.models import InboundMessage
from storage.state import ScopedState
from storage.writer import Conflict, Duplicate, Writer

log = logging.getLogger(__name__)
KEPT_FLAG_S = 30 * 86400
# Per-person keys every message may need: read ahead with the claim, in the same round trip.
PER_PERSON = ("conv:", "kept:", "last_ticket:", "has_tickets:", "pin:", "orphans:")


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

    async def deliver(self, msg: Inbound) -> str | None:
        """The reply text for this push (None: answer `success`)."""
        key, openid, limits = msg.dedupe_key, msg.openid, self.limits
        read_ahead = [("claim", "claim:" + key, "1", limits.reply_cache_s),
                      ("hit", "rate:" + openid, limits.rate_window_s),
                      ("get", Directory.VERSION_KEY)] + [("get", prefix + openid) for prefix in PER_PERSON]
        async with self.state.scope(read_ahead) as (claimed, count, version, *_):
            self.ctx.directory.note_version(version)
            if claimed is False:
                earlier = await self._earlier_reply(key)
                if earlier is not None:
                    return earlier or None
                # The first delivery died or the state was lost: handle it; the database refuses a second record.
            answered = self._answering[key] = asyncio.get_running_loop().create_future()
            try:
                reply, stored = await self._answer(msg, count)
                if stored:
                    answered.set_result(reply or "")
                return reply
            finally:
                if self._answering.get(key) is answered:
                    del self._answering[key]
                if not answered.done():
                    answered.set_result(None)  # nothing stored: a waiting retry handles the push afresh

    async def _answer(self, msg: Inbound, count: int | None) -> tuple[str | None, bool]:
        """(the reply, whether it is stored for retries)."""
        key, limits = msg.dedupe_key, self.limits
        if count is not None and count > limits.rate_count:
            await self._flush(key, texts.RATE_LIMITED)
            return texts.RATE_LIMITED, True
        try:
            reply = await self._handle(msg)
            if reply is not None:
                reply = await self._with_kept_notices(msg.openid, reply)
        except asyncio.CancelledError:
            # The webhook stopped waiting (its 4.5 s are up): WeChat's retry must start afresh, not wait
            # retry_wait_s for a reply this delivery will never write. A commit still under way is caught by
            # the database's key. Not awaited: the webhook is answering now.
            self._release_later(key)
            raise
        except Exception:
            log.exception("could not handle %s", key)
            await _quietly(self.state.inner.delete("claim:" + key), "claim release")  # WeChat's retry: fresh try
            return texts.TRY_AGAIN_LATER, False
        await self._flush(key, reply or "")
        return reply, True

    def _release_later(self, key: str) -> None:
        task = asyncio.get_running_loop().create_task(
            _quietly(self.state.inner.delete("claim:" + key), "claim release"))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def mark_kept(self, openid: str) -> None:
        """The sender could not reach this person: show what it kept with their next reply."""
        await _quietly(self.state.inner.set("kept:" + openid, "1", KEPT_FLAG_S), "kept flag")

    async def _with_kept_notices(self, openid: str, reply: str) -> str:
        if not await self.state.get("kept:" + openid):
            return reply
        await self.state.delete("kept:" + openid)
        kept = await show_kept(self.writer.engine, openid)
        return texts.with_kept_notices(kept, reply) if kept else reply

    async def _flush(self, key: str, reply: str) -> None:
        """The state writes held back while handling, and the reply for retries, in one round trip."""
        await _quietly(self.state.flush([("set", "reply:" + key, reply, self.limits.reply_cache_s)]), "state flush")

    async def _handle(self, msg: Inbound) -> str | None:
        outcome = await route(msg, self.ctx)
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
