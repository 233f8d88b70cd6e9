"""Plain values passed between the gateway and the handlers: no XML, HTTP or WeChat here."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message or event from a resident, already verified and parsed by the gateway."""

    openid: str
    kind: str  # text, image, voice, location, video, link, event, ...
    received_at: datetime
    dedupe_key: str
    text: str = ""  # text content, or the speech Recognition of a voice message
    event: str = ""  # subscribe, unsubscribe, click, view, scan, location ...
    event_key: str = ""
    media_id: str = ""
    pic_url: str = ""
    latitude: float | None = None
    longitude: float | None = None
    label: str = ""  # a location's address label


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for someone other than the sender, delivered later through the outbox."""

    openid: str
    text: str


@dataclass(slots=True)
class Outcome:
    """What a handler decided: the passive reply, and whether it must be stored before replying."""

    reply: str
    notices: list[Notice] = field(default_factory=list)
