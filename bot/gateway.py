"""The WeChat gateway: verify a push, decrypt it in safe mode, parse it, and render the reply.

Everything that can be wrong with a request is turned into `Rejected` with the HTTP status to answer.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree

from bot.signing import aes_cipher, encrypt_reply, signature, signature_matches, xml_message
from handlers.types import Inbound


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True, slots=True)
class Push:
    inbound: Inbound
    account: str  # the official account's original id (ToUserName), the sender of our reply
    encrypted: bool


class Gateway:
    def __init__(self, token: str, appid: str = "", aes_key: str | None = None, *,
                 freshness_s: float = 300, clock: Callable[[], float] = time.time) -> None:
        self._token, self._appid, self._aes_key = token, appid, aes_key
        self._cipher = aes_cipher(aes_key) if aes_key else None
        self._freshness_s, self._clock = freshness_s, clock

    def verify_url(self, query: Mapping[str, str]) -> str:
        """GET URL check: echo `echostr` when the signature is right."""
        self._check_signature(query)
        return query.get("echostr", "")

    def open(self, query: Mapping[str, str], body: bytes) -> Push:
        if query.get("encrypt_type", "raw") == "aes":
            xml = self._decrypt(query, body)
            encrypted = True
        else:
            self._check_signature(query)
            xml = _text(body)
            encrypted = False
        data = parse_xml(xml)
        if not _field(data, "MsgType", 16):
            raise Rejected(400, "not a WeChat push: MsgType missing")
        if not _field(data, "FromUserName", 64):
            raise Rejected(400, "not a WeChat push: FromUserName missing")
        return Push(_inbound(data), _field(data, "ToUserName", 64), encrypted)

    def render_reply(self, push: Push, text: str, query: Mapping[str, str]) -> str:
        xml = xml_message({"ToUserName": push.inbound.openid, "FromUserName": push.account,
                           "CreateTime": int(self._clock()), "MsgType": "text", "Content": text})
        if not push.encrypted:
            return xml
        return encrypt_reply(self._token, self._appid, self._aes_key, xml, str(int(self._clock())),
                             query.get("nonce", ""))

    def _check_fresh(self, query: Mapping[str, str]) -> str:
        timestamp = query.get("timestamp", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise Rejected(403, "missing or malformed timestamp")
        if abs(self._clock() - int(timestamp)) > self._freshness_s:
            raise Rejected(403, "stale timestamp: possibly a replay")
        return timestamp

    def _check_signature(self, query: Mapping[str, str]) -> None:
        timestamp = self._check_fresh(query)
        expected = signature(self._token, timestamp, query.get("nonce", ""))
        if not signature_matches(expected, query.get("signature", "")):
            raise Rejected(403, "bad signature")

    def _decrypt(self, query: Mapping[str, str], body: bytes) -> str:
        if self._cipher is None:
            raise Rejected(400, "safe mode is not configured (LINLI_WECHAT_AES_KEY)")
        timestamp = self._check_fresh(query)
        encrypted = parse_xml(_text(body)).get("Encrypt")
        if not isinstance(encrypted, str):
            raise Rejected(400, "malformed envelope")
        expected = signature(self._token, timestamp, query.get("nonce", ""), encrypted)
        if not signature_matches(expected, query.get("msg_signature", "")):
            raise Rejected(403, "bad msg_signature")
        try:
            return _text(self._cipher.decrypt(encrypted, self._appid))
        except Exception:  # wechatpy raises several kinds for bad padding, length or appid
            raise Rejected(400, "cannot decrypt") from None


_NESTED = object()  # a field with elements or attributes inside, or repeated: `_field` refuses to read it


def parse_xml(xml: str) -> dict:
    """The fields of a push (or of the safe-mode envelope): {tag: text stripped, or None when empty}.

    The standard library's C parser builds this in less than half the time xmltodict (which wechatpy's
    `parse_message` uses) needs. Any DTD is refused before parsing, so no entity is ever declared or expanded:
    a push never has one (expat would not fetch an external entity anyway)."""
    if "<!DOCTYPE" in xml:
        raise Rejected(400, "malformed XML: a DTD is not allowed")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise Rejected(400, f"malformed XML: {exc}") from None
    if root.tag != "xml":
        raise Rejected(400, "not a WeChat push: the root element is not <xml>")
    data: dict = {}
    for child in root:
        if len(child) or child.attrib or child.tag in data:
            data[child.tag] = _NESTED
        else:
            data[child.tag] = child.text.strip() or None if child.text else None
    return data


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None


def dedupe_key(data: dict) -> str:
    """MsgId for messages; sender + CreateTime + Event for events, which have no MsgId.

    EventKey joins the event key so that two different menu clicks within one second stay two events.
    """
    source, created = _field(data, "FromUserName", 64), _field(data, "CreateTime", 16)
    if data.get("MsgType") == "event":
        return f"e:{source}:{created}:{_field(data, 'Event', 40)}:{_field(data, 'EventKey', 128)}"[:128]
    if msg_id := _field(data, "MsgId", 40):
        return f"m:{msg_id}"
    return f"m:{source}:{created}:{_field(data, 'MsgType', 16)}"


_HANDLED = {"text", "event", "image", "voice", "video", "shortvideo", "location"}


def _inbound(data: dict) -> Inbound:
    created = _field(data, "CreateTime", 16)
    at = datetime.now(UTC)
    if created.isascii() and created.isdigit():
        try:
            at = datetime.fromtimestamp(int(created), UTC)
        except (ValueError, OverflowError, OSError):  # up to 16 digits: far beyond the year 9999
            pass
    kind = _field(data, "MsgType", 16).lower()
    return Inbound(
        openid=_field(data, "FromUserName", 64),
        kind=kind if kind in _HANDLED else "unhandled",
        received_at=at.replace(tzinfo=None),
        dedupe_key=dedupe_key(data),
        text=_field(data, "Content", 2000) or _field(data, "Recognition", 2000),
        event=_field(data, "Event", 40).lower(),
        event_key=_field(data, "EventKey", 128),
        media_id=_field(data, "MediaId", 200),
        pic_url=_field(data, "PicUrl", 500),
        latitude=_coordinate(_field(data, "Location_X", 32) or _field(data, "Latitude", 32)),
        longitude=_coordinate(_field(data, "Location_Y", 32) or _field(data, "Longitude", 32)),
        label=_field(data, "Label", 200),
    )


def _field(data: dict, name: str, limit: int) -> str:
    """A text field of the push, cut to what we store; nested or repeated elements are malformed."""
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected(400, f"malformed field {name}")
    return value[:limit]


def _coordinate(value: str) -> float | None:
    try:
        f = float(value)
    except ValueError:
        return None
    return f if -180 <= f <= 180 else None
