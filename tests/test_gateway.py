"""Hostile and broken requests get a clear status, store nothing, and cost little."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.gateway import Gateway, Rejected, parse_flat, parse_tree
from bot.signing import sign_push, xml_message
from storage.models import InboundMessage, Ticket
from tests.conftest import AES_KEY, APPID, TOKEN, reply_text

OFFICIAL_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2L"
    "dJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6u"
    "x5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnif"
    "JpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQL"
    "Czpu9GhglF2PE="
)


def test_official_safe_mode_sample_decrypts():
    # The sample is from 2014: only this test widens the freshness window to reach it.
    gateway = Gateway("spamtest", "wx2c2769f8efd9abc2", AES_KEY, freshness_s=20 * 365 * 86400)
    body = f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{OFFICIAL_ENCRYPT}]]></Encrypt></xml>"
    query = {"timestamp": "1409735669", "nonce": "1320562132", "encrypt_type": "aes",
             "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa"}
    push = gateway.open(query, body.encode())
    assert push.encrypted and push.inbound.text == "abcdteT"
    assert push.inbound.dedupe_key == "m:oyORnuP8q7ou2gfYjqLzSIWZf0rs:6054768590064713728"  # keyed by sender
    assert push.inbound.openid == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    with pytest.raises(Rejected) as stale:  # the default window refuses the same capture
        Gateway("spamtest", "wx2c2769f8efd9abc2", AES_KEY).open(query, body.encode())
    assert stale.value.status == 403


async def stored(service) -> int:
    async with service.ctx.sessions() as s:
        tickets = (await s.execute(select(func.count()).select_from(Ticket))).scalar_one()
        inbound = (await s.execute(select(func.count()).select_from(InboundMessage))).scalar_one()
    return tickets + inbound


def text_xml(wechat, text="垃圾没人收"):
    return wechat.xml("resident-x", "text", Content=text)


async def test_bad_and_missing_signatures_are_refused(wechat, client, service):
    query, body = sign_push(TOKEN, text_xml(wechat))
    for broken in ({**query, "signature": "f" * 40}, {k: v for k, v in query.items() if k != "signature"},
                   {**query, "nonce": "other"}, {**query, "signature": "签名"}):
        resp = await client.post("/wechat", params=broken, data=body.encode())
        assert resp.status == 403
    assert await stored(service) == 0


async def test_a_captured_push_cannot_be_replayed_later(wechat, client, clock, service):
    query, body = sign_push(TOKEN, text_xml(wechat), timestamp=int(clock()))
    clock.travel(301)
    resp = await client.post("/wechat", params=query, data=body.encode())
    assert resp.status == 403
    for ts in ("", "abc", "1" * 40, "-5"):
        resp = await client.post("/wechat", params={**query, "timestamp": ts}, data=body.encode())
        assert resp.status == 403
    assert await stored(service) == 0


async def test_oversized_body_is_413(wechat, client, service):
    xml = text_xml(wechat, "很" * 40_000)  # 120 KB of UTF-8, over the 64 KiB limit
    query, body = sign_push(TOKEN, xml)
    resp = await client.post("/wechat", params=query, data=body.encode())
    assert resp.status == 413
    assert await stored(service) == 0


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + ']><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><MsgType>text</MsgType>'
    "<Content>&lol9;</Content><MsgId>1</MsgId></xml>"
)
XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       "<xml><FromUserName>b</FromUserName><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>")


@pytest.mark.parametrize("body", [
    "<xml><ToUserName>a</ToUserName",  # truncated
    "not xml at all",
    BILLION_LAUGHS,
    XXE,
    "<xml><FromUserName>b</FromUserName><Content>hi</Content></xml>",  # no MsgType
    "<xml>just text</xml>",
    "<xml><MsgType><a>1</a></MsgType><FromUserName>b</FromUserName></xml>",  # nested
    "<xml><MsgType>text</MsgType><FromUserName>b</FromUserName><Content>a</Content><Content>b</Content></xml>",
    "<xml><MsgType>text</MsgType><Content>no sender</Content><MsgId>3</MsgId></xml>",
    "",
])
async def test_malformed_or_hostile_xml_is_400_and_fast(body, client, service):
    query, _ = sign_push(TOKEN, "")
    started = time.perf_counter()
    resp = await client.post("/wechat", params=query, data=body.encode())
    assert resp.status == 400
    assert time.perf_counter() - started < 1.0
    assert await stored(service) == 0


async def test_non_utf8_body_is_400(client):
    query, _ = sign_push(TOKEN, "")
    resp = await client.post("/wechat", params=query, data=b"<xml>\xff\xfe</xml>")
    assert resp.status == 400


async def test_unhandled_message_types_get_success(wechat, service):
    link = wechat.xml("resident-x", "link", Title="t", Description="d", Url="http://example.com")
    resp = await wechat.post(link)
    assert resp.status == 200 and await resp.text() == "success"
    unsubscribe = wechat.xml("resident-x", "event", Event="unsubscribe")
    resp = await wechat.post(unsubscribe)
    assert await resp.text() == "success"
    assert await stored(service) == 0


async def test_safe_mode_round_trip_encrypts_the_reply(wechat, service):
    reply = await wechat.send("resident-s", "小区里的路灯坏了好几盏", safe=True)
    assert "编号" in reply
    resp = await wechat.post(wechat.xml("resident-s", "text", Content="路灯"), safe=True)
    body = await resp.text()
    assert "<Encrypt>" in body and "路灯" not in body and "<MsgSignature>" in body


async def test_safe_mode_with_a_bad_msg_signature_or_ciphertext(wechat, client, service):
    query, body = sign_push(TOKEN, text_xml(wechat), appid=APPID, aes_key=AES_KEY)
    resp = await client.post("/wechat", params={**query, "msg_signature": "0" * 40}, data=body.encode())
    assert resp.status == 403
    from bot.signing import signature, xml_message
    garbage = "QUJDREVGRw=="
    forged = {**query, "msg_signature": signature(TOKEN, query["timestamp"], query["nonce"], garbage)}
    resp = await client.post("/wechat", params=forged, data=xml_message({"Encrypt": garbage}).encode())
    assert resp.status == 400
    assert await stored(service) == 0


async def test_safe_mode_push_without_a_configured_key_is_refused():
    gateway = Gateway(TOKEN, APPID, None)
    query, body = sign_push(TOKEN, "<xml/>", appid=APPID, aes_key=AES_KEY)
    with pytest.raises(Rejected) as rejected:
        gateway.open(query, body.encode())
    assert rejected.value.status == 400


async def test_retry_after_state_loss_stores_nothing_new(wechat, service):
    xml = wechat.xml("resident-r", "text", Content="单元门的门禁坏了进不去")
    first = reply_text(await (await wechat.post(xml)).text())
    key = next(k for k in [f"m:{xml.split('<MsgId>')[1].split('<')[0]}"])
    for prefix in ("claim:", "reply:"):  # what a Redis restart forgets
        await service.ctx.state.delete(prefix + key)
    again = reply_text(await (await wechat.post(xml)).text())
    assert again == first
    async with service.ctx.sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Ticket))).scalar_one() == 1


# The flat-push fast path (bot.gateway.parse_flat) must read every document it accepts exactly as the XML
# parser does, and must accept the pushes WeChat sends, or it would be dead weight.
_AWKWARD = st.sampled_from(["\r", "<", ">", "&", "&amp;", "]", "]]", "]]>", "[", "!", "\x00", "\x0b", "\x1f",
                            "\ufffe", "\U0001f600", "<![CDATA[", "x]]>y", "</a>", "<b>"])
_PLAIN_TEXT = st.text(st.sampled_from("a中 \t\n1.-_"), max_size=8)
_VALUE_TEXT = st.lists(st.one_of(_PLAIN_TEXT, _PLAIN_TEXT, _PLAIN_TEXT, st.text(max_size=3), _AWKWARD),
                       max_size=3).map("".join)
_TAGS = st.sampled_from(["Content", "MsgId", "A", "_x", "a1", "Location_X", "Content"] * 3 + ["1a", "a-b", "中", "xml", "a:b"])


def _mostly(common, *rare):
    """The common choice three times in four: most documents must get far enough to test the fast path."""
    return st.sampled_from([common] * (3 * len(rare)) + list(rare))


@st.composite
def _documents(draw):
    space = _mostly("", " ", "\n", "\t ", "\r\n", "x")
    parts = [draw(space), draw(_mostly("<xml>", "<xml >", "<XML>", "<?xml version='1.0'?><xml>"))]
    for _ in range(draw(st.integers(0, 4))):
        tag, text = draw(_TAGS), draw(_VALUE_TEXT)
        close = draw(_mostly(tag, "other", tag + " "))
        body = draw(st.sampled_from([f"<![CDATA[{text}]]>", text, f"<![CDATA[{text}]]><![CDATA[{text}]]>",
                                     f"<inner>{text}</inner>", "", f"<![CDATA[{text}]]>", text]))
        parts += [draw(space), f"<{tag}>{body}</{close}>"]
    parts += [draw(space), draw(_mostly("</xml>", "", "</xml><xml>")), draw(space)]
    return "".join(parts)


_PUSH_FIELDS = st.dictionaries(st.sampled_from(["ToUserName", "FromUserName", "Content", "Event", "Label", "X"]),
                               st.one_of(_VALUE_TEXT, st.integers(0, 10**12)), max_size=6)


@given(st.one_of(_documents(), _PUSH_FIELDS.map(xml_message)))
@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
def test_the_flat_push_reader_agrees_with_the_xml_parser(document):
    flat = parse_flat(document)
    if flat is not None:
        assert flat == parse_tree(document)


@given(_PUSH_FIELDS)
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_pushes_in_wechat_s_shape_take_the_flat_path(fields):
    document = xml_message(fields)
    try:
        tree = parse_tree(document)
    except Rejected:  # characters XML forbids: the fast path must not take it either
        assert parse_flat(document) is None
        return
    texts = [str(v) for v in fields.values()]
    if not any("]]>" in t or "\r" in t for t in texts):  # a split CDATA section or a \r: the parser reads those
        assert parse_flat(document) == tree


def test_wechat_pushes_take_the_flat_path():
    text = xml_message({"ToUserName": "gh_1", "FromUserName": "o1", "CreateTime": 1700000000, "MsgType": "text",
                        "Content": " 楼道的灯坏了 <b>&amp;] ", "MsgId": 123})
    event = ("<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n  <CreateTime>1700000000</CreateTime>\n"
             "  <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\n</xml>\n")
    for document in (text, event):
        assert parse_flat(document) is not None
        assert parse_flat(document) == parse_tree(document)
    assert parse_flat(text)["Content"] == "楼道的灯坏了 <b>&amp;]"
    assert parse_flat("<xml><A>&amp;</A></xml>") is None  # an entity: the parser reads it


@given(st.text(max_size=30), st.text(max_size=30), st.integers(0, 2**40), _VALUE_TEXT)
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_the_reply_template_writes_what_xml_message_writes(to, sender, created, content):
    from bot.signing import text_reply

    fields = {"ToUserName": to, "FromUserName": sender, "CreateTime": created, "MsgType": "text", "Content": content}
    assert text_reply(to, sender, created, content) == xml_message(fields)
