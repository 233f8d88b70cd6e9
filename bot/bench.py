"""`linli bench webhook`: Linli's webhook against a bare aiohttp server, measured in one run on one machine.

Each server is one process pinned to one core; wrk (Debian's package) runs on the other core with 50
connections and a Lua script that sends correctly signed pushes in a realistic mix: 63 % new complaints
(each from a new resident, unique MsgIds), 10 % new micro-wishes (`微心愿 …`, each from its own resident bound
to a flat: the benchmark seeds a community of them), 9 % retries of recent messages, 9 % status queries, 9 %
other commands and events (the mix before wishes, 70/10/10/10, scaled to 90 %). Plain-mode signatures cover
token, timestamp and nonce, not the body, and the service refuses a signed query it saw with another body (a
replay), so every new body gets its own nonce: the queries are signed beforehand (wrk's Lua has no SHA-1)
and a retry resends its body with the query it first went with.

The servers run side by side and take turns in short slices (bare, then a Linli setup, every round), so
that each ratio compares slices seconds apart on a machine whose speed drifts. Afterwards every tracking
number wrk received must exist in the database as a ticket or a wish (`lost`), and no resident may have two
tickets or two wishes (`duplicates`: each complaint and each wish came from its own resident; a retry must
not add one). `linli bench claims` (bot/bench_claims.py) is the burst of a wish wall opening.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
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
WISHES = [  # 微心愿 from residents bound to a flat (the benchmark seeds them: WISHERS)
    "想请人帮忙换一下厨房的灯泡", "想请人陪我去社区医院量血压", "眼睛花了，想要一副老花镜", "想找人教我用手机视频通话",
    "家里的水龙头一直漏水，想请人修一下", "想请人帮忙把旧衣服送到回收点", "想请人帮孩子辅导一下数学",
    "想请人帮忙贴一下春联", "腿脚不方便，想请人帮忙取快递", "想要一个带靠背的小板凳",
]
WISHERS = "bench-w-"  # + 1 … n: bound residents, each sends one wish
WISH_SHARE = 0.10  # of all pushes; the other kinds keep their proportions (docs in the module's docstring)
WISHES_PER_S = 600  # seeded wishers per second of load: more than a Linli server answers wishes

LUA = r"""
local counter, id, recent, sent_with, people, kept, complained, wished = 0, 0, {}, {}, {}, 0, 0, 0
local queries, fresh = {}, 0
local run, dir, wisher_from, wishers = "%(run)s", "%(dir)s", %(wisher_from)d, %(wishers)d
local texts = { %(texts)s }
local wishes = { %(wishes)s }
local receipts
local threads = {}

setup = function(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

init = function(args)
  receipts = io.open(dir .. "/receipts-" .. id .. ".txt", "w")
  for line in io.lines(dir .. "/queries.txt") do queries[#queries + 1] = line end
end

local function query()  -- a signed query no body went with yet (past the pool's end the service says 403)
  fresh = fresh + 1
  return queries[(fresh - 1) %% #queries + 1]
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

-- Of every 200 pushes: 126 complaints, 20 wishes, 18 retries, 18 我的诉求, 9 帮助, 9 subscribe events; the
-- multiplier spreads each kind over the 200 instead of sending them in runs.
request = function()
  counter = counter + 1
  local share = (counter * 37) %% 200
  local msgid = run .. string.format("%%02d%%09d", id, counter)
  local body, q
  if share < 146 or kept == 0 then
    if share < 126 or kept == 0 then
      local openid = "bench-" .. run .. "-" .. id .. "-" .. counter
      body = push(openid, "text", texts[counter %% #texts + 1], msgid)
      complained = complained + 1
      people[(complained - 1) %% 50 + 1] = openid  -- the last 50 complainants, for 我的诉求 and 帮助
    else
      local wisher = "%(wisher_prefix)s" .. ((wisher_from + wished) %% wishers + 1)
      wished = wished + 1
      body = push(wisher, "text", "微心愿 " .. wishes[counter %% #wishes + 1], msgid)
    end
    q = query()
    kept = kept + 1
    recent[(kept - 1) %% 50 + 1] = body  -- the last 50 new messages, for retries
    sent_with[(kept - 1) %% 50 + 1] = q
  elseif share < 164 then
    local i = math.random(math.min(kept, 50))
    body, q = recent[i], sent_with[i]  -- WeChat's retry: the same body, signed as before
  elseif share < 182 then
    body = push(people[math.random(math.min(complained, 50))], "text", "我的诉求", msgid)
  elseif share < 191 then
    body = push(people[math.random(math.min(complained, 50))], "text", "帮助", msgid)
  else
    body = push("bench-" .. run .. "-" .. id .. "-e" .. counter, "event", "subscribe", "")
  end
  return wrk.format("POST", q or query(), {["Content-Type"] = "text/xml"}, body)
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
class Server:
    """One server under test, running for the whole benchmark, and what its load slices measured."""

    name: str
    command: list[str]
    env: dict[str, str]
    database_url: str | None = None
    port: int = 0
    proc: subprocess.Popen | None = None
    startup_s: float = 0.0
    rss_mb: float = 0.0
    slices: list[dict] = field(default_factory=list)  # wrk's figures per slice
    paired_bare: list[dict] = field(default_factory=list)  # the bare slice right before each of ours
    numbers: set[str] = field(default_factory=set)  # tracking numbers the load generator received
    lost: int | None = None
    duplicates: int | None = None
    wishers_used: int = 0  # wishers who have sent their wish (the next run starts after them)
    wishes: int | None = None  # wishes stored

    def rps(self, slices: list[dict] | None = None) -> float:
        slices = self.slices if slices is None else slices
        return sum(x["requests"] for x in slices) / (sum(x["duration_us"] for x in slices) / 1e6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int):
    return lambda: os.sched_setaffinity(0, {core}) if core < os.cpu_count() else None


def start_server(command: list[str], env: dict[str, str], port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """Start a server pinned to its core; return it and how long it took to answer /healthz. Its log goes to a
    file: a pipe nobody reads fills up and then blocks the server."""
    import urllib.request

    started = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=pinned(SERVER_CORE))
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {log.read_text(errors='replace')[-2000:]}")
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


QUERIES_PER_S = 10_000  # signed queries per second of a slice: more than a Linli server answers


def signed_queries(count: int, run: str) -> str:
    """`count` signed query strings, one per line, each with its own nonce (the service refuses a signed query
    seen with another body)."""
    ts = str(int(time.time()))
    return "".join(f"/wechat?signature={signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}\n"
                   for nonce in (f"{run}{n}" for n in range(count)))


def wrk(port: int, seconds: float, connections: int, workdir: Path, run: str, wisher_from: int, wishers: int) -> dict:
    (workdir / "queries.txt").write_text(signed_queries(int(QUERIES_PER_S * seconds) + 1000, run))
    script = workdir / f"bench-{run}.lua"
    script.write_text(LUA % {"run": run, "dir": str(workdir), "texts": _lua_list(COMPLAINTS), "wishes": _lua_list(WISHES),
                             "wisher_prefix": WISHERS, "wisher_from": wisher_from, "wishers": wishers},
                      encoding="utf-8")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", str(script),
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, preexec_fn=pinned(LOAD_CORE), check=True)
    line = next(l for l in out.stdout.splitlines() if l.startswith("BENCHJSON "))
    return json.loads(line.removeprefix("BENCHJSON "))


def _lua_list(texts: list[str]) -> str:
    return ", ".join(json.dumps(t, ensure_ascii=False) for t in texts)


class Load:
    """wrk runs, each with its own identity (MsgIds and residents never repeat across runs) and receipts; each
    Linli server's wishers are used in turn, one wish each, across its runs."""

    def __init__(self, workdir: Path, connections: int, wishers: int) -> None:
        self.workdir, self._connections, self.wishers = workdir, connections, wishers
        self._prefix, self._count = f"{secrets.randbelow(900000) + 100000}", 0

    def run(self, server: Server, seconds: float) -> tuple[dict, set[str]]:
        self._count += 1
        run = f"{self._prefix}{self._count:02d}"
        slice_dir = self.workdir / run
        slice_dir.mkdir()
        stats = wrk(server.port, seconds, self._connections, slice_dir, run, server.wishers_used, self.wishers)
        (slice_dir / "queries.txt").unlink()
        if server.database_url is not None:  # a bound on the wishes this run sent (requests in flight included)
            server.wishers_used += math.ceil((stats["requests"] + self._connections) * WISH_SHARE) + 1
        numbers = {line for f in slice_dir.glob("receipts-*.txt") for line in f.read_text().split()}
        return stats, numbers


async def check_stored(database_url: str, numbers: set[str]) -> tuple[int, int, int]:
    """(receipts whose ticket or wish is missing, residents with more than one ticket or wish, wishes stored):
    each complaint and each wish came from its own resident, so a second one is a retry stored twice."""
    from sqlalchemy import func, select

    from storage.db import create_engine
    from storage.models import Ticket, Wish

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored, extra = set(), 0
            for model in (Ticket, Wish):
                stored |= set((await conn.execute(select(model.number))).scalars())
                extra += (await conn.execute(select(func.count() - func.count(func.distinct(model.openid))))
                          ).scalar_one()
            wishes = (await conn.execute(select(func.count()).select_from(Wish))).scalar_one()
    finally:
        await engine.dispose()
    return len(numbers - stored), extra, wishes


async def seed_community(database_url: str, residents: int, members: int = 0, *, prefix: str = WISHERS,
                         member_prefix: str = "bench-m-") -> None:
    """One community with `residents` flats and a resident bound to each (`prefix` 1 … n, in building 1栋),
    and `members` Party members registered there (`member_prefix` 1 … n), written in bulk."""
    from sqlalchemy import insert

    from handlers.context import utcnow
    from storage.db import create_engine
    from storage.models import Building, Community, Grid, Household, PartyMember, Resident, Staff

    now, engine = utcnow(), create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Community.__table__).values(id=1, code="bench", name="压测社区"))
            await conn.execute(insert(Grid.__table__).values(id=1, community_id=1, code="1", name="1号网格"))
            await conn.execute(insert(Building.__table__).values(id=1, grid_id=1, community_id=1, name="1栋"))
            ids = range(1, residents + 1)
            await conn.execute(insert(Household.__table__), [
                dict(id=i, building_id=1, unit="1单元", room=str(i), floor_area=80.0, code=f"BH{i}") for i in ids])
            await conn.execute(insert(Resident.__table__), [
                dict(openid=f"{prefix}{i}", household_id=i, is_owner=True, name="", phone="", status="bound",
                     bound_at=now, created_at=now) for i in ids])
            if members:
                await conn.execute(insert(Staff.__table__), [
                    dict(openid=f"{member_prefix}{i}", role="party_member", grid_id=None, is_head=False,
                         name=f"党员{i}", active=True, created_at=now) for i in range(1, members + 1)])
                await conn.execute(insert(PartyMember.__table__), [
                    dict(openid=f"{member_prefix}{i}", community_id=1, name=f"党员{i}", unit="压测单位", skills="",
                         time_offered="", registered_at=now, updated_at=now) for i in range(1, members + 1)])
    finally:
        await engine.dispose()


def have_wrk() -> bool:
    """wrk on the PATH; on a fresh Debian machine run by root, installed from Debian's packages first."""
    if shutil.which("wrk"):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk, the load generator (apt-get install wrk) …", flush=True)
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if subprocess.run(install, **quiet).returncode != 0:  # package lists never fetched on this machine
            subprocess.run(["apt-get", "update", "-q"], **quiet)
            subprocess.run(install, **quiet)
    return shutil.which("wrk") is not None


def bench_webhook(args) -> int:
    if not have_wrk():
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    base_env = {"LINLI_WECHAT_TOKEN": TOKEN, "LINLI_WECHAT_APPID": "", "LINLI_WECHAT_SECRET": "",
                "LINLI_WECHAT_AES_KEY": "", "PYTHONUNBUFFERED": "1", "REDIS_URL": "", "DATABASE_URL": ""}
    from storage.migrate import upgrade

    linli = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"]
    drop = None
    # every wish from its own resident (so a second wish of one is a retry stored twice), enough for any pace
    wishers = WISHES_PER_S * (args.warmup + max(1, math.ceil(args.duration / args.slice)) * args.slice) + 1000
    with tempfile.TemporaryDirectory(prefix="linli-bench-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.db"
        servers = [Server("bare", BARE, {}),
                   Server("sqlite", linli, {**base_env, "DATABASE_URL": sqlite_url}, sqlite_url)]
        if not args.skip_pg:
            pg_url, drop = fresh_pg_database(args.pg)
            servers.append(Server("pg", linli, {**base_env, "DATABASE_URL": pg_url, "REDIS_URL": args.redis}, pg_url))
        try:
            for server in servers[1:]:
                upgrade(server.database_url)
                asyncio.run(seed_community(server.database_url, wishers))
            run_interleaved(servers, args, Load(Path(tmp), args.connections, wishers))
        finally:
            for server in servers:
                if server.proc is not None:
                    stop(server.proc)
            if drop is not None:
                drop()
    report(servers, args)
    return 0


def run_interleaved(servers: list[Server], args, load: Load) -> None:
    """Start every server, warm each up, then measure in rounds of short slices: the bare server right before
    each Linli setup, every round. A shared machine's speed drifts by a third within minutes; slices a few
    seconds apart see the same machine, so each ratio compares like with like."""
    bare, linlis = servers[0], servers[1:]
    for server in servers:
        server.port = free_port()
        server.proc, server.startup_s = start_server(server.command + ["--port", str(server.port)], server.env,
                                                     server.port, load.workdir / f"{server.name}.log")
    for server in servers:
        load.run(server, args.warmup)  # its receipts count too: every number returned must be stored
    rounds = max(1, math.ceil(args.duration / args.slice))
    for n in range(rounds):
        line = []
        for server in linlis:
            before, _ = load.run(bare, args.slice)
            stats, numbers = load.run(server, args.slice)
            bare.slices.append(before)
            server.paired_bare.append(before)
            server.slices.append(stats)
            server.numbers |= numbers
            ratio = server.rps([stats]) / bare.rps([before])
            line.append(f"bare {bare.rps([before]):.0f}, {server.name} {server.rps([stats]):.0f} ({ratio:.3f})")
        print(f"round {n + 1}/{rounds}: " + "; ".join(line), flush=True)
    for server in servers:
        server.rss_mb = rss_mb(server.proc.pid)
    for server in linlis:
        # the warm-up's tickets are in the database too; every returned number must be among them
        server.lost, server.duplicates, server.wishes = asyncio.run(check_stored(server.database_url, server.numbers))


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


def report(servers: list[Server], args) -> None:
    """A row per server over all its slices (each Linli setup's ratio against the bare slices paired with its
    own; p50 the median slice's, p99 and max the worst slice's); the last line is JSON."""
    print(f"{'server':<8}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
          f"{'receipts':>10}{'lost':>6}{'dup':>5}{'start s':>9}{'RSS MB':>8}")
    bare = servers[0]
    summary = {"bare_rps": round(bare.rps()), "bare_slices_rps": [round(bare.rps([x])) for x in bare.slices],
               "cores": os.cpu_count(), "slice_s": args.slice, "slices": len(servers[1].slices)}
    for server in servers:
        x = server.slices
        p50 = statistics.median(s["p50_us"] for s in x) / 1000
        p99, worst = max(s["p99_us"] for s in x) / 1000, max(s["max_us"] for s in x) / 1000
        errors = sum(s["errors"] for s in x)
        ratio = server.rps() / bare.rps(server.paired_bare) if server is not bare else 1.0
        print(f"{server.name:<8}{server.rps():>10.0f}{ratio:>8.3f}{p50:>9.1f}{p99:>9.1f}{worst:>9.1f}"
              f"{errors:>8}{len(server.numbers):>10}{_n(server.lost):>6}{_n(server.duplicates):>5}"
              f"{server.startup_s:>9.2f}{server.rss_mb:>8.0f}")
        if server is not bare:
            summary |= {f"{server.name}_rps": round(server.rps()), f"{server.name}_ratio": round(ratio, 4),
                        f"{server.name}_p99_ms": round(p99, 1), f"{server.name}_errors": errors,
                        f"{server.name}_receipts": len(server.numbers), f"{server.name}_wishes": server.wishes,
                        f"{server.name}_startup_s": round(server.startup_s, 2),
                        f"{server.name}_rss_mb": round(server.rss_mb)}
    summary["lost"] = sum(s.lost or 0 for s in servers)
    summary["duplicates"] = sum(s.duplicates or 0 for s in servers)
    print(json.dumps(summary))


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def add_setup_options(parser, skip_help: str) -> None:
    """Where the PostgreSQL + Redis setup runs, or --skip-pg."""
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL to create the benchmark's own database in")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="Redis for the PostgreSQL setup")
    parser.add_argument("--skip-pg", action="store_true", help=skip_help)


def register(subparsers) -> None:
    webhook = subparsers.add_parser("webhook", help="公众号接口的速度：邻里对比空白 aiohttp / Linli against bare aiohttp")
    webhook.add_argument("--duration", type=int, default=40,
                         help="seconds measured per server (default 40: eight slices, whose average is steadier "
                              "than four)")
    webhook.add_argument("--slice", type=int, default=5,
                         help="seconds per slice: servers take turns in slices this long (default 5)")
    webhook.add_argument("--warmup", type=int, default=5, help="seconds of load before measuring (default 5)")
    webhook.add_argument("--connections", type=int, default=50)
    add_setup_options(webhook, skip_help="only the bare server and the embedded default")
    webhook.set_defaults(run=bench_webhook)
    from bot import bench_claims  # it builds on this module's helpers

    bench_claims.register(subparsers)


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
