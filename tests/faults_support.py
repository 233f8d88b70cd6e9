"""Helpers for the fault tests (tests/test_faults.py): real `linli serve` processes, a private redis-server, a TCP
proxy that can cut a database off, and a client that sends signed pushes and times the answers.

Everything listens and connects on 127.0.0.1 only. Every process started here runs in its own session (process
group), so `kill()` and `stop()` reach `--workers` children too; callers put them in fixtures with `finally`.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bot.signing import sign_push, xml_message

REPO = Path(__file__).resolve().parent.parent
TOKEN = "faulttoken"
RECEIPT = re.compile(r"编号：(\d+)")
COMPLAINTS = [
    "小区3栋门口的垃圾好几天没人清理了，很臭", "楼上装修天天打电钻，中午都不停", "地下车库的灯坏了好多，晚上很黑",
    "电梯又坏了，老人上下楼很不方便", "楼道里堆满了杂物，有火灾隐患", "小区门口有人乱停车，消防通道被堵了",
    "晚上广场舞音乐太大声，孩子没法睡觉", "单元门的门禁坏了，谁都能进来", "下水道堵了，污水漫到路上",
    "路灯坏了一个多星期了", "邻居家漏水渗到我家天花板", "健身器材坏了，小孩玩容易受伤",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(proc: subprocess.Popen | None, grace_s: float = 10) -> None:
    """SIGTERM to the process group, then SIGKILL if it lingers; always reaps."""
    if proc is None:
        return
    if proc.poll() is None:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc, signal.SIGKILL)  # children of --workers too, even if the parent is already gone
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# -- linli serve -------------------------------------------------------------------------------------------------
def serve_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a `linli serve` under test: no WeChat API (no sender), nothing inherited that matters."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"LINLI_WECHAT_TOKEN": TOKEN, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", **extra}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


class ServeProcess:
    """`python -m bot.cli serve` as a subprocess on 127.0.0.1: start and wait for /healthz, kill -9, restart, stop."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, port: int | None = None, workers: int = 1,
                 name: str = "serve") -> None:
        self.env, self.log_dir, self.workers, self.name = env, log_dir, workers, name
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.startup_s: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wechat"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}-{self.starts}.log"

    async def start(self, timeout_s: float = 90) -> None:
        self.starts += 1
        command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                if time.monotonic() - started > timeout_s:
                    self.stop()
                    raise RuntimeError(f"{self.name} not healthy within {timeout_s} s:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz",
                                        timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200 and listeners(self.port) >= self.workers:
                            break
                await asyncio.sleep(0.2)
        self.startup_s.append(time.monotonic() - started)

    def kill(self) -> None:
        """SIGKILL, no goodbye: the whole process group, reaped."""
        if self.proc is not None:
            _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait(10)

    async def restart(self, timeout_s: float = 90) -> None:
        self.kill()
        await self.start(timeout_s)

    def stop(self) -> None:
        _stop(self.proc)

    def worker_pids(self) -> list[int]:
        """The app processes: the children of `--workers`, or the process itself."""
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        return children(self.proc.pid)

    def log_tail(self, chars: int = 4000) -> str:
        text = "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.name}-*.log")))
        return text[-chars:]


def listeners(port: int) -> int:
    """How many sockets LISTEN on this TCP port (one per SO_REUSEPORT worker)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                    count += 1
    return count


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- a private redis-server ----------------------------------------------------------------------------------------
class PrivateRedis:
    """A throwaway redis-server on its own port, no persistence: kill -9 and start again on the same port."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.log_dir, self.port = log_dir, port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10) -> None:
        import redis

        with open(self.log_dir / f"redis-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        _stop(self.proc)


# -- a TCP proxy that can cut the line -----------------------------------------------------------------------------
class TcpProxy:
    """127.0.0.1:port -> target, on its own event loop in a thread, so the test's loop may block freely.

    Modes: "open" forwards; "refuse" drops every connection the moment it arrives (the database is unreachable);
    "blackhole" accepts and then never answers (a network that swallows packets: only timeouts help).
    `cut()` also aborts every live connection (RST), as a failing network or database would.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode = "open"
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._live: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    def cut(self, mode: str = "refuse") -> None:
        assert mode in ("refuse", "blackhole")
        self._call(self._set_mode(mode))

    def restore(self) -> None:
        self._call(self._set_mode("open"))

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set_mode(self, mode: str) -> None:
        self.mode = mode
        for writer in list(self._live):
            writer.transport.abort()
        self._live.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._set_mode("closed")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode != "open":
            if self.mode == "blackhole":
                self._live.add(writer)  # held, silent, until cut() or restore() aborts it
            else:
                writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._live |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort() if self.mode != "open" else dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        self._live -= {writer, up_writer}


# -- pushes --------------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int | None  # None: no HTTP answer at all (refused, reset, timed out)
    reply: str
    elapsed_s: float
    phase: str = ""
    started: float = 0.0  # time.monotonic() when the request went out

    @property
    def number(self) -> str | None:
        found = RECEIPT.search(self.reply)
        return found.group(1) if found else None


@dataclass
class Push:
    openid: str
    text: str
    msg_id: int
    answers: list[Answer] = field(default_factory=list)

    @property
    def numbers(self) -> set[str]:
        return {a.number for a in self.answers if a.number}

    @property
    def answered(self) -> bool:
        return any(a.status is not None for a in self.answers)


def make_pushes(n: int, tag: str) -> list[Push]:
    """n complaints, each from its own resident, with unique MsgIds."""
    run = f"{tag}-{random.randrange(16**6):06x}"
    base = random.randrange(10**17, 8 * 10**17)
    return [Push(f"fault-{run}-{i}", COMPLAINTS[i % len(COMPLAINTS)], base + i) for i in range(n)]


def reply_content(body: str) -> str:
    import xmltodict

    if body in ("", "success"):
        return ""
    try:
        return xmltodict.parse(body)["xml"].get("Content") or ""
    except Exception:
        return body


async def push_text(client: aiohttp.ClientSession, url: str, openid: str, text: str, msg_id: int,
                    *, timeout_s: float = 10) -> tuple[int | None, str, float]:
    """One signed text push, as WeChat sends it: (HTTP status or None, the reply's Content, seconds taken)."""
    now = int(time.time())
    xml = xml_message({"ToUserName": "gh_linli", "FromUserName": openid, "CreateTime": now, "MsgType": "text",
                       "Content": text, "MsgId": msg_id})
    query, body = sign_push(TOKEN, xml, timestamp=now)
    started = time.monotonic()
    try:
        async with client.post(url, params=query, data=body.encode(), headers={"Content-Type": "text/xml"},
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            raw = await resp.text()
            return resp.status, (reply_content(raw) if resp.status == 200 else raw), time.monotonic() - started
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}", time.monotonic() - started


async def send(client: aiohttp.ClientSession, url: str, push: Push, phase: str = "") -> Answer:
    started = time.monotonic()
    status, reply, elapsed = await push_text(client, url, push.openid, push.text, push.msg_id)
    answer = Answer(status, reply, elapsed, phase, started)
    push.answers.append(answer)
    return answer


async def send_all(client: aiohttp.ClientSession, url: str, pushes: list[Push], *, concurrency: int = 20,
                   phase: str = "", pace_s: float = 0.0, on_answer=None, stop: asyncio.Event | None = None) -> None:
    """Send each push once, `concurrency` at a time (each sender pausing `pace_s` between pushes); `on_answer`
    sees every answer; when `stop` is set, pushes not yet sent are left alone."""
    queue = list(reversed(pushes))

    async def worker() -> None:
        while queue and not (stop and stop.is_set()):
            push = queue.pop()
            answer = await send(client, url, push, phase)
            if on_answer:
                on_answer(push, answer)
            if pace_s:
                await asyncio.sleep(pace_s)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def stored_tickets(database_url: str) -> dict[str, list[str]]:
    """openid -> the numbers of their tickets, as the database has them."""
    from sqlalchemy import select

    from storage.db import create_engine
    from storage.models import Ticket

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Ticket.openid, Ticket.number))).all()
    finally:
        await engine.dispose()
    found: dict[str, list[str]] = {}
    for openid, number in rows:
        found.setdefault(openid, []).append(number)
    return found


def check_stored(pushes: list[Push], tickets: dict[str, list[str]], *, all_stored: bool = True) -> None:
    """Every receipt ever given exists and belongs to its resident; nobody has two tickets; with `all_stored`,
    every push ended with exactly one ticket."""
    numbers = {n for ns in tickets.values() for n in ns}
    lies = [(p.openid, n) for p in pushes for n in p.numbers if n not in numbers]
    assert not lies, f"receipts given for tickets that are not stored: {lies[:10]}"
    twice = {o: ns for o, ns in tickets.items() if len(ns) > 1}
    assert not twice, f"residents with more than one ticket: {dict(list(twice.items())[:10])}"
    for p in pushes:
        assert len(p.numbers) <= 1, f"{p.openid} was given different numbers: {p.numbers}"
        if p.numbers:
            assert tickets.get(p.openid) == list(p.numbers), (p.openid, p.numbers, tickets.get(p.openid))
    if all_stored:
        missing = [p.openid for p in pushes if len(tickets.get(p.openid, [])) != 1]
        assert not missing, f"pushes not stored exactly once: {missing[:10]}"
