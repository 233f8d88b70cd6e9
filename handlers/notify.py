"""Notices to people other than the sender: outbox rows written in the same unit as the change.

The sender (bot/sender.py) delivers them later through the WeChat API, so a notice is never lost
between a committed change and a failed send.
"""
from __future__ import annotations

from datetime import datetime

from storage.models import Outbox
from storage.writer import Unit


def notify(unit: Unit, openid: str, text: str, now: datetime, ticket_id: int | None = None) -> None:
    unit.add(Outbox, openid=openid, text=text, ticket_id=ticket_id, status="pending", attempts=0,
             next_attempt_at=now, created_at=now, last_error="")


def mask_phone(phone: str) -> str:
    """138****5678: enough for staff to recognise a number, not to copy it."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 7 else "****"
