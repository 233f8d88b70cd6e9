"""Console login without passwords: one-time links that start a session; sessions the server can end.

In the chat: `后台` sends a staff member their link, `退出后台` ends all their sessions (this module's router);
`linli console link --name NAME` makes one from the CLI; the web console (bot/web) spends links and checks
sessions with the functions below.

A link carries a random token; only its SHA-256 is stored, with the person, and it works once within
LINK_MINUTES (a guarded UPDATE decides: two clicks, one session). The session cookie (encrypted, see
bot/web/__init__.py) only names a server-side session row, checked on every request, so `end_sessions`
(the chat's `退出后台`) ends every session of a person at once, and an expired or ended one is refused
even if its cookie is still around.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handlers.routing import Router, Turn
from handlers.types import Outcome
from storage.accounts import staff_roles
from storage.console import console_roles
from storage.models import ConsoleLink, ConsoleSession, Staff

LINK_MINUTES = 10
LOGIN_PATH = "/console/login"


class NoConsoleRole(Exception):
    """This person holds no role that has a console."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _sessions(engine_or_sessions: AsyncEngine | async_sessionmaker) -> async_sessionmaker:
    from storage.db import sessionmaker

    return sessionmaker(engine_or_sessions) if isinstance(engine_or_sessions, AsyncEngine) else engine_or_sessions


async def make_login_link(engine_or_sessions: AsyncEngine | async_sessionmaker, openid: str, now: datetime,
                          public_url: str) -> str:
    """A one-time console link for this staff member (what `后台` sends and `linli console link` prints).
    Raises NoConsoleRole for someone without an active console role."""
    token = secrets.token_urlsafe(32)
    async with _sessions(engine_or_sessions)() as session, session.begin():
        if not console_roles(await staff_roles(session, openid)):
            raise NoConsoleRole(openid)
        session.add(ConsoleLink(token_hash=_hash(token), openid=openid, created_at=now,
                                expires_at=now + timedelta(minutes=LINK_MINUTES)))
    return f"{public_url}{LOGIN_PATH}?token={token}"


async def staff_openids_named(session: AsyncSession, name: str) -> list[str]:
    """The distinct people whose active staff roles carry this name (the CLI finds staff by name)."""
    rows = await session.execute(select(Staff.openid).where(Staff.name == name, Staff.active.is_(True))
                                 .distinct().order_by(Staff.openid))
    return list(rows.scalars())


@dataclass(frozen=True)
class Started:
    session_id: str  # goes into the cookie
    openid: str


async def use_login_link(sessions: async_sessionmaker, token: str, now: datetime, hours: float) -> Started | None:
    """Spend a link and open a session; None when the link is unknown, used or expired."""
    token_hash = _hash(token)
    async with sessions() as session, session.begin():
        spent = await session.execute(update(ConsoleLink).where(
            ConsoleLink.token_hash == token_hash, ConsoleLink.used_at.is_(None), ConsoleLink.expires_at > now)
            .values(used_at=now))
        if spent.rowcount != 1:
            return None
        openid = (await session.execute(select(ConsoleLink.openid).where(
            ConsoleLink.token_hash == token_hash))).scalar_one()
        session_id = secrets.token_urlsafe(32)
        session.add(ConsoleSession(id_hash=_hash(session_id), openid=openid, created_at=now,
                                   expires_at=now + timedelta(hours=hours)))
    return Started(session_id, openid)


async def session_staff(session: AsyncSession, session_id: str, now: datetime) -> tuple[str, list[Staff]] | None:
    """(openid, console roles) of a live session; None when it is unknown, ended, expired, or its person holds
    no console role any more."""
    row = await session.get(ConsoleSession, _hash(session_id))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    roles = console_roles(await staff_roles(session, row.openid))
    return (row.openid, roles) if roles else None


async def end_sessions(engine_or_sessions: AsyncEngine | async_sessionmaker, openid: str, now: datetime) -> int:
    """End every live console session of this person (`退出后台`); returns how many were ended."""
    async with _sessions(engine_or_sessions)() as session, session.begin():
        ended = await session.execute(update(ConsoleSession).where(
            ConsoleSession.openid == openid, ConsoleSession.ended_at.is_(None), ConsoleSession.expires_at > now)
            .values(ended_at=now))
    return ended.rowcount


async def end_session(sessions: async_sessionmaker, session_id: str, now: datetime) -> None:
    """Log out of this one session (the console's own 退出 button)."""
    async with sessions() as session, session.begin():
        await session.execute(update(ConsoleSession).where(
            ConsoleSession.id_hash == _hash(session_id), ConsoleSession.ended_at.is_(None)).values(ended_at=now))


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


# ---- the chat's side ----------------------------------------------------------------------------------------
router = Router("console")


@router.command("后台", "网页后台", "后台登录", "登录后台")
async def send_link(turn: Turn) -> Outcome:
    ctx = turn.ctx
    try:
        url = await make_login_link(ctx.sessions, turn.openid, ctx.now(), ctx.public_url)
    except NoConsoleRole:
        return Outcome("网页后台只给社区工作人员用。如需反映问题，直接打字告诉我就行。")
    # No unit: the reply (which carries the token) is not kept in the database, only in the shared state for
    # WeChat's retries (minutes); the database keeps the token's hash alone.
    return Outcome(f"后台登录链接（{LINK_MINUTES}分钟内有效，只能用一次，请勿转发）：\n{url}\n"
                   "用完想退出所有登录，回复“退出后台”。")


@router.command("退出后台", "注销后台")
async def end_all(turn: Turn) -> Outcome:
    ended = await end_sessions(turn.ctx.sessions, turn.openid, turn.ctx.now())
    return Outcome(f"已退出网页后台（{ended}处登录）。" if ended else "您现在没有登录网页后台。")
