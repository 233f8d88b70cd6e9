"""Repeats and hot spots.

A resident repeating an open complaint (same category, similar words) is shown the progress of the ticket
they already have. Different households reporting the same thing in one grid within a window are linked
into a cluster (the handler sees "N 户反映"); a cluster that grows past a threshold is put to the
residents' committee as a candidate issue (议题) for deliberation.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.ticket_rules import OPEN
from storage.models import Cluster, Ticket

REPEAT_SIMILARITY = 0.4


def bigrams(text: str) -> set[str]:
    chars = [c for c in text if not c.isspace() and c not in "，。！？,.!?、；;：:"]
    return {a + b for a, b in zip(chars, chars[1:])} or set(chars)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams: robust to word order and to jieba's splits."""
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y) if x and y else 0.0


def same_matter(keywords_a: str, keywords_b: str) -> bool:
    """Two reports are about the same thing when their deciding keywords overlap."""
    return bool(set(keywords_a.split()) & set(keywords_b.split()))


def repeat_of(open_tickets, text: str):
    """The resident's open ticket (same category) that this message repeats, if any."""
    return next((t for t in open_tickets if similarity(t.text, text) >= REPEAT_SIMILARITY), None)


KEYWORD_OVERLAP = 0.5


def maybe_same(open_tickets, keywords: tuple[str, ...]):
    """An open ticket (same category) that other words may be about: most of their deciding words (two
    characters or more) are the same (门口的路灯不亮了 / 门口路灯还是不亮，都好几天了). Asked, not assumed."""
    mine = {k for k in keywords if len(k.strip("<>")) >= 2}
    if not mine:
        return None
    for t in open_tickets:
        theirs = {k for k in (t.keywords or "").split() if len(k.strip("<>")) >= 2}
        if theirs and len(mine & theirs) / min(len(mine), len(theirs)) >= KEYWORD_OVERLAP:
            return t
    return None


@dataclass
class Link:
    """How a new ticket joins a hot spot: the cluster, and what must be written for it."""

    cluster_id: int
    households: int  # households in the cluster including the new one
    create: bool  # the cluster row is new (its id is the first ticket's id)
    root_ticket_id: int
    propose: bool  # just crossed the threshold


async def find_link(session: AsyncSession, *, grid_id: int | None, household: str, category: str,
                    keywords: str, now: datetime, window: timedelta, threshold: int) -> Link | None:
    if grid_id is None or not keywords:
        return None
    rows = await session.execute(select(Ticket).where(
        Ticket.grid_id == grid_id, Ticket.category == category, Ticket.status.in_(OPEN),
        Ticket.created_at >= now - window).order_by(Ticket.id))
    match = next((t for t in rows.scalars() if same_matter(t.keywords, keywords)), None)
    if match is None:
        return None
    if match.cluster_id is None:
        mates = {household_key(match.household_id, match.openid)}
        cluster = None
    else:
        cluster = await session.get(Cluster, match.cluster_id)
        members = await session.execute(select(Ticket.household_id, Ticket.openid).where(
            Ticket.cluster_id == match.cluster_id))
        mates = {household_key(h, o) for h, o in members.all()}
    if household in mates:
        return None  # the same household again: a repeat, not a second voice
    households = len(mates) + 1
    proposed = cluster is not None and cluster.proposed_at is not None
    return Link(cluster_id=match.cluster_id or match.id, households=households, create=match.cluster_id is None,
                root_ticket_id=match.id, propose=households >= threshold and not proposed)


def household_key(household_id: int | None, openid: str) -> str:
    return f"h{household_id}" if household_id else f"o{openid}"


async def cluster_sizes(session: AsyncSession, cluster_ids: set[int]) -> dict[int, int]:
    if not cluster_ids:
        return {}
    rows = await session.execute(select(Cluster.id, Cluster.households).where(Cluster.id.in_(cluster_ids)))
    return dict(rows.all())


def link_statements(link: Link, ticket_id: int, grid_id: int, category: str, now: datetime):
    """Rows and updates that put a new ticket into the cluster (added to the same unit as the ticket)."""
    inserts, updates = [], []
    if link.create:
        inserts.append((Cluster, dict(id=link.cluster_id, grid_id=grid_id, category=category,
                                      households=link.households, created_at=now, updated_at=now,
                                      proposed_at=now if link.propose else None)))
        updates.append(update(Ticket).where(Ticket.id == link.root_ticket_id).values(cluster_id=link.cluster_id))
    else:
        values = dict(households=link.households, updated_at=now)
        if link.propose:
            values["proposed_at"] = now
        updates.append(update(Cluster).where(Cluster.id == link.cluster_id).values(**values))
    return inserts, updates

