"""A community's rules of order for deliberation (deliberation_settings), over handlers.deliberation_rules'
defaults: co-sign threshold, comment limits, objection window, reminder lead."""
from __future__ import annotations

from dataclasses import fields, replace
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.deliberation_rules import Order
from storage.models import DeliberationSettings

SETTINGS = ("cosign_households", "cosign_percent", "comments_per_day", "comment_chars", "objection_days",
            "remind_hours")
assert set(SETTINGS) <= {f.name for f in fields(Order)}


async def community_order(session: AsyncSession, community_id: int | None) -> Order:
    row = await session.get(DeliberationSettings, community_id) if community_id is not None else None
    if row is None:
        return Order()
    changes = {name: getattr(row, name) for name in SETTINGS if getattr(row, name) is not None}
    if "cosign_percent" in changes:
        changes["cosign_percent"] = Fraction(changes["cosign_percent"])
    return replace(Order(), **changes)


async def set_order(session: AsyncSession, community_id: int, **values) -> Order:
    """Store the given settings (None leaves one as it is); returns the community's order now."""
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    row = await session.get(DeliberationSettings, community_id)
    if row is None:
        row = DeliberationSettings(community_id=community_id)
        session.add(row)
    for name, value in values.items():
        if value is not None:
            setattr(row, name, value)
    await session.flush()
    return await community_order(session, community_id)
