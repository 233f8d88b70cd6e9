"""Assembly: settings -> storage, shared state, handlers, gateway -> an aiohttp application."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

import nlp
from bot.config import Settings
from bot.delivery import Delivery, Limits
from bot.gateway import Gateway
from bot.scheduler import Scheduler
from bot.web.settings import load_web_settings
from bot.sender import OutboxSender
from bot.web import add_console_routes
from bot.webhook import add_webhook_routes
from bot.wechat_api import WeChatAPI
from handlers.context import Context, utcnow
from handlers.dispatch import Directory
from handlers.followup import load_time_limits
from handlers.router import scheduled_jobs
from handlers.tickets import remember_open_complainants
from storage.db import Reader, create_engine, sessionmaker
from storage.ids import IdAllocator
from storage.migrate import upgrade_async
from storage.state import ScopedState, open_state
from storage.writer import Writer

log = logging.getLogger(__name__)
FIRST_TICKET_ID = 10000  # six-digit tracking numbers from the start (five digits + check digit)


STOP_WITHIN_S = 10  # how long a stopping service waits for the sender and the scheduler to finish their round


@dataclass
class Service:
    settings: Settings
    engine: AsyncEngine
    writer: Writer
    ctx: Context
    delivery: Delivery
    gateway: Gateway
    sender: OutboxSender | None = None
    scheduler: Scheduler | None = None
    api: WeChatAPI | None = None
    notices: asyncio.Event = field(default_factory=asyncio.Event)  # set when new outbox rows are committed
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def start_background(self) -> None:
        """The outbox sender and the scheduler, in this process (every process runs both; the database decides
        who sends which notice, and which process leads the scheduler)."""
        if self.sender:
            self._tasks.append(asyncio.create_task(self.sender.run_forever(self.notices, stop=self._stop),
                                                   name="linli-sender"))
        if self.scheduler:
            self._tasks.append(asyncio.create_task(self.scheduler.run_forever(self._stop), name="linli-scheduler"))

    async def close(self) -> None:
        self._stop.set()
        self.notices.set()  # wakes the sender: it stops after the run in hand
        if self._tasks:
            _done, stuck = await asyncio.wait(self._tasks, timeout=STOP_WITHIN_S)
            for task in stuck:  # say, a WeChat call hanging: give up on it
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.writer.stop()
        await self.ctx.ticket_ids.settled()
        if self.api:
            await self.api.close()
        await self.ctx.state.close()
        await self.ctx.read.close()
        await self.engine.dispose()


async def start_service(settings: Settings, *, now: Callable[[], datetime] = utcnow,
                        clock: Callable[[], float] = time.time, migrate: bool | None = None,
                        state_prefix: str = "linli:", background: bool = True) -> Service:
    """Open storage and state, migrate the embedded database, load the classifier; with `background`,
    start the outbox sender (when the WeChat API is configured) and the scheduler."""
    if migrate if migrate is not None else settings.embedded:
        await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    state = ScopedState(open_state(settings.redis_url, state_prefix))
    await state.ping()
    await asyncio.to_thread(nlp.warm_up)  # the dictionary loads now, not on the first resident's message
    sessions = sessionmaker(engine)
    ctx = Context(read=Reader(engine), sessions=sessions, state=state, directory=Directory(sessions),
                  ticket_ids=IdAllocator(engine, "tickets", start=FIRST_TICKET_ID),
                  now=now, attach_window_s=settings.attach_window_s, rating_timeout_s=settings.rating_timeout_h * 3600,
                  time_limits=load_time_limits(settings.time_limits_file),
                  hotspot_window_s=settings.hotspot_window_h * 3600, hotspot_households=settings.hotspot_households,
                  public_url=load_web_settings().public_url)
    if not settings.redis_url:  # in-process state starts empty: remember who may repeat an open complaint
        await remember_open_complainants(ctx)
    writer = Writer(engine)
    writer.start()
    limits = Limits(reply_cache_s=settings.reply_cache_s, rate_count=settings.rate_limit_count,
                    rate_window_s=settings.rate_limit_window_s)
    gateway = Gateway(settings.wechat_token, settings.wechat_appid, settings.wechat_aes_key,
                      freshness_s=settings.timestamp_window_s, clock=clock,
                      original_id=settings.wechat_original_id)
    service = Service(settings, engine, writer, ctx, Delivery(ctx, writer, limits), gateway)
    service.delivery.on_notices = service.notices.set
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    if settings.wechat_appid and settings.wechat_secret:
        service.api = WeChatAPI(settings.wechat_api_base, settings.wechat_appid, settings.wechat_secret, state)
        service.sender = OutboxSender(engine, service.api, worker_id=worker, now=now,
                                      template_id=settings.wechat_template_id or None,
                                      max_attempts=12,  # with backoff: about 1.5-2.5 h of WeChat outage
                                      on_kept=service.delivery.mark_kept)
    else:
        log.warning("LINLI_WECHAT_APPID/SECRET not set: notices stay in the outbox until they are")
    service.scheduler = Scheduler(engine, holder=worker, now=now, jobs=scheduled_jobs(engine, settings))
    if background:
        service.start_background()
    return service


SERVICE = web.AppKey("service", Service)


def create_app(settings: Settings, **service_options) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)

    async def lifecycle(app: web.Application):
        app[SERVICE] = await start_service(settings, **service_options)
        yield
        await app[SERVICE].close()

    app.cleanup_ctx.append(lifecycle)
    add_webhook_routes(app, lambda: app[SERVICE])
    add_console_routes(app, lambda: app[SERVICE])
    return app
