"""Residents' pages inside WeChat (H5): a ticket's timeline with its photos, and the resident's own tickets.

Residents are identified by WeChat's web OAuth with scope snsapi_base (no consent page): the page sends the
browser to `connect/oauth2/authorize`, WeChat comes back to /h5/oauth with a code, and the server trades it
for the resident's openid at `sns/oauth2/access_token`. A resident sees only their own tickets (and, as those
capabilities land, what is public to their community: proposals, the wish wall).
"""
from __future__ import annotations

import secrets
from urllib.parse import quote, urlencode

import aiohttp
import aiohttp_jinja2
import aiohttp_session
from aiohttp import web

import nlp
from bot.web import WEB
from handlers import texts
from storage import tickets as repo
from storage.console import ticket_timeline

OAUTH_PATH = "/h5/oauth"


ticket_url = texts.ticket_link  # the link notices carry to a ticket's page


async def resident(request: web.Request) -> str:
    """The openid of the resident on this page, or a redirect through WeChat's OAuth to find out."""
    session = await aiohttp_session.get_session(request)
    if openid := session.get("resident"):
        return openid
    web_app, service = request.app[WEB], request.app[WEB].service()
    state = secrets.token_urlsafe(16)
    session["oauth_state"], session["oauth_next"] = state, request.path_qs
    query = urlencode({"appid": service.settings.wechat_appid, "redirect_uri": web_app.settings.public_url + OAUTH_PATH,
                       "response_type": "code", "scope": "snsapi_base", "state": state}, quote_via=quote)
    raise web.HTTPFound(f"{web_app.settings.oauth_base}/connect/oauth2/authorize?{query}#wechat_redirect")


async def oauth_return(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    state, code = request.query.get("state", ""), request.query.get("code", "")
    if not code or not state or state != session.pop("oauth_state", None):
        raise web.HTTPForbidden(text="请从公众号里的链接重新打开。")
    service = request.app[WEB].service()
    settings = service.settings
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(f"{settings.wechat_api_base}/sns/oauth2/access_token", params={
                "appid": settings.wechat_appid, "secret": settings.wechat_secret, "code": code,
                "grant_type": "authorization_code"}) as resp:
            answer = await resp.json(content_type=None)
    openid = answer.get("openid") if isinstance(answer, dict) else None
    if not openid:
        raise web.HTTPForbidden(text="微信没有确认您的身份，请从公众号里的链接重新打开。")
    session["resident"] = openid
    next_path = session.pop("oauth_next", "/h5/tickets")
    raise web.HTTPFound(next_path if next_path.startswith("/h5/") else "/h5/tickets")


def _category(code: str) -> str:
    category = nlp.CATEGORIES.get(code)
    return category.name if category else code


async def my_tickets(request: web.Request) -> web.Response:
    openid = await resident(request)
    service = request.app[WEB].service()
    rows = await service.ctx.read(repo.resident_tickets, openid, 50)
    items = [{"number": r.number, "text": r.text, "status": texts.STATUS_NAMES.get(r.status, r.status),
              "at": texts.local_time(r.created_at)} for r in rows]
    return aiohttp_jinja2.render_template("h5_tickets.html", request, {"items": items})


async def ticket(request: web.Request) -> web.Response:
    openid = await resident(request)
    number = request.match_info["number"]
    service = request.app[WEB].service()
    async with service.ctx.sessions() as session:
        found = await repo.resident_ticket(session, openid, number)
        if found is None:  # someone else's, or no such number: the same answer
            raise web.HTTPNotFound(text="没有找到这件事。请从公众号里的链接打开自己的诉求。")
        events, attachments = await ticket_timeline(session, found.id)
    history = [{"at": texts.local_time(e.at), "what": texts.EVENT_NAMES.get(e.action, e.action), "note": e.note}
               for e in events]  # what `查询 编号` shows in the chat, in full
    photos = [a.url for a in attachments if a.kind == "image" and a.url.startswith(("http://", "https://"))]
    return aiohttp_jinja2.render_template("h5_ticket.html", request, {
        "number": found.number, "text": found.text, "category": _category(found.category),
        "status": texts.STATUS_NAMES.get(found.status, found.status), "history": history, "photos": photos})


def add_routes(app: web.Application) -> None:
    app.router.add_get(OAUTH_PATH, oauth_return)
    app.router.add_get("/h5/tickets", my_tickets)
    app.router.add_get("/h5/tickets/{number:\\d+}", ticket)
