"""The WeChat gateway: verify a push, decrypt it in safe mode, parse it, and render the reply.

Everything that can be wrong with a request is turned into `Rejected` with the HTTP status to answer.
"""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree

from bot.signing import aes_cipher, encrypt_reply, signature, signature_matches, text_reply
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
    # Plain mode: (timestamp:nonce, a digest of the body, seconds the query stays fresh). The signature covers
    # no body, so a signed query seen once may be repeated only with the same body (WeChat's retries do).
    replay: tuple[str, str, float] | None = None


class Gateway:
    def __init__(self, token: str, appid: str = "", aes_key: str | None = None, *,
                 freshness_s: float = 300, clock: Callable[[], float] = time.time, original_id: str = "") -> None:
        self._token, self._appid, self._aes_key = token, appid, aes_key
        self._original_id = original_id  # the account's gh_… id: pushes to another account are refused
        self._cipher = aes_cipher(aes_key) if aes_key else None
        self._freshness_s, self._clock = freshness_s, clock

    def verify_url(self, query: Mapping[str, str]) -> str:
        """GET URL check: echo `echostr` when the signature is right."""
        self._check_signature(query)
        return query.get("echostr", "")

    def open(self, query: Mapping[str, str], body: bytes) -> Push:
        replay = None
        if query.get("encrypt_type", "raw") == "aes":
            xml = self._decrypt(query, body)
            encrypted = True
        else:
            timestamp = self._check_signature(query)
            xml = _text(body)
            encrypted = False
            fresh_for = max(1.0, int(timestamp) + self._freshness_s - self._clock())
            replay = (f"{timestamp}:{query.get('nonce', '')[:64]}",
                      hashlib.blake2b(body, digest_size=12).hexdigest(), fresh_for)
        fields = _fields(parse_xml(xml))
        if not fields["MsgType"]:
            raise Rejected(400, "not a WeChat push: MsgType missing")
        if not fields["FromUserName"]:
            raise Rejected(400, "not a WeChat push: FromUserName missing")
        if self._original_id and fields["ToUserName"] != self._original_id:
            raise Rejected(403, "addressed to another official account (ToUserName)")
        return Push(_inbound(fields), fields["ToUserName"], encrypted, replay)

    def render_reply(self, push: Push, text: str, query: Mapping[str, str]) -> str:
        xml = text_reply(push.inbound.openid, push.account, int(self._clock()), text)
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

    def _check_signature(self, query: Mapping[str, str]) -> str:
        timestamp = self._check_fresh(query)
        expected = signature(self._token, timestamp, query.get("nonce", ""))
        if not signature_matches(expected, query.get("signature", "")):
            raise Rejected(403, "bad signature")
        return timestamp

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


_NESTED = object()  # a field with elements or attributes inside, or repeated: `_fields` refuses to read it

# A push as WeChat writes it: <xml>, then flat fields, each plain text or one CDATA section. Nearly every push
# has this shape and is read with two regular-expression scans, in half the time the C parser takes (most of
# which is making a parser). Anything else (entities, attributes, nested or empty elements, a declaration, comments, \r,
# characters XML forbids, a "]" outside CDATA) goes to the parser, which decides; tests/test_gateway.py checks
# that both read every flat push alike.
_TAG = "[A-Za-z_][A-Za-z0-9_]*"
_BAD = "\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff"  # \r and the characters XML 1.0 forbids
# Possessive repeats: no backtracking state, so a 64 KiB field costs neither time nor memory to match.
_CDATA = f"<!\\[CDATA\\[([^\\]{_BAD}]*+(?:\\](?!\\]>)[^\\]{_BAD}]*+)*+)\\]\\]>"
_PLAIN = f"([^<&\\]{_BAD}]*+)"
_SPACE = "[ \t\n]*+"
_FIELD = re.compile(f"<({_TAG})>(?:{_CDATA}|{_PLAIN})</\\1>")
_FLAT_PUSH = re.compile(f"{_SPACE}<xml>((?:{_SPACE}<({_TAG})>(?:{_CDATA}|{_PLAIN})</\\2>)*+){_SPACE}</xml>{_SPACE}")


def parse_xml(xml: str) -> dict:
    """The fields of a push (or of the safe-mode envelope): {tag: text stripped, or None when empty}."""
    data = parse_flat(xml)
    return data if data is not None else parse_tree(xml)


def parse_flat(xml: str) -> dict | None:
    """A flat push read by regular expressions (see _FLAT_PUSH); None for anything else."""
    flat = _FLAT_PUSH.fullmatch(xml)
    if flat is None:
        return None
    data: dict = {}
    for tag, cdata, plain in _FIELD.findall(flat.group(1)):
        data[tag] = _NESTED if tag in data else (cdata or plain).strip() or None
    return data


def parse_tree(xml: str) -> dict:
    """Any push, read by the standard library's C parser (less than half the time of xmltodict, which
    wechatpy's `parse_message` uses). Any DTD is refused before parsing, so no entity is ever declared or
    expanded: a push never has one (expat would not fetch an external entity anyway)."""
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


# The fields Linli reads, and how many characters of each it keeps. Identities are never cut: a cut
# FromUserName would be somebody else (WeChat's openids are 28 characters, original ids 15).
_IDENTITIES = ("ToUserName", "FromUserName")
_LIMITS = {"ToUserName": 64, "FromUserName": 64, "CreateTime": 16, "MsgType": 16, "MsgId": 40, "Content": 2000,
           "Recognition": 2000, "Event": 40, "EventKey": 128, "MediaId": 200, "PicUrl": 500, "Location_X": 32,
           "Location_Y": 32, "Latitude": 32, "Longitude": 32, "Label": 200}
_ABSENT = dict.fromkeys(_LIMITS, "")


def _fields(data: dict) -> dict[str, str]:
    """The fields Linli reads, cut to what it stores ("" when absent or empty). One of them nested or repeated
    makes the push malformed; other fields may be anything (some events carry nested ones)."""
    out = _ABSENT.copy()
    for name, value in data.items():
        if value is None or (limit := _LIMITS.get(name)) is None:
            continue
        if value is _NESTED:
            raise Rejected(400, f"malformed field {name}")
        if len(value) > limit:
            if name in _IDENTITIES:
                raise Rejected(400, f"{name} is too long to be a WeChat id")
            value = value[:limit]
        out[name] = value
    return out


def dedupe_key(f: dict[str, str]) -> str:
    """Sender + MsgId for messages; sender + CreateTime + Event for events, which have no MsgId.

    The sender is part of every key: a MsgId reused by someone else (forged, or another account's) must never
    return the first person's reply. EventKey joins the event key so that two different menu clicks within
    one second stay two events.
    """
    if f["MsgType"] == "event":
        return f"e:{f['FromUserName']}:{f['CreateTime']}:{f['Event']}:{f['EventKey']}"[:128]
    if f["MsgId"]:
        return f"m:{f['FromUserName']}:{f['MsgId']}"
    return f"m:{f['FromUserName']}:{f['CreateTime']}:{f['MsgType']}"


_HANDLED = {"text", "event", "image", "voice", "video", "shortvideo", "location"}


def _inbound(f: dict[str, str]) -> Inbound:
    created = f["CreateTime"]
    at = None
    if created.isascii() and created.isdigit():
        try:
            at = datetime.fromtimestamp(int(created), UTC)
        except (ValueError, OverflowError, OSError):  # up to 16 digits: far beyond the year 9999
            pass
    kind = f["MsgType"].lower()
    return Inbound(
        openid=f["FromUserName"],
        kind=kind if kind in _HANDLED else "unhandled",
        received_at=(at or datetime.now(UTC)).replace(tzinfo=None),
        dedupe_key=dedupe_key(f),
        text=f["Content"] or f["Recognition"],
        event=f["Event"].lower(),
        event_key=f["EventKey"],
        media_id=f["MediaId"],
        pic_url=f["PicUrl"],
        latitude=_coordinate(f["Location_X"] or f["Latitude"]),
        longitude=_coordinate(f["Location_Y"] or f["Longitude"]),
        label=f["Label"],
    )


def _coordinate(value: str) -> float | None:
    if not value:
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if -180 <= f <= 180 else None
