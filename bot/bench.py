"""`linli bench webhook`: Linli's webhook against a bare aiohttp server, measured in one run on one machine.

Each server is one process pinned to one core; wrk (Debian's package) runs on the other core with 50
connections and a Lua script that sends correctly signed pushes in a realistic mix: 70 % new complaints
(each from a new resident, unique MsgIds), 10 % retries of recent MsgIds, 10 % status queries, 10 % other
commands and events. Plain-mode signatures cover token, timestamp and nonce, not the body, so one signed
query string serves every body for the few minutes a timestamp stays fresh.

Afterwards every tracking number wrk received must exist in the database (`lost`), and no resident may
have two tickets (`duplicates`: each complaint came from its own resident; a retry must not add one).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bot.signing import signature, xml_message

TOKEN = "benchtoken"
BARE = [sys.executable, "-m", "bot.bench", "bare"]
REPLY = xml_message({"ToUserName": "o", "FromUserName": "gh", "CreateTime": 0, "MsgType": "text", "Content": "收到"})
SERVER_CORE, LOAD_CORE = 0, 1

COMPLAINTS = [
    "小区3栋门口的垃圾好几天没人清理了，很臭", "楼上装修天天打电钻，中午都不停", "地下车库的灯坏了好多，晚上很黑",
    "电梯又坏了，老人上下楼很不方便", "楼道里堆满了杂物，有火灾隐患", "小区门口有人乱停车，消防通道被堵了",
    "晚上广场舞音乐太大声，孩子没法睡觉", "单元门的门禁坏了，谁都能进来", "绿化带里有狗屎，没人管",
    "下水道堵了，污水漫到路上", "有人在楼道里给电动车飞线充电", "楼顶有人搭了违章建筑",
    "路灯坏了一个多星期了", "邻居家漏水渗到我家天花板", "物业费涨了但是服务没变好",
    "健身器材坏了，小孩玩容易受伤", "垃圾分类的桶太少，总是满的", "楼下小饭馆油烟太大，窗户都不敢开",
    "独居老人王奶奶好几天没下楼了，能不能去看看", "流浪猫太多了，晚上叫得睡不着",
]

LUA = r"""
local counter, id, recent, people, kept = 0, 0, {}, {}, 0
local query, run, dir = "%(query)s", "%(run)s", "%(dir)s"
local texts = { %(texts)s }
local receipts
local threads = {}

setup = function(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

init = function(args)
  receipts = io.open(dir .. "/receipts-" .. id .. ".txt", "w")
end

local function push(openid, kind, content, msgid)
  local fields = "<ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[" .. openid ..
    "]]></FromUserName><CreateTime>" .. os.time() .. "</CreateTime>"
  if kind == "event" then
    fields = fields .. "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[" .. content .. "]]></Event>"
  else
    fields = fields .. "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[" .. content ..
      "]]></Content><MsgId>" .. msgid .. "</MsgId>"
  end
  return "<xml>" .. fields .. "</xml>"
end

request = function()
  counter = counter + 1
  local kind = counter %% 10
  local msgid = run .. string.format("%%02d%%09d", id, counter)
  local body
  if kind <= 6 or kept == 0 then
    local openid = "bench-" .. run .. "-" .. id .. "-" .. counter
    body = push(openid, "text", texts[counter %% #texts + 1], msgid)
    kept = kept + 1
    recent[(kept - 1) %% 50 + 1] = body  -- the last 50 complaints, for retries and queries
    people[(kept - 1) %% 50 + 1] = openid
  elseif kind == 7 then
    body = recent[math.random(math.min(kept, 50))]
  elseif kind == 8 then
    body = push(people[math.random(math.min(kept, 50))], "text", "我的诉求", msgid)
  elseif counter %% 20 == 9 then
    body = push(people[math.random(math.min(kept, 50))], "text", "帮助", msgid)
  else
    body = push("bench-" .. run .. "-" .. id .. "-e" .. counter, "event", "subscribe", "")
  end
  return wrk.format("POST", query, {["Content-Type"] = "text/xml"}, body)
end

response = function(status, headers, body)
  local number = string.match(body, "编号：(%%d+)")
  if number then receipts:write(number, "\n") end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass
class Result:
    name: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    receipts: int = 0
    lost: int | None = None
    duplicates: int | None = None
    startup_s: float = 0.0
    rss_mb: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int):
    return lambda: os.sched_setaffinity(0, {core}) if core < os.cpu_count() else None


def start_server(command: list[str], env: dict[str, str], port: int) -> tuple[subprocess.Popen, float]:
    """Start a server pinned to its core; return it and how long it took to answer /healthz."""
    import urllib.request

    started = time.perf_counter()
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=pinned(SERVER_CORE))
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
        if time.perf_counter() - started > 60:
            proc.kill()
            raise RuntimeError("server did not start within 60 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(port: int, seconds: float, connections: int, workdir: Path, run: str) -> dict:
    ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    query = f"/wechat?signature={signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}"
    texts = ", ".join(json.dumps(t, ensure_ascii=False) for t in COMPLAINTS)
    script = workdir / f"bench-{run}.lua"
    script.write_text(LUA % {"query": query, "run": run, "dir": str(workdir), "texts": texts}, encoding="utf-8")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", str(script),
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, preexec_fn=pinned(LOAD_CORE), check=True)
    line = next(l for l in out.stdout.splitlines() if l.startswith("BENCHJSON "))
    return json.loads(line.removeprefix("BENCHJSON "))


def measure(name: str, port: int, proc: subprocess.Popen, args, workdir: Path) -> tuple[Result, set[str]]:
    run = f"{secrets.randbelow(900000) + 100000}"
    wrk(port, args.warmup, args.connections, workdir, run + "0")
    for f in workdir.glob("receipts-*.txt"):
        f.unlink()  # the warm-up's receipts count too, below: keep them apart
    stats = wrk(port, args.duration, args.connections, workdir, run + "1")
    numbers = {line for f in workdir.glob("receipts-*.txt") for line in f.read_text().split()}
    result = Result(name, rps=stats["requests"] / (stats["duration_us"] / 1e6), p50_ms=stats["p50_us"] / 1000,
                    p99_ms=stats["p99_us"] / 1000, max_ms=stats["max_us"] / 1000, errors=stats["errors"],
                    receipts=len(numbers), rss_mb=rss_mb(proc.pid))
    return result, numbers


async def check_stored(database_url: str, numbers: set[str]) -> tuple[int, int]:
    """(receipts whose ticket is missing, residents with more than one ticket)."""
    from sqlalchemy import func, select

    from storage.db import create_engine
    from storage.models import Ticket

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = set((await conn.execute(select(Ticket.number))).scalars())
            extra = (await conn.execute(select(func.count() - func.count(func.distinct(Ticket.openid))))).scalar_one()
    finally:
        await engine.dispose()
    return len(numbers - stored), extra


def run_target(name: str, command: list[str], env: dict[str, str], args, database_url: str | None) -> Result:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"linli-bench-{name}-") as tmp:
        proc, startup = start_server(command + ["--port", str(port)], env, port)
        try:
            result, numbers = measure(name, port, proc, args, Path(tmp))
        finally:
            stop(proc)
        result.startup_s = startup
        if database_url:
            # the warm-up's tickets are in the database too; every returned number must be among them
            result.lost, result.duplicates = asyncio.run(check_stored(database_url, numbers))
    return result


def bench_webhook(args) -> int:
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    base_env = {"LINLI_WECHAT_TOKEN": TOKEN, "LINLI_WECHAT_APPID": "", "LINLI_WECHAT_SECRET": "",
                "LINLI_WECHAT_AES_KEY": "", "PYTHONUNBUFFERED": "1", "REDIS_URL": "", "DATABASE_URL": ""}
    linli = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"]
    # The bare server runs right before each Linli setup, and each ratio is taken against the run next to
    # it: a shared machine's speed drifts by a third within minutes, and one bare run at the start would
    # fold that drift into the later ratios.
    results = [run_target("bare", BARE, {}, args, None)]
    with tempfile.TemporaryDirectory(prefix="linli-bench-db-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.db"
        env = {**base_env, "DATABASE_URL": sqlite_url}
        results.append(run_target("sqlite", linli, env, args, sqlite_url))
    if not args.skip_pg:
        pg_url, drop = fresh_pg_database(args.pg)
        try:
            env = {**base_env, "DATABASE_URL": pg_url, "REDIS_URL": args.redis}
            from storage.migrate import upgrade

            upgrade(pg_url)
            results.append(run_target("bare", BARE, {}, args, None))
            results.append(run_target("pg", linli, env, args, pg_url))
        finally:
            drop()
    report(results)
    return 0


def fresh_pg_database(base_url: str):
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"linli_bench_{uuid.uuid4().hex[:8]}"
    u = make_url(base_url)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                     database=u.database)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = u.set(database=name).render_as_string(hide_password=False)
    return url, lambda: asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def report(results: list[Result]) -> None:
    """A row per run, each Linli setup's ratio against the bare run just before it; last line JSON."""
    print(f"{'server':<8}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
          f"{'receipts':>10}{'lost':>6}{'dup':>5}{'start s':>9}{'RSS MB':>8}")
    bares = [r.rps for r in results if r.name == "bare"]
    summary = {"bare_rps": round(sum(bares) / len(bares)), "bare_runs_rps": [round(b) for b in bares],
               "cores": os.cpu_count()}
    bare = results[0].rps
    for r in results:
        if r.name == "bare":
            bare = r.rps
        ratio = r.rps / bare
        print(f"{r.name:<8}{r.rps:>10.0f}{ratio:>8.3f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.max_ms:>9.1f}"
              f"{r.errors:>8}{r.receipts:>10}{_n(r.lost):>6}{_n(r.duplicates):>5}{r.startup_s:>9.2f}{r.rss_mb:>8.0f}")
        if r.name != "bare":
            summary |= {f"{r.name}_rps": round(r.rps), f"{r.name}_ratio": round(ratio, 4),
                        f"{r.name}_p99_ms": round(r.p99_ms, 1), f"{r.name}_errors": r.errors,
                        f"{r.name}_startup_s": round(r.startup_s, 2), f"{r.name}_rss_mb": round(r.rss_mb)}
    summary["lost"] = sum(r.lost or 0 for r in results)
    summary["duplicates"] = sum(r.duplicates or 0 for r in results)
    print(json.dumps(summary))


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def register(subparsers) -> None:
    webhook = subparsers.add_parser("webhook", help="Linli (SQLite; PostgreSQL + Redis) against bare aiohttp")
    webhook.add_argument("--duration", type=int, default=20, help="seconds measured per server (default 20)")
    webhook.add_argument("--warmup", type=int, default=5, help="seconds of load before measuring (default 5)")
    webhook.add_argument("--connections", type=int, default=50)
    webhook.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                         help="PostgreSQL to create the benchmark's own database in")
    webhook.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="Redis for the PostgreSQL setup")
    webhook.add_argument("--skip-pg", action="store_true", help="only the bare server and the embedded default")
    webhook.set_defaults(run=bench_webhook)


def bare_server(port: int) -> None:
    """The ceiling for one Python process: aiohttp answering every push with a fixed reply."""
    from aiohttp import web

    async def push(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=REPLY, content_type="application/xml")

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/wechat", push)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["bare"])
    parser.add_argument("--port", type=int, required=True)
    bare_server(parser.parse_args().port)
