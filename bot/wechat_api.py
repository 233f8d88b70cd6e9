"""The service's asyncio client for the WeChat API (wechatpy has no asyncio client).

The access_token comes from the stable_token endpoint, which never invalidates a token other processes still
use; it is cached in the shared state store and refreshed by one process at a time under a lock. A call
answered with a stale-token error drops the cached token and is retried once. Everything else is raised as
`WeChatError` for the caller (the notification sender) to classify: retry later, fall back, or give up.
"""
from __future__ import annotations

import json

import aiohttp

from storage.state import LockTimeout, StateStore

STALE_TOKEN_CODES = {40001, 40014, 42001}
WINDOW_CLOSED_CODES = {45015, 45047}
QUOTA_CODES = {45009}
SYSTEM_BUSY = -1


class WeChatError(Exception):
    """A failed WeChat API call. errcode is None when WeChat's answer never arrived (timeout, HTTP error)."""

    def __init__(self, errcode: int | None, errmsg: str, *, http_status: int | None = None) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.http_status = http_status

    @property
    def stale_token(self) -> bool:
        return self.errcode in STALE_TOKEN_CODES

    @property
    def window_closed(self) -> bool:
        """The customer-service window is closed or its count is spent: use a template message instead."""
        return self.errcode in WINDOW_CLOSED_CODES

    @property
    def quota(self) -> bool:
        return self.errcode in QUOTA_CODES

    @property
    def transient(self) -> bool:
        """Worth retrying later as it is: system busy, timeouts, connection failures, HTTP 5xx."""
        if self.errcode == SYSTEM_BUSY:
            return True
        return self.errcode is None and (self.http_status is None or self.http_status >= 500)

    @property
    def permanent(self) -> bool:
        return not self.transient


class WeChatAPI:
    TOKEN_MARGIN_S = 300  # refresh this long before WeChat's expiry, so no call carries a dying token

    def __init__(self, base_url: str, appid: str, secret: str, state: StateStore,
                 session: aiohttp.ClientSession | None = None, *, timeout_s: float = 5.0,
                 lock_wait_s: float | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._appid, self._secret, self._state = appid, secret, state
        self._session, self._owns_session = session, session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._lock_wait_s = lock_wait_s if lock_wait_s is not None else 2 * timeout_s
        self._token_key = f"wechat:access_token:{appid}"

    async def access_token(self) -> str:
        cached = await self._state.get(self._token_key)
        if cached:
            return cached
        try:
            async with self._state.lock(self._token_key, ttl_s=self._lock_wait_s, wait_s=self._lock_wait_s):
                cached = await self._state.get(self._token_key)  # another process may have refreshed meanwhile
                if cached:
                    return cached
                answer = await self._request("POST", "/cgi-bin/stable_token", json_body={
                    "grant_type": "client_credential", "appid": self._appid, "secret": self._secret,
                    "force_refresh": False})
                token, expires_in = answer["access_token"], int(answer["expires_in"])
                await self._state.set(self._token_key, token, max(expires_in - self.TOKEN_MARGIN_S, expires_in / 2))
                return token
        except LockTimeout:
            raise WeChatError(None, "timed out waiting for another process to refresh the access_token") from None

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service text message; raises WeChatError(window_closed) outside the window."""
        await self._call_with_token("/cgi-bin/message/custom/send", {
            "touser": openid, "msgtype": "text", "text": {"content": text}})

    async def send_template(self, openid: str, template_id: str, data: dict[str, str], url: str | None = None) -> int:
        """A template message (each value at most 20 characters); returns WeChat's msgid."""
        body: dict[str, object] = {"touser": openid, "template_id": template_id,
                                   "data": {key: {"value": value} for key, value in data.items()}}
        if url:
            body["url"] = url
        answer = await self._call_with_token("/cgi-bin/message/template/send", body)
        return int(answer["msgid"])

    async def create_menu(self, menu: dict) -> None:
        await self._call_with_token("/cgi-bin/menu/create", menu)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def _call_with_token(self, path: str, body: dict) -> dict:
        token = await self.access_token()
        try:
            return await self._request("POST", path, json_body=body, access_token=token)
        except WeChatError as e:
            if not e.stale_token:
                raise
            await self._forget_token(token)
            return await self._request("POST", path, json_body=body, access_token=await self.access_token())

    async def _forget_token(self, stale: str) -> None:
        # Only if it is still the cached one: another process may already have stored a fresh token.
        if await self._state.get(self._token_key) == stale:
            await self._state.delete(self._token_key)

    async def _request(self, method: str, path: str, *, json_body: dict,
                       access_token: str | None = None) -> dict:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        params = {"access_token": access_token} if access_token else None
        data = json.dumps(json_body, ensure_ascii=False).encode()  # WeChat wants UTF-8, not \\u escapes
        try:
            async with self._session.request(method, self._base + path, params=params, data=data,
                                             headers={"Content-Type": "application/json"},
                                             timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise WeChatError(None, f"HTTP {resp.status} from {path}", http_status=resp.status)
                answer = json.loads(await resp.read())  # WeChat often labels JSON as text/plain
        except TimeoutError:
            raise WeChatError(None, f"no answer from {path} within {self._timeout.total:g} s") from None
        except aiohttp.ClientError as e:
            raise WeChatError(None, f"{path}: {type(e).__name__}: {e}") from None
        except ValueError:  # e.g. a proxy's error page: treated like a failed delivery, retried later
            raise WeChatError(None, f"{path} answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise WeChatError(None, f"{path} answered something that is not a JSON object")
        if answer.get("errcode", 0) != 0:
            raise WeChatError(int(answer["errcode"]), str(answer.get("errmsg", "")))
        return answer
