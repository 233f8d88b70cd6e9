"""Residents' pages inside WeChat: identified by web OAuth (snsapi_base) through the stand-in; a resident sees
only their own tickets. The stand-in's OAuth behaves as WeChat's: codes for one use, errors as WeChat's."""
from __future__ import annotations

import dataclasses
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICE, create_app
from bot.standin import create_standin, start_standin
from bot.web import WEB
from bot.web.h5 import ticket_url
from tests.conftest import APPID, TOKEN
from tests.web_support import HOSTILE, PEOPLE, make_ticket, seed_people, set_public_url

SECRET = "h5-secret"


@pytest.fixture
async def standin():
    app = create_standin(appid=APPID, secret=SECRET, token=TOKEN, webhook_url="")
    running = await start_standin(app)
    yield running
    await running.close()


@pytest.fixture
async def h5(settings, clock, standin):
    settings = dataclasses.replace(settings, wechat_secret=SECRET, wechat_api_base=standin.url)
    app = create_app(settings, clock=clock, migrate=True, state_prefix=f"linli-test-{uuid.uuid4().hex}:",
                     background=False)
    async with TestClient(TestServer(app)) as c:
        set_public_url(c)
        c.app[WEB].settings = dataclasses.replace(c.app[WEB].settings, oauth_base=standin.url)
        c.grids = await seed_people(c.app[SERVICE])
        yield c


async def open_as(client, path: str, openid: str):
    """Open an H5 page as this resident: through WeChat's OAuth redirect, as the browser inside WeChat does."""
    first = await client.get(path, allow_redirects=False)
    if first.status != 302:
        return first
    authorize = first.headers["Location"]
    assert authorize.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(authorize).query)
    assert query["scope"] == ["snsapi_base"] and query["appid"] == [APPID]
    back = await client.session.get(authorize.split("#")[0] + "&openid=" + openid, allow_redirects=False)
    assert back.status == 302
    return await client.session.get(back.headers["Location"])  # the same cookie jar, an absolute URL


async def test_a_resident_sees_their_own_ticket_and_no_one_elses(h5):
    service = h5.app[SERVICE]
    mine = await make_ticket(service, grid_id=h5.grids["1"], text=HOSTILE, openid=PEOPLE["张阿姨"])
    theirs = await make_ticket(service, grid_id=h5.grids["1"], text="李大爷的事", openid=PEOPLE["李大爷"])
    page = await open_as(h5, f"/h5/tickets/{mine}", PEOPLE["张阿姨"])
    text = await page.text()
    assert page.status == 200 and f"编号：{mine}" in text and "提交" in text
    assert "<script>alert" not in text and "&lt;script&gt;" in text
    other = await h5.get(f"/h5/tickets/{theirs}")  # the same browser, someone else's number
    assert other.status == 404 and "李大爷的事" not in await other.text()
    listing = await (await h5.get("/h5/tickets")).text()
    assert mine in listing and theirs not in listing
    assert ticket_url("https://x.example", mine) == f"https://x.example/h5/tickets/{mine}"


async def test_oauth_state_and_code_are_checked(h5, standin):
    resp = await h5.get("/h5/oauth?code=abc&state=forged", allow_redirects=False)
    assert resp.status == 403
    first = await h5.get("/h5/tickets", allow_redirects=False)
    state = parse_qs(urlsplit(first.headers["Location"]).query)["state"][0]
    resp = await h5.get(f"/h5/oauth?code=not-a-code&state={state}", allow_redirects=False)
    assert resp.status == 403  # WeChat said 40029: nobody is signed in


async def test_standin_web_oauth_is_strict_like_wechat(standin):
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # 127.0.0.1 cookies
        base = f"{standin.url}/connect/oauth2/authorize"
        query = {"appid": APPID, "redirect_uri": "http://127.0.0.1:1/back?x=1", "response_type": "code",
                 "scope": "snsapi_base", "state": "s1"}
        chooser = await http.get(base, params=query, allow_redirects=False)
        assert chooser.status == 200 and "以谁的身份" in await chooser.text()
        wrong = await http.get(base, params={**query, "appid": "wxother"}, allow_redirects=False)
        assert wrong.status == 400
        resp = await http.get(base, params={**query, "openid": "o-1"}, allow_redirects=False)
        back = urlsplit(resp.headers["Location"])
        params = parse_qs(back.query)
        assert back.path == "/back" and params["state"] == ["s1"] and params["x"] == ["1"]
        token = f"{standin.url}/sns/oauth2/access_token"
        ask = {"appid": APPID, "secret": SECRET, "code": params["code"][0], "grant_type": "authorization_code"}
        answer = await (await http.get(token, params={**ask, "secret": "bad"})).json()
        assert answer["errcode"] == 40125
        answer = await (await http.get(token, params=ask)).json()
        assert answer["openid"] == "o-1" and answer["scope"] == "snsapi_base" and answer["expires_in"] == 7200
        assert (await (await http.get(token, params=ask)).json())["errcode"] == 40163  # used
        assert (await (await http.get(token, params={**ask, "code": "nope"})).json())["errcode"] == 40029
        again = await http.get(base, params=query, allow_redirects=False)  # the cookie remembers who it was
        assert again.status == 302
