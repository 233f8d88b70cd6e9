"""Plain values passed between the gateway and the handlers: no XML, HTTP or WeChat here."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from storage.writer import Unit


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3 µs more, on every push
class Inbound:
    """One message or event from a resident, already verified and parsed by the gateway. Read-only by
    convention: nothing changes it after the gateway made it."""

    openid: str
    kind: str  # text, image, voice, location, video, link, event, ...
    received_at: datetime  # naive UTC
    dedupe_key: str
    text: str = ""  # text content, or the speech Recognition of a voice message
    event: str = ""  # subscribe, unsubscribe, click, view, scan, location ...
    event_key: str = ""
    media_id: str = ""
    pic_url: str = ""
    latitude: float | None = None
    longitude: float | None = None
    label: str = ""  # a location's address label


@dataclass(slots=True)
class Outcome:
    """What a handler decided.

    `reply` is the passive reply. When `unit` is set, the reply may only be sent after the unit is
    committed (the caller adds the inbound record to it). `after_commit` runs once it is.
    `reply` None means answer WeChat with `success` and show nothing.
    """

    reply: str | None
    unit: Unit | None = None
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    conflict_reply: str | None = None  # the reply when a guard of the unit lost a race (see storage.writer)
