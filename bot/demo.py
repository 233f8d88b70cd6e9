"""`linli demo`: the service on the embedded default, the WeChat stand-in and a terminal chat, in one process."""
from __future__ import annotations

import logging
from pathlib import Path

import aiohttp

from aiohttp import web

from bot.app import SERVICE, create_app
from bot.config import Settings
from bot.simulator import run_chat
from bot.standin import STANDIN_STATE, create_standin, start_standin
from handlers import wishes
from handlers.context import utcnow
from storage.community import seed_demo

DEMO_TOKEN, DEMO_APPID, DEMO_SECRET = "demotoken", "wxdemo0000000000", "demo-secret"
DEMO_AES_KEY = "TGlubGkgZGVtbyBBRVMga2V5LCBub3Qgc2VjcmV0ISE"  # EncodingAESKey of 43 characters, as WeChat generates them

# display name -> openid; staff roles are bound by the demo seed, as an admin's invite codes would
IDENTITIES = {
    "张阿姨": "demo-resident-zhang",
    "李大爷": "demo-resident-li",
    "王网格员": "demo-worker-wang",
    "陈主任": "demo-committee-chen",
    "刘党员": "demo-party-liu",
    "赵党员": wishes.DEMO_ZHAO,
}


DEMO_TEMPLATE_ID = "demo-progress"  # the stand-in accepts any template id


def demo_settings(db_file: str, api_base: str) -> Settings:
    return Settings(wechat_token=DEMO_TOKEN, wechat_appid=DEMO_APPID, wechat_secret=DEMO_SECRET,
                    wechat_aes_key=DEMO_AES_KEY, database_url=f"sqlite:///{db_file}", wechat_api_base=api_base,
                    wechat_template_id=DEMO_TEMPLATE_ID)


def remove_database(db_file: str) -> list[str]:
    """`linli demo --fresh`: delete the demo's SQLite file with its WAL, shared-memory and lock files (a WAL
    left behind would bring old rows back into a new file); returns the names removed."""
    removed = []
    for suffix in ("", "-wal", "-shm", ".migrate-lock"):
        path = Path(db_file + suffix)
        if path.exists():
            path.unlink()
            removed.append(path.name)
    return removed


async def follow_the_account(standin_url: str) -> None:
    """Everyone in the demo follows the account, so notices can reach them as template messages."""
    async with aiohttp.ClientSession() as http:
        for openid in IDENTITIES.values():
            async with http.post(f"{standin_url}/_standin/push",
                                 json={"openid": openid, "type": "event", "event": "subscribe"}) as resp:
                resp.raise_for_status()


async def open_web_face(app: web.Application, public_url: str, standin_url: str) -> str:
    """The console and the H5 pages at the demo's address, WeChat's web OAuth at the stand-in; returns a
    login link for 陈主任 (resident pages: /h5/tickets, the stand-in asks who opens them)."""
    import dataclasses

    from bot.web import WEB
    from handlers.console_login import make_login_link

    web_app = app[WEB]
    web_app.settings = dataclasses.replace(web_app.settings, public_url=public_url, oauth_base=standin_url)
    service = app[SERVICE]
    return await make_login_link(service.ctx.sessions, IDENTITIES["陈主任"], service.ctx.now(), public_url)


async def run_demo(*, safe: bool, port: int, db_file: str, input_lines=None, out=print) -> int:
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    standin_app = create_standin(appid=DEMO_APPID, secret=DEMO_SECRET, token=DEMO_TOKEN, aes_key=DEMO_AES_KEY,
                                 webhook_url="")
    standin = await start_standin(standin_app)
    app = create_app(demo_settings(db_file, standin.url))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    service = app[SERVICE]
    await seed_demo(service.engine, IDENTITIES)
    # Two Party members registered, and wishes in every status (on the service's ids: one number space).
    await wishes.seed_demo_wishes(service.engine, IDENTITIES, utcnow(), ids=service.ctx.ticket_ids)
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    webhook = f"http://127.0.0.1:{runner.addresses[0][1]}/wechat"
    standin_app[STANDIN_STATE].webhook_url = webhook
    await follow_the_account(standin.url)
    out(f"邻里演示：服务 {webhook}，微信替身 {standin.url}，数据在 {db_file}")
    out("后台：" + await open_web_face(app, webhook.removesuffix("/wechat"), standin.url))
    out("身份：" + "、".join(IDENTITIES))
    try:
        await run_chat(standin.url, IDENTITIES, start_as="张阿姨", safe=safe, input_lines=input_lines, out=out)
    finally:
        await runner.cleanup()
        await standin.close()
    return 0
