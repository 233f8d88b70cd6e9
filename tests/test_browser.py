"""The console in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser is
downloaded): log in by link, see the charts drawn, filter tickets, accept one, download the month's .xlsx,
and a phone-sized page. With LINLI_SCREENSHOTS=DIR the screenshots are also saved there (docs/screenshots)."""
from __future__ import annotations

import io
import os
import re
import shutil
import uuid
from pathlib import Path

import openpyxl
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICE, create_app
from handlers.console_login import make_login_link
from bot.web.seed import seed_tickets
from tests.conftest import WeChat, unavailable
from tests.web_support import HOSTILE, PEOPLE, seed_people

CHROMIUM = "/usr/bin/chromium"
# The machine's Chromium must not reach for the (closed) network: no QUIC, no component or sync traffic.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def chromium() -> str:
    if not shutil.which(CHROMIUM):
        unavailable("Chromium (apt-get install chromium)", f"{CHROMIUM} is missing")
    try:
        import playwright  # noqa: F401
    except ImportError as exc:
        unavailable("Playwright for Python", exc)
    return CHROMIUM


def shot_dir(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path]
    if target := os.environ.get("LINLI_SCREENSHOTS"):
        dirs.append(Path(target))
        Path(target).mkdir(parents=True, exist_ok=True)
    return dirs


async def test_console_in_chromium(settings, clock, tmp_path, chromium):
    from playwright.async_api import async_playwright

    app = create_app(settings, clock=clock, migrate=True, state_prefix=f"linli-test-{uuid.uuid4().hex}:",
                     background=False)
    async with TestClient(TestServer(app)) as client:
        service = client.app[SERVICE]
        await seed_people(service)
        await seed_tickets(service.engine, 600, 6, service.ctx.now())  # months of history for the charts
        wechat = WeChat(client, clock)
        reply = await wechat.send(PEOPLE["张阿姨"], "楼道的灯坏了好几天了，晚上看不见")
        number = re.search(r"编号：(\d+)", reply).group(1)
        await wechat.send(PEOPLE["李大爷"], HOSTILE + " 楼下垃圾没人收")
        base = str(client.make_url("")).rstrip("/")
        link = await make_login_link(service.ctx.sessions, "s-admin", service.ctx.now(), base)
        shots = shot_dir(tmp_path)

        async def screenshot(page, name: str) -> None:
            for d in shots:
                await page.screenshot(path=str(d / name), full_page=True)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=chromium, args=FLAGS, headless=True,
                viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
            try:
                page = browser.pages[0] if browser.pages else await browser.new_page()
                dialogs = []
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                await page.goto(link)
                assert page.url == base + "/console"
                await page.wait_for_selector("#chart-rates[data-drawn] canvas")
                drawn = await page.evaluate("""() => {
                    const c = document.querySelector('#chart-rates canvas');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let ink = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
                    return ink; }""")
                assert drawn > 1000  # lines and axes, not an empty canvas
                assert await page.locator("#chart-grids[data-drawn] canvas").count() == 1
                await screenshot(page, "console-dashboard.png")

                await page.click("text=工单")
                await page.select_option("select[name=status]", "dispatched")
                await page.click("#filter")
                assert "status=dispatched" in page.url
                statuses = await page.locator("table.tickets tbody tr td:nth-child(4)").all_inner_texts()
                assert statuses and set(statuses) == {"已派单，等待签收"}
                assert await page.locator(f"a[href='/console/tickets/{number}']").count() == 1
                assert not dialogs  # the hostile text ran nothing
                await screenshot(page, "console-tickets.png")

                await page.click(f"a[href='/console/tickets/{number}']")
                await page.click("#act-accept")
                flash = await page.locator(".flash").inner_text()
                assert "已签收" in flash and number in flash
                await screenshot(page, "console-ticket.png")

                await page.goto(base + "/console/reports")
                async with page.expect_download() as download:
                    await page.click("#xlsx")
                saved = tmp_path / "report.xlsx"
                await (await download.value).save_as(saved)
                book = openpyxl.load_workbook(io.BytesIO(saved.read_bytes()))
                assert "按网格" in book.sheetnames and book["工单"].max_row > 1

                await page.set_viewport_size({"width": 390, "height": 844})  # a phone
                await page.goto(base + "/console/tickets")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 400  # no sideways scrolling on a phone
                await screenshot(page, "console-phone.png")
            finally:
                await browser.close()
