"""A local stand-in of the WeChat platform, for tests and `linli demo`.

It plays both sides the service meets in production:
- the WeChat API under `/cgi-bin/...` (token, stable_token, message/custom/send, message/template/send,
  menu/create, menu/get) with the real JSON shapes and error codes, the customer-service window (a message
  opens 48 h / 5 sends, a click, subscribe or scan 1 min / 3), and a daily quota per API (45009);
- WeChat's web OAuth for pages opened inside WeChat (`/connect/oauth2/authorize`, `/sns/oauth2/access_token`,
  snsapi_base): codes for one use within 5 minutes, errors 40029 and 40163; the stand-in is told who opens
  the page with `openid=` (else it lists the followers it knows to choose from);
- the resident's phone (`POST /_standin/push`): builds the XML push WeChat would send, signs it (and encrypts
  it in safe mode), POSTs it to the service's webhook and reads the passive reply.

Control and inspection, for tests and the simulator:
- `POST /_standin/faults` {"mode": "http500"|"errcode"|"timeout", "errcode", "seconds", "count", "path"?}
  fails the next `count` API calls (under `path` only, if given); a timeout waits `seconds`, then drops the
  call without carrying it out. Faults queue up; `DELETE /_standin/faults` clears them.
- `GET /_standin/sent?openid=&after=<seq>`: what was sent to residents, in order.
- `GET /_standin/calls`: API calls per path. `POST /_standin/clock` {"advance": s}: move the clock forward.
State lives in memory; the clock is injectable, and `app[STANDIN_STATE]` exposes the state in-process.

Deliberate simplifications: a token from /cgi-bin/token is invalidated at once by the next fetch (the real
platform keeps the old one usable for 5 more minutes, so the stand-in is the stricter judge); an openid counts
as a follower once it has pushed anything, until it sends an unsubscribe event; a push the webhook does not
answer in time is not re-sent by itself (send it again with its msg_id, or with repeat_last).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import asdict, dataclass, field

import aiohttp
import xmltodict
from aiohttp import web

from bot.signing import aes_cipher, sign_push, signature, signature_matches, xml_message

TOKEN_LIFETIME_S = 7200
STABLE_EARLY_REFRESH_S = 300   # normal-mode stable_token hands out a new token in the last 5 minutes
FORCE_REFRESH_SPACING_S = 30   # force_refresh calls closer together than this do not rotate
MESSAGE_WINDOW = (48 * 3600, 5)  # after a resident's message: 5 customer-service messages within 48 h
EVENT_WINDOW = (60, 3)           # after a menu click, subscribe or scan: 3 within 1 minute
WINDOW_EVENTS = {"subscribe", "CLICK", "VIEW", "SCAN"}
TEMPLATE_VALUE_MAX = 20
MENU_MAX_BUTTONS, MENU_MAX_SUB_BUTTONS = 3, 5
MENU_NAME_MAX_BYTES, MENU_SUB_NAME_MAX_BYTES = 16, 60
PUSH_TIMEOUT_S = 5.0             # WeChat gives the webhook 5 s to answer
REMEMBERED_PUSHES = 10_000
OAUTH_CODE_S = 300               # a web-OAuth code is good for 5 minutes, once
OAUTH_SCOPES = ("snsapi_base", "snsapi_userinfo")

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40023: "invalid sub button size",
    40025: "invalid sub button name size",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    46003: "menu no exist",
    47001: "data format error",
    47003: "argument invalid!",
    40163: "code been used",
}


@dataclass
class Token:
    value: str
    expires_at: float
    revoked: bool = False


@dataclass
class Grant:
    """Customer-service messages one interaction allows."""
    expires_at: float
    remaining: int


@dataclass
class Follower:
    subscribed: bool = True
    grants: list[Grant] = field(default_factory=list)


@dataclass
class Fault:
    mode: str                 # "http500" | "errcode" | "timeout"
    remaining: int
    errcode: int = -1
    seconds: float = 0.0
    path: str | None = None   # only API paths starting with this; None: every API call


@dataclass
class SentMessage:
    seq: int
    openid: str
    kind: str                 # "custom" | "template"
    text: str
    time: float
    template_id: str | None = None
    url: str | None = None


@dataclass
class OAuthCode:
    """A web-OAuth code: for one openid of one appid, once, within OAUTH_CODE_S."""
    openid: str
    appid: str
    scope: str
    expires_at: float
    used: bool = False


class ApiError(Exception):
    def __init__(self, errcode: int, detail: str = "") -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.detail = detail


class StandinState:
    """Everything the stand-in remembers; reachable as app[STANDIN_STATE] for in-process tests."""

    def __init__(self, *, appid: str, secret: str, token: str, webhook_url: str, aes_key: str | None,
                 original_id: str, clock: Callable[[], float], daily_quota: int,
                 template_ids: Collection[str] | None, push_timeout_s: float) -> None:
        self.appid, self.secret, self.token = appid, secret, token
        self.webhook_url, self.aes_key, self.original_id = webhook_url, aes_key, original_id
        self.daily_quota = daily_quota
        self.template_ids = template_ids
        self.push_timeout_s = push_timeout_s
        self._clock = clock
        self.clock_offset = 0.0
        self.tokens: dict[str, Token] = {}
        self.plain_token: Token | None = None
        self.stable_token: Token | None = None
        self.last_forced_refresh = float("-inf")
        self.calls: Counter[str] = Counter()
        self.calls_per_day: Counter[tuple[int, str]] = Counter()
        self.faults: list[Fault] = []
        self.followers: dict[str, Follower] = {}
        self.sent: list[SentMessage] = []
        self.menu: dict | None = None
        self.pushes_by_msg_id: dict[int, str] = {}
        self.last_push: dict[str, str] = {}
        self._msg_ids = itertools.count(6_000_000_000_000_000_000 + secrets.randbelow(10**15))
        self._template_msg_ids = itertools.count(2_000_000_000 + secrets.randbelow(10**8))
        self.session: aiohttp.ClientSession | None = None
        self.oauth_codes: dict[str, OAuthCode] = {}

    def now(self) -> float:
        return self._clock() + self.clock_offset

    # -- tokens ------------------------------------------------------------------------------------------
    def check_credentials(self, appid: str, secret: str) -> None:
        if appid != self.appid:
            raise ApiError(40013)
        if secret != self.secret:
            raise ApiError(40125)

    def _issue_token(self) -> Token:
        issued = Token(secrets.token_urlsafe(96), self.now() + TOKEN_LIFETIME_S)
        self.tokens[issued.value] = issued
        return issued

    def fetch_plain_token(self) -> Token:
        """/cgi-bin/token: every fetch issues a new token and invalidates the previous one."""
        if self.plain_token is not None:
            self.plain_token.revoked = True
        self.plain_token = self._issue_token()
        return self.plain_token

    def fetch_stable_token(self, force_refresh: bool) -> Token:
        """/cgi-bin/stable_token: isolated from /cgi-bin/token; only a forced refresh invalidates."""
        now, current = self.now(), self.stable_token
        if force_refresh and current is not None and now - self.last_forced_refresh < FORCE_REFRESH_SPACING_S:
            return current
        if force_refresh:
            self.last_forced_refresh = now
            if current is not None:
                current.revoked = True
        elif current is not None and current.expires_at - now > STABLE_EARLY_REFRESH_S:
            return current
        self.stable_token = self._issue_token()
        return self.stable_token

    def check_access_token(self, value: str | None) -> None:
        if not value:
            raise ApiError(41001)
        known = self.tokens.get(value)
        if known is None:
            raise ApiError(40014)
        if known.revoked:
            raise ApiError(40001)
        if known.expires_at <= self.now():
            raise ApiError(42001)

    # -- quota and faults ----------------------------------------------------------------------------------
    def count_call(self, path: str) -> None:
        """Count one call of an API; 45009 once its daily quota is spent (days end at Beijing midnight)."""
        self.calls[path] += 1
        day = int((self.now() + 8 * 3600) // 86400)
        if self.calls_per_day[day, path] >= self.daily_quota:
            raise ApiError(45009)
        self.calls_per_day[day, path] += 1

    def take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.path is None or path.startswith(fault.path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # -- residents and what is sent to them -------------------------------------------------------------------
    def note_interaction(self, openid: str, msg_type: str, event: str | None) -> None:
        """A resident's push: a message opens 48 h / 5 sends, a click, subscribe or scan 1 min / 3 sends."""
        follower = self.followers.setdefault(openid, Follower())
        if event == "unsubscribe":
            self.followers[openid] = Follower(subscribed=False)
            return
        follower.subscribed = True
        window = MESSAGE_WINDOW if msg_type != "event" else EVENT_WINDOW if event in WINDOW_EVENTS else None
        if window is not None:
            follower.grants.append(Grant(self.now() + window[0], window[1]))

    def send_custom(self, openid: str, text: str) -> None:
        follower = self.followers.get(openid)
        if follower is None or not follower.subscribed:
            raise ApiError(45015)
        now = self.now()
        follower.grants = [g for g in follower.grants if g.expires_at > now]
        usable = [g for g in follower.grants if g.remaining > 0]
        if not follower.grants:
            raise ApiError(45015)
        if not usable:
            raise ApiError(45047)
        min(usable, key=lambda g: g.expires_at).remaining -= 1  # spend the grant that would lapse first
        self._record(openid, "custom", text)

    def send_template(self, openid: str, template_id: str, data: dict, url: str | None) -> int:
        if not template_id or (self.template_ids is not None and template_id not in self.template_ids):
            raise ApiError(40037)
        follower = self.followers.get(openid)
        if follower is None or not follower.subscribed:
            raise ApiError(43004)
        values = []
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str):
                raise ApiError(47001, f"data.{key}.value missing")
            if len(value) > TEMPLATE_VALUE_MAX:
                raise ApiError(47003, f"data.{key}.value exceeds {TEMPLATE_VALUE_MAX} characters")
            values.append(value)
        self._record(openid, "template", "\n".join(values), template_id=template_id, url=url)
        return next(self._template_msg_ids)

    def _record(self, openid: str, kind: str, text: str, **extra: str | None) -> None:
        self.sent.append(SentMessage(len(self.sent) + 1, openid, kind, text, self.now(), **extra))

    def sent_to(self, openid: str | None = None, after: int = 0) -> list[SentMessage]:
        return [m for m in self.sent[after:] if openid is None or m.openid == openid]

    def next_msg_id(self) -> int:
        return next(self._msg_ids)

    def remember_push(self, openid: str, msg_id: int | None, xml: str) -> None:
        self.last_push[openid] = xml
        if msg_id is not None:
            self.pushes_by_msg_id[msg_id] = xml
            if len(self.pushes_by_msg_id) > REMEMBERED_PUSHES:
                del self.pushes_by_msg_id[next(iter(self.pushes_by_msg_id))]


STANDIN_STATE = web.AppKey("standin_state", StandinState)


def _error(errcode: int, detail: str = "") -> web.Response:
    message = ERRMSG.get(errcode, "error") + (f" {detail}" if detail else "")
    return web.json_response({"errcode": errcode, "errmsg": f"{message} rid: {secrets.token_hex(6)}"})


def _ok(**fields: object) -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok", **fields})


async def _json_body(request: web.Request) -> dict:
    raw = await request.read()
    if not raw:
        raise ApiError(44002)
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(47001) from None
    if not isinstance(body, dict):
        raise ApiError(47001)
    return body


@web.middleware
async def _api_gate(request: web.Request, handler: Callable) -> web.StreamResponse:
    """For /cgi-bin calls: injected faults first, then the daily quota; WeChat errors become JSON."""
    if not request.path.startswith("/cgi-bin/"):
        return await handler(request)
    state = request.app[STANDIN_STATE]
    fault = state.take_fault(request.path)
    try:
        if fault is not None and fault.mode == "timeout":
            await asyncio.sleep(fault.seconds)  # the call is then dropped, not carried out
            return web.Response(status=504, text="gateway timeout")
        if fault is not None and fault.mode == "http500":
            return web.Response(status=500, text="internal server error")
        if fault is not None:
            raise ApiError(fault.errcode)
        state.count_call(request.path)
        return await handler(request)
    except ApiError as e:
        return _error(e.errcode, e.detail)


# -- the WeChat API ----------------------------------------------------------------------------------------
async def _token(request: web.Request) -> web.Response:
    state, q = request.app[STANDIN_STATE], request.query
    if q.get("grant_type") != "client_credential":
        raise ApiError(40002)
    state.check_credentials(q.get("appid", ""), q.get("secret", ""))
    issued = state.fetch_plain_token()
    return web.json_response({"access_token": issued.value, "expires_in": TOKEN_LIFETIME_S})


async def _stable_token(request: web.Request) -> web.Response:
    state, body = request.app[STANDIN_STATE], await _json_body(request)
    if body.get("grant_type") != "client_credential":
        raise ApiError(40002)
    state.check_credentials(str(body.get("appid", "")), str(body.get("secret", "")))
    issued = state.fetch_stable_token(bool(body.get("force_refresh", False)))
    return web.json_response({"access_token": issued.value, "expires_in": round(issued.expires_at - state.now())})


async def _custom_send(request: web.Request) -> web.Response:
    state = request.app[STANDIN_STATE]
    state.check_access_token(request.query.get("access_token"))
    body = await _json_body(request)
    if body.get("msgtype") != "text":
        raise ApiError(40008)
    content = (body.get("text") or {}).get("content")
    if not isinstance(content, str) or not content:
        raise ApiError(44004)
    state.send_custom(str(body.get("touser", "")), content)
    return _ok()


async def _template_send(request: web.Request) -> web.Response:
    state = request.app[STANDIN_STATE]
    state.check_access_token(request.query.get("access_token"))
    body = await _json_body(request)
    data = body.get("data")
    if not isinstance(data, dict):
        raise ApiError(47001, "data missing")
    msgid = state.send_template(str(body.get("touser", "")), str(body.get("template_id", "")), data, body.get("url"))
    return _ok(msgid=msgid)


def _check_menu(menu: dict) -> None:
    buttons = menu.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MENU_MAX_BUTTONS:
        raise ApiError(40016)
    for button in buttons:
        if not _name_fits(button, MENU_NAME_MAX_BYTES):
            raise ApiError(40018)
        subs = button.get("sub_button")
        if subs is None:
            _check_menu_action(button)
            continue
        if not isinstance(subs, list) or not 1 <= len(subs) <= MENU_MAX_SUB_BUTTONS:
            raise ApiError(40023)
        for sub in subs:
            if not _name_fits(sub, MENU_SUB_NAME_MAX_BYTES):
                raise ApiError(40025)
            _check_menu_action(sub)


def _name_fits(button: object, max_bytes: int) -> bool:
    return isinstance(button, dict) and 1 <= len(str(button.get("name", "")).encode()) <= max_bytes


def _check_menu_action(button: dict) -> None:
    needs = {"click": "key", "view": "url", "scancode_push": "key", "location_select": "key"}
    required = needs.get(button.get("type", ""))
    if required is None or not button.get(required):
        raise ApiError(40017)


async def _menu_create(request: web.Request) -> web.Response:
    state = request.app[STANDIN_STATE]
    state.check_access_token(request.query.get("access_token"))
    menu = await _json_body(request)
    _check_menu(menu)
    state.menu = menu
    return _ok()


async def _menu_get(request: web.Request) -> web.Response:
    state = request.app[STANDIN_STATE]
    state.check_access_token(request.query.get("access_token"))
    if state.menu is None:
        raise ApiError(46003)
    return web.json_response({"menu": state.menu})


# -- web OAuth (网页授权): the resident's browser inside WeChat -------------------------------------------------
def _oauth_page(body: str, status: int = 200) -> web.Response:
    return web.Response(text=f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><meta name="viewport" '
                             f'content="width=device-width, initial-scale=1"><title>微信授权</title><body>{body}</body></html>',
                        status=status, content_type="text/html")


async def _oauth_authorize(request: web.Request) -> web.Response:
    """connect/oauth2/authorize: WeChat knows who opens the page, and (snsapi_base: silently) sends the browser
    back to redirect_uri with a code. The stand-in learns who it is from `openid=` (remembered in a cookie),
    else it asks: a list of the followers it knows."""
    import html
    from urllib.parse import urlencode

    state, q = request.app[STANDIN_STATE], request.query
    if q.get("appid") != state.appid or q.get("response_type") != "code" or q.get("scope") not in OAUTH_SCOPES:
        return _oauth_page("<p>参数错误（appid、response_type 或 scope）</p>", 400)
    redirect = q.get("redirect_uri", "")
    if not redirect.startswith(("http://", "https://")):
        return _oauth_page("<p>redirect_uri 参数错误</p>", 400)
    openid = q.get("openid") or request.cookies.get("standin_openid")
    if not openid:
        links = "".join(
            f'<li><a href="?{html.escape(urlencode({**q, "openid": o}))}">{html.escape(o)}</a></li>'
            for o in state.followers) or "<li>还没有关注者：先用公众号发一条消息</li>"
        return _oauth_page(f"<p>微信替身：以谁的身份打开？</p><ul>{links}</ul>")
    code = secrets.token_urlsafe(24)
    state.oauth_codes[code] = OAuthCode(openid, state.appid, q["scope"], state.now() + OAUTH_CODE_S)
    back = redirect + ("&" if "?" in redirect else "?") + urlencode({"code": code, "state": q.get("state", "")})
    response = web.HTTPFound(back)
    response.set_cookie("standin_openid", openid, httponly=True, samesite="Lax")
    raise response


async def _oauth_access_token(request: web.Request) -> web.Response:
    """sns/oauth2/access_token: trade a code for the openid (and a web access token, unused by Linli)."""
    state, q = request.app[STANDIN_STATE], request.query
    try:
        state.check_credentials(q.get("appid", ""), q.get("secret", ""))
        if q.get("grant_type") != "authorization_code":
            raise ApiError(40002)
        grant = state.oauth_codes.get(q.get("code", ""))
        if grant is None or grant.appid != state.appid or grant.expires_at <= state.now():
            raise ApiError(40029)
        if grant.used:
            raise ApiError(40163)
    except ApiError as e:
        return _error(e.errcode, e.detail)
    grant.used = True
    return web.json_response({"access_token": secrets.token_urlsafe(48), "expires_in": TOKEN_LIFETIME_S,
                              "refresh_token": secrets.token_urlsafe(48), "openid": grant.openid,
                              "scope": grant.scope})


# -- control and inspection --------------------------------------------------------------------------------
async def _control_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="a JSON object is expected") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="a JSON object is expected")
    return body


async def _add_fault(request: web.Request) -> web.Response:
    body = await _control_body(request)
    mode = body.get("mode")
    if mode not in ("http500", "errcode", "timeout"):
        raise web.HTTPBadRequest(text="mode must be http500, errcode or timeout")
    request.app[STANDIN_STATE].faults.append(Fault(
        mode=mode, remaining=max(1, int(body.get("count", 1))), errcode=int(body.get("errcode", -1)),
        seconds=float(body.get("seconds", 0)), path=body.get("path")))
    return web.json_response({"faults": len(request.app[STANDIN_STATE].faults)})


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[STANDIN_STATE].faults.clear()
    return web.json_response({"faults": 0})


async def _sent(request: web.Request) -> web.Response:
    state = request.app[STANDIN_STATE]
    sent = state.sent_to(request.query.get("openid") or None, int(request.query.get("after", 0)))
    return web.json_response([asdict(m) for m in sent])


async def _calls(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[STANDIN_STATE].calls))


async def _advance_clock(request: web.Request) -> web.Response:
    state = request.app[STANDIN_STATE]
    state.clock_offset += float((await _control_body(request)).get("advance", 0))
    return web.json_response({"now": state.now()})


# -- the resident's side: pushes to the webhook ----------------------------------------------------------------
PUSH_TYPES = {"text", "image", "voice", "location", "event"}


def build_push(state: StandinState, spec: dict, msg_id: int | None) -> str:
    """The XML WeChat pushes for one resident action, fields in WeChat's order."""
    kind = spec["type"]
    fields: dict[str, str | int | float] = {
        "ToUserName": state.original_id, "FromUserName": spec["openid"],
        "CreateTime": int(state.now()), "MsgType": kind}
    if kind == "text":
        fields["Content"] = str(spec.get("content", ""))
    elif kind == "image":
        fields["PicUrl"] = str(spec.get("pic_url") or "http://mmbiz.qpic.cn/standin/demo.jpg")
        fields["MediaId"] = str(spec.get("media_id") or secrets.token_urlsafe(24))
    elif kind == "voice":
        fields["MediaId"] = str(spec.get("media_id") or secrets.token_urlsafe(24))
        fields["Format"] = "amr"
        if spec.get("recognition") is not None:
            fields["Recognition"] = str(spec["recognition"])
    elif kind == "location":
        fields |= {"Location_X": float(spec["lat"]), "Location_Y": float(spec["lon"]), "Scale": 15,
                   "Label": str(spec.get("label", ""))}
    else:
        fields["Event"] = str(spec["event"])
        if spec.get("event_key") is not None or spec["event"] in ("subscribe", "CLICK", "VIEW", "SCAN"):
            fields["EventKey"] = str(spec.get("event_key") or "")
    if msg_id is not None:
        fields["MsgId"] = msg_id
    return xml_message(fields)


def read_reply(state: StandinState, openid: str, text: str, safe: bool) -> tuple[str | None, str | None]:
    """(the reply's Content, what is wrong with the reply) as WeChat would judge a passive reply."""
    if text.strip() in ("", "success"):
        return None, None
    try:
        doc = xmltodict.parse(text)["xml"]
        if "Encrypt" in doc:
            if not safe:
                return None, "encrypted reply to a plain push"
            expected = signature(state.token, str(doc.get("TimeStamp", "")), str(doc.get("Nonce", "")), doc["Encrypt"])
            if not signature_matches(expected, str(doc.get("MsgSignature", ""))):
                return None, "reply MsgSignature does not match"
            doc = xmltodict.parse(aes_cipher(state.aes_key).decrypt(doc["Encrypt"], state.appid))["xml"]
        elif safe:
            return None, "plain reply to a safe-mode push"
    except Exception as e:  # anything unreadable is what WeChat shows as "service unavailable"
        return None, f"unreadable reply: {type(e).__name__}"
    if doc.get("ToUserName") != openid or doc.get("FromUserName") != state.original_id:
        return None, "reply is not addressed from the account to the resident"
    if doc.get("MsgType") != "text":
        return f"[{doc.get('MsgType')}]", None
    return doc.get("Content") or "", None


async def _push(request: web.Request) -> web.Response:
    state = request.app[STANDIN_STATE]
    spec = await _control_body(request)
    openid, kind, safe = spec.get("openid"), spec.get("type"), bool(spec.get("safe", False))
    if safe and not state.aes_key:
        raise web.HTTPBadRequest(text="safe mode needs the stand-in's aes_key (EncodingAESKey)")
    if not openid:
        raise web.HTTPBadRequest(text="openid is required")
    if spec.get("repeat_last"):
        xml = state.last_push.get(openid)  # a retry: the same body, and not a new interaction
        if xml is None:
            raise web.HTTPBadRequest(text="nothing pushed for this openid yet")
    else:
        if kind not in PUSH_TYPES:
            raise web.HTTPBadRequest(text=f"type must be one of {sorted(PUSH_TYPES)}")
        msg_id = None if kind == "event" else int(spec.get("msg_id") or state.next_msg_id())
        xml = state.pushes_by_msg_id.get(msg_id) if msg_id is not None else None
        if xml is None:
            try:
                xml = build_push(state, spec, msg_id)
            except (KeyError, TypeError, ValueError) as e:
                raise web.HTTPBadRequest(text=f"bad push fields: {e}") from None
            state.remember_push(openid, msg_id, xml)
            state.note_interaction(openid, kind, spec.get("event"))
    query, body = sign_push(state.token, xml, appid=state.appid, aes_key=state.aes_key if safe else None,
                            timestamp=int(state.now()), openid=openid)
    sent_msg_id = xmltodict.parse(xml)["xml"].get("MsgId")
    result: dict[str, object] = {"status": None, "body": None, "reply": None, "error": None,
                                 "msg_id": int(sent_msg_id) if sent_msg_id else None}
    try:
        async with state.session.post(state.webhook_url, params=query, data=body.encode(),
                                      headers={"Content-Type": "text/xml"},
                                      timeout=aiohttp.ClientTimeout(total=state.push_timeout_s)) as resp:
            result["status"], result["body"] = resp.status, await resp.text()
    except TimeoutError:
        result["error"] = f"no answer within {state.push_timeout_s:g} s"
    except aiohttp.ClientError as e:
        result["error"] = f"webhook unreachable: {e}"
    if result["status"] == 200:
        result["reply"], result["error"] = read_reply(state, openid, result["body"], safe)
    elif result["status"] is not None:
        result["error"] = f"HTTP {result['status']}"
    return web.json_response(result)


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    app[STANDIN_STATE].session = aiohttp.ClientSession()
    yield
    await app[STANDIN_STATE].session.close()


def create_standin(*, appid: str, secret: str, token: str, webhook_url: str, aes_key: str | None = None,
                   original_id: str = "gh_demo", clock: Callable[[], float] = time.time,
                   daily_quota: int = 100_000, template_ids: Collection[str] | None = None,
                   push_timeout_s: float = PUSH_TIMEOUT_S) -> web.Application:
    """The stand-in as an aiohttp app. `template_ids`: the account's templates (None accepts any id).
    `webhook_url` may be changed later through app[STANDIN_STATE].webhook_url."""
    app = web.Application(middlewares=[_api_gate])
    app[STANDIN_STATE] = StandinState(
        appid=appid, secret=secret, token=token, webhook_url=webhook_url, aes_key=aes_key,
        original_id=original_id, clock=clock, daily_quota=daily_quota, template_ids=template_ids,
        push_timeout_s=push_timeout_s)
    app.cleanup_ctx.append(_client_session)
    app.router.add_get("/cgi-bin/token", _token)
    app.router.add_post("/cgi-bin/stable_token", _stable_token)
    app.router.add_post("/cgi-bin/message/custom/send", _custom_send)
    app.router.add_post("/cgi-bin/message/template/send", _template_send)
    app.router.add_post("/cgi-bin/menu/create", _menu_create)
    app.router.add_get("/cgi-bin/menu/get", _menu_get)
    app.router.add_get("/connect/oauth2/authorize", _oauth_authorize)
    app.router.add_get("/sns/oauth2/access_token", _oauth_access_token)
    app.router.add_post("/_standin/push", _push)
    app.router.add_post("/_standin/faults", _add_fault)
    app.router.add_delete("/_standin/faults", _clear_faults)
    app.router.add_get("/_standin/sent", _sent)
    app.router.add_get("/_standin/calls", _calls)
    app.router.add_post("/_standin/clock", _advance_clock)
    return app


@dataclass
class RunningStandin:
    runner: web.AppRunner
    url: str          # the base URL to use as LINLI_WECHAT_API_BASE and for the simulator

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_standin(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> RunningStandin:
    """Serve the stand-in inside the running event loop (port 0: any free port), e.g. next to the service."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return RunningStandin(runner, f"http://{host}:{bound_port}")


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in alone: python -m bot.standin --port 8081 --webhook http://127.0.0.1:8080/wechat"""
    parser = argparse.ArgumentParser(description="Local stand-in of the WeChat platform")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--webhook", default="http://127.0.0.1:8080/wechat", help="the service's webhook URL")
    parser.add_argument("--daily-quota", type=int, default=100_000)
    args = parser.parse_args(argv)
    app = create_standin(
        appid=os.environ.get("LINLI_WECHAT_APPID", "wxdemo0000000000"),
        secret=os.environ.get("LINLI_WECHAT_SECRET", "demo-secret"),
        token=os.environ.get("LINLI_WECHAT_TOKEN", "demotoken"),
        aes_key=os.environ.get("LINLI_WECHAT_AES_KEY") or None,
        webhook_url=args.webhook, daily_quota=args.daily_quota)
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
