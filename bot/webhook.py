"""`/wechat`: the HTTP face of the gateway. Every request gets a clear status, and fast."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from bot.delivery import Replayed
from bot.gateway import Rejected
from handlers.texts import TRY_AGAIN_LATER

log = logging.getLogger(__name__)
ANSWER_WITHIN_S = 4.5  # WeChat waits 5 s, then retries and finally shows "该公众号暂时无法提供服务"


def add_webhook_routes(app: web.Application, service: Callable[[], object]) -> None:
    async def verify(request: web.Request) -> web.Response:
        try:
            return web.Response(text=service().gateway.verify_url(request.query))
        except Rejected as r:
            return web.Response(status=r.status, text=r.reason)

    async def push(request: web.Request) -> web.Response:
        svc = service()
        try:
            body = await request.read()  # over client_max_size: aiohttp answers 413
            received = svc.gateway.open(request.query, body)
        except web.RequestPayloadError:  # e.g. a Content-Encoding the body does not match
            return web.Response(status=400, text="unreadable body")
        except Rejected as r:
            log.info("rejected push from %s: %s", request.remote, r.reason)
            return web.Response(status=r.status, text=r.reason)
        try:
            async with asyncio.timeout(ANSWER_WITHIN_S):  # no extra task per push, unlike wait_for on 3.11
                reply = await svc.delivery.deliver(received.inbound, received.replay)
        except Replayed:
            log.info("refused push from %s: a signed query repeated with another body", request.remote)
            return web.Response(status=403, text="signature already used with another body")
        except TimeoutError:  # storage too slow or unreachable: say so now, rather than let WeChat give up
            log.warning("no answer for %s within %s s", received.inbound.dedupe_key, ANSWER_WITHIN_S)
            reply = TRY_AGAIN_LATER
        if reply is None:
            return web.Response(text="success")
        return web.Response(text=svc.gateway.render_reply(received, reply, request.query),
                            content_type="application/xml")

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/wechat", verify)
    app.router.add_post("/wechat", push)
    app.router.add_get("/healthz", health)
