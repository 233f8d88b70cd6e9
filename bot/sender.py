"""The outbox sender: delivers notices written by handlers, once, through the best channel still open.

Flow per notice (an `outbox` row, status pending):
1. Claim: in one transaction, SELECT the due rows (FOR UPDATE SKIP LOCKED on PostgreSQL, so processes pick
   disjoint rows without waiting), then a conditional UPDATE ... RETURNING sets claimed_by/claimed_until
   only where the row is still due and unclaimed (the guard SQLite needs, having no row locks).
2. Send: a customer-service text while the 48 h window and its count allow; a template message when WeChat
   says the window is closed or spent (45015/45047); `kept` (shown at the person's next message) when no
   template is configured or the template cannot reach them either.
3. Record the outcome right after each send, guarded by `claimed_by`, so the window in which a crash can
   resend a delivered notice (after its claim expires) is one database round trip wide.
A person's notices due together go out as one customer-service message (a desk that gets forty new tickets
in a burst reads one message, not forty, and WeChat's quota of messages per person lasts).
Transient failures are retried with exponential backoff and jitter; permanent ones, or too many attempts,
become dead letters with the reason (`linli outbox dead`, `linli outbox retry ID`).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.wechat_api import WeChatAPI, WeChatError
from storage.models import Outbox

log = logging.getLogger(__name__)
_T = Outbox.__table__
CHINA = timedelta(hours=8)
TEMPLATE_VALUE_MAX = 20  # WeChat refuses longer template values
PARALLEL_PEOPLE = 8  # notices to different people go out side by side; one person's stay in order
MERGED_MAX_CHARS = 600  # one customer-service message (WeChat takes 2,048 bytes of text)
_MERGE_SEPARATOR = "\n——————\n"


def merged(texts: list[str]) -> str:
    return texts[0] if len(texts) == 1 else f"【{len(texts)}条新通知】\n" + _MERGE_SEPARATOR.join(texts)


def parts(message: str) -> list[str]:
    """The notices a sent message carries (merged() undone)."""
    head, _, rest = message.partition("条新通知】\n")
    if rest and head.startswith("【") and head[1:].isdigit():
        return rest.split(_MERGE_SEPARATOR)
    return [message]


def chunks(rows: list) -> list[list]:
    """A person's due notices, in order, grouped into as few messages as fit MERGED_MAX_CHARS each."""
    out: list[list] = []
    size = 0
    for row in rows:
        length = len(row.text) + len(_MERGE_SEPARATOR)
        if out and size + length <= MERGED_MAX_CHARS:
            out[-1].append(row)
            size += length
        else:
            out.append([row])
            size = length + 10
    return out


# What the template's fields say, in their order: how a phone (and the demo's chat) labels them.
TEMPLATE_LABELS = ("事项", "编号", "状态", "时间")


def progress_template(text: str, created_at: datetime, ref: str = "", phrase: str = "") -> dict[str, str]:
    """The generic 4-field "办理进度" template: what happened, its number, its status, when (China time)."""
    summary = " ".join(text.split())
    if len(summary) > TEMPLATE_VALUE_MAX:
        summary = summary[:TEMPLATE_VALUE_MAX - 1] + "…"
    local = created_at + CHINA
    return {
        "thing1": summary or "您有一条新通知",
        "character_string2": ref or "无",
        "phrase3": phrase or "通知",
        "time4": f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}",
    }


def _retryable(error: WeChatError) -> bool:
    # 45009 (daily quota) comes back tomorrow; a token still stale after the client's own retry, soon.
    return error.transient or error.quota or error.stale_token


class OutboxSender:
    def __init__(self, engine: AsyncEngine, api: WeChatAPI, *, worker_id: str, now: Callable[[], datetime],
                 template_id: str | None, batch: int = 50, claim_s: float = 60, max_attempts: int = 8,
                 base_backoff_s: float = 5, max_backoff_s: float = 3600,
                 on_kept: Callable[[str], Awaitable[None]] | None = None) -> None:
        self._engine, self._api = engine, api
        self._on_kept = on_kept  # tells the webhook to show this person their kept notices next time
        self.worker_id, self._now, self._template_id = worker_id, now, template_id
        self._batch, self._claim = batch, timedelta(seconds=claim_s)
        self._max_attempts, self._base_backoff_s, self._max_backoff_s = max_attempts, base_backoff_s, max_backoff_s

    async def run_forever(self, wake: asyncio.Event, idle_s: float = 2, stop: asyncio.Event | None = None) -> None:
        """Deliver at once when `wake` is set (new rows committed), else every idle_s, until `stop` is set (then
        after the run in hand: cancelling it could leave a transaction open, holding SQLite's write lock)."""
        while not (stop and stop.is_set()):
            wake.clear()  # before the run, so a row committed during it wakes the next one
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox run failed; trying again in %g s", idle_s)
                handled = 0
            if handled >= self._batch or (stop and stop.is_set()):
                continue  # more may be due, or time to stop
            try:
                await asyncio.wait_for(wake.wait(), idle_s)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """Claim what is due and deliver it; returns how many notices were handled."""
        rows = await self._claim_due()
        if not rows:
            return 0
        with contextlib.suppress(WeChatError):  # one token fetch now, not a queue of parallel sends at its lock
            await self._api.access_token()
        per_person: dict[str, list] = {}
        for row in rows:
            per_person.setdefault(row.openid, []).append(row)
        gate = asyncio.Semaphore(PARALLEL_PEOPLE)

        async def deliver_all(person_rows: list) -> None:
            async with gate:
                window_closed = False  # learnt from this person's first notice: skip the doomed call after
                for chunk in chunks(person_rows):
                    window_closed = await self._deliver(chunk, window_closed)

        outcomes = await asyncio.gather(*(deliver_all(r) for r in per_person.values()), return_exceptions=True)
        for failure in (o for o in outcomes if isinstance(o, Exception)):
            # e.g. the database went away: the rows stay claimed and are picked up when the claim expires
            log.error("outbox delivery failed: %r", failure)
        return len(rows)

    async def _claim_due(self) -> list:
        now = self._now()
        due = (_T.c.status == "pending", _T.c.next_attempt_at <= now,
               or_(_T.c.claimed_until.is_(None), _T.c.claimed_until < now))
        async with self._engine.begin() as conn:
            # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED): PostgreSQL
            # may rescan such a subquery and then claims far more than n rows.
            ids = list((await conn.execute(select(_T.c.id).where(*due).order_by(_T.c.id).limit(self._batch)
                                           .with_for_update(skip_locked=True))).scalars())
            if not ids:
                return []
            # The conditions again: on SQLite (no row locks) another process may have claimed some meanwhile.
            rows = (await conn.execute(update(_T).where(_T.c.id.in_(ids), *due).values(
                claimed_by=self.worker_id, claimed_until=now + self._claim).returning(*_T.c))).all()
        return sorted(rows, key=lambda r: r.id)

    async def _deliver(self, chunk: list, window_closed: bool) -> bool:
        """Send a person's claimed notices as one message and record the outcome; returns whether the person's
        window is closed. Past the window each notice falls back on its own (a template per notice)."""
        if self._now() >= chunk[0].claimed_until - self._claim / 2:
            for row in chunk:  # too little claim left to send safely: next run
                await self._finish(row, claimed_until=None)
            return window_closed
        if not window_closed:
            try:
                await self._api.send_text(chunk[0].openid, merged([row.text for row in chunk]))
                for row in chunk:
                    await self._finish(row, status="sent", channel="custom", sent_at=self._now(), claimed_until=None)
                return False
            except WeChatError as e:
                if not e.window_closed:
                    for row in chunk:
                        await self._failed(row, e)
                    return False
                reason = e
        else:
            reason = WeChatError(45015, "customer-service window closed (seen on an earlier notice)")
        for row in chunk:
            await self._fall_back(row, reason)
        return True

    async def _fall_back(self, row, reason: WeChatError) -> None:
        if self._template_id:
            try:
                await self._api.send_template(row.openid, self._template_id,
                                              progress_template(row.text, row.created_at, row.ref, row.phrase))
                await self._finish(row, status="sent", channel="template", sent_at=self._now(), claimed_until=None)
                return
            except WeChatError as e:
                if _retryable(e):
                    await self._failed(row, e)
                    return
                reason = e  # not subscribed, template refused …: keep it for their next message
        if await self._finish(row, status="kept", channel="kept", last_error=f"kept: {reason}", claimed_until=None):
            if self._on_kept:
                await self._on_kept(row.openid)

    async def _failed(self, row, error: WeChatError) -> None:
        attempts = row.attempts + 1
        if not _retryable(error) or attempts >= self._max_attempts:
            log.warning("notice %s is a dead letter after %d attempts: %s", row.id, attempts, error)
            await self._finish(row, status="dead", attempts=attempts, last_error=str(error), claimed_until=None)
            return
        delay = min(self._max_backoff_s, self._base_backoff_s * 2 ** (attempts - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter: processes that failed together do not retry together
        await self._finish(row, attempts=attempts, last_error=str(error), claimed_until=None,
                           next_attempt_at=self._now() + timedelta(seconds=delay))

    async def _finish(self, row, **values) -> bool:
        """Record an outcome, only if the claim is still ours (it may have expired during a slow send)."""
        async with self._engine.begin() as conn:
            done = await conn.execute(update(_T).where(
                _T.c.id == row.id, _T.c.claimed_by == self.worker_id, _T.c.claimed_until == row.claimed_until,
                _T.c.status == "pending").values(**values))
        if done.rowcount != 1:
            log.warning("notice %s: claim expired before its outcome %s was recorded", row.id, values)
        return done.rowcount == 1


async def dead_letters(engine: AsyncEngine) -> list[Outbox]:
    """Notices that could not be delivered, oldest first, with the reason in last_error."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        return list((await session.scalars(select(Outbox).where(Outbox.status == "dead").order_by(Outbox.id))).all())


async def retry_dead(engine: AsyncEngine, outbox_id: int, now: datetime) -> bool:
    """Put a dead letter back in the queue with fresh attempts; False when there is no such dead letter."""
    async with engine.begin() as conn:
        moved = await conn.execute(update(_T).where(_T.c.id == outbox_id, _T.c.status == "dead").values(
            status="pending", attempts=0, next_attempt_at=now, claimed_until=None, last_error=""))
    return moved.rowcount == 1


async def show_kept(engine: AsyncEngine, openid: str) -> list[str]:
    """Texts of this person's kept notices, oldest first, marked shown: for the reply to their next message.
    A conditional UPDATE, so two concurrent messages never show one notice twice."""
    async with engine.begin() as conn:
        rows = (await conn.execute(update(_T).where(_T.c.openid == openid, _T.c.status == "kept")
                                   .values(status="shown").returning(_T.c.id, _T.c.text))).all()
    return [text for _, text in sorted(rows)]


# -- linli outbox dead | retry ID ------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `dead` and `retry ID` to the subparsers of `linli outbox`."""
    subparsers.add_parser("dead", help="列出没能送达的通知和原因 / notices that could not be delivered").set_defaults(
        run=_cmd_dead)
    retry = subparsers.add_parser("retry", help="把一条没送达的通知重新排队 / put a dead notice back in the queue")
    retry.add_argument("id", type=int, help="通知编号，见 linli outbox dead / the notice's id")
    retry.set_defaults(run=_cmd_retry)


def _with_engine(job):
    """Run job(engine) on DATABASE_URL, migrated first (migrations run their own event loop)."""
    from bot.config import migrated_database_url
    from storage.db import create_engine

    url = migrated_database_url()

    async def run():
        engine = create_engine(url)
        try:
            return await job(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _cmd_dead(_args) -> int:
    rows = _with_engine(dead_letters)
    if not rows:
        print("没有死信 / no dead letters")
    for r in rows:
        text = " ".join(r.text.split())
        print(f"#{r.id}  {r.created_at + CHINA:%Y-%m-%d %H:%M}  发给 {r.openid}  关于 {r.about or '-'}  "
              f"试了 {r.attempts} 次\n    原因：{r.last_error}\n    内容：{text[:60]}")
    return 0


def _cmd_retry(args) -> int:
    from handlers.context import utcnow

    if not _with_engine(lambda engine: retry_dead(engine, args.id, utcnow())):
        print(f"通知 #{args.id} 不是没送达的通知 / notice #{args.id} is not a dead letter", file=sys.stderr)
        return 1
    print(f"通知 #{args.id} 已重新排队 / notice #{args.id} is queued again")
    return 0
