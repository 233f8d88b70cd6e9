"""`/wechat`: the HTTP face of the gateway. Every request gets a clear status, and fast."""
from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from bot.gateway import Rejected

log = logging.getLogger(__name__)


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
        except Rejected as r:
            log.info("rejected push from %s: %s", request.remote, r.reason)
            return web.Response(status=r.status, text=r.reason)
        reply = await svc.delivery.deliver(received.inbound)
        if reply is None:
            return web.Response(text="success")
        return web.Response(text=svc.gateway.render_reply(received, reply, request.query),
                            content_type="application/xml")

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/wechat", verify)
    app.router.add_post("/wechat", push)
    app.router.add_get("/healthz", health)
