"""Notices to people other than the sender: outbox rows written in the same unit as the change.

The sender (bot/sender.py) delivers them later through the WeChat API, so a notice is never lost
between a committed change and a failed send. A notice may be about something (a ticket, a wish, a vote):
its `Subject` names it, with the number and the status word a template message shows.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from storage.models import Outbox
from storage.writer import Unit


class Subject(NamedTuple):
    kind: str  # ticket, wish, proposal, vote …
    id: int
    number: str  # as the person reads it (with its check digit)
    phrase: str  # its status in at most 5 characters (a template field), e.g. 待签收

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


def notify(unit: Unit, openid: str, text: str, now: datetime, *, about: Subject | None = None) -> None:
    ticket_id = about.id if about is not None and about.kind == "ticket" else None
    unit.add(Outbox, openid=openid, text=text, ticket_id=ticket_id, about=about.key if about else "",
             ref=about.number if about else "", phrase=about.phrase if about else "", status="pending", attempts=0,
             next_attempt_at=now, created_at=now, last_error="")


def mask_phone(phone: str) -> str:
    """138****5678: enough for staff to recognise a number, not to copy it."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 7 else "****"
