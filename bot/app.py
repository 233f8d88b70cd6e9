"""Assembly: settings -> storage, shared state, handlers, gateway -> an aiohttp application."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

import nlp
from bot.config import Settings
from bot.delivery import Delivery, Limits
from bot.gateway import Gateway
from bot.webhook import add_webhook_routes
from handlers.context import Context, utcnow
from storage.db import create_engine, sessionmaker
from storage.ids import IdAllocator
from storage.migrate import upgrade_async
from storage.state import open_state
from storage.writer import Writer

log = logging.getLogger(__name__)
FIRST_TICKET_ID = 10000  # six-digit tracking numbers from the start (five digits + check digit)


@dataclass
class Service:
    settings: Settings
    engine: object
    writer: Writer
    ctx: Context
    delivery: Delivery
    gateway: Gateway

    async def close(self) -> None:
        await self.writer.stop()
        await self.ctx.state.close()
        await self.engine.dispose()


async def start_service(settings: Settings, *, now: Callable[[], datetime] = utcnow,
                        clock: Callable[[], float] = time.time, migrate: bool | None = None,
                        state_prefix: str = "linli:") -> Service:
    """Open storage and state, migrate the embedded database, load the classifier."""
    if migrate if migrate is not None else settings.embedded:
        await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    state = open_state(settings.redis_url, state_prefix)
    await state.ping()
    await asyncio.to_thread(nlp.warm_up)  # the dictionary loads now, not on the first resident's message
    ctx = Context(sessions=sessionmaker(engine), state=state,
                  ticket_ids=IdAllocator(engine, "tickets", start=FIRST_TICKET_ID),
                  now=now, attach_window_s=settings.attach_window_s)
    writer = Writer(engine)
    writer.start()
    limits = Limits(reply_cache_s=settings.reply_cache_s, rate_count=settings.rate_limit_count,
                    rate_window_s=settings.rate_limit_window_s)
    gateway = Gateway(settings.wechat_token, settings.wechat_appid, settings.wechat_aes_key,
                      freshness_s=settings.timestamp_window_s, clock=clock)
    return Service(settings, engine, writer, ctx, Delivery(ctx, writer, limits), gateway)


SERVICE = web.AppKey("service", Service)


def create_app(settings: Settings, **service_options) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)

    async def lifecycle(app: web.Application):
        app[SERVICE] = await start_service(settings, **service_options)
        yield
        await app[SERVICE].close()

    app.cleanup_ctx.append(lifecycle)
    add_webhook_routes(app, lambda: app[SERVICE])
    return app
