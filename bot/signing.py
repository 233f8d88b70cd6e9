"""WeChat push signing, shared by the gateway (to verify) and the local stand-in (to sign).

signature     = sha1(sorted(token, timestamp, nonce))             plain pushes and the GET URL check
msg_signature = sha1(sorted(token, timestamp, nonce, Encrypt))    safe mode (encrypt_type=aes)
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from xml.sax.saxutils import escape

from wechatpy.crypto import PrpCrypto


def signature(*parts: str) -> str:
    # surrogatepass: a query value with a lone surrogate (not valid UTF-8) must give a mismatch, not a crash
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8", "surrogatepass")).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time comparison, so timing reveals nothing about the expected value."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def aes_cipher(encoding_aes_key: str) -> PrpCrypto:
    """The AES-256-CBC cipher of WeChat's safe mode; key = base64(EncodingAESKey + '=')."""
    import base64

    return PrpCrypto(base64.b64decode(encoding_aes_key + "="))


def xml_message(fields: dict[str, str | int | float]) -> str:
    """A push or reply XML document; text values go in CDATA like WeChat's own."""
    out = ["<xml>"]
    for name, value in fields.items():
        if isinstance(value, str):
            out.append(f"<{name}><![CDATA[{_cdata(value)}]]></{name}>")
        else:
            out.append(f"<{name}>{escape(str(value))}</{name}>")
    out.append("</xml>")
    return "".join(out)


def text_reply(to: str, sender: str, created: int, content: str) -> str:
    """A passive text reply: xml_message of these fields, written in one go (every push is answered so)."""
    return (f"<xml><ToUserName><![CDATA[{_cdata(to)}]]></ToUserName><FromUserName><![CDATA[{_cdata(sender)}]]>"
            f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{_cdata(content)}]]></Content></xml>")


def _cdata(value: str) -> str:
    return value.replace("]]>", "]]]]><![CDATA[>")


def sign_push(token: str, xml: str, *, appid: str = "", aes_key: str | None = None,
              timestamp: int | None = None, nonce: str | None = None, openid: str = "") -> tuple[dict[str, str], str]:
    """Query parameters and body of a push as WeChat sends it (encrypted when aes_key is given)."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    query = {"signature": signature(token, ts, nonce), "timestamp": ts, "nonce": nonce}
    if openid:
        query["openid"] = openid
    if aes_key is None:
        return query, xml
    encrypted = aes_cipher(aes_key).encrypt(xml, appid)
    encrypted = encrypted.decode() if isinstance(encrypted, bytes) else encrypted
    query |= {"encrypt_type": "aes", "msg_signature": signature(token, ts, nonce, encrypted)}
    return query, xml_message({"ToUserName": "", "Encrypt": encrypted})


def encrypt_reply(token: str, appid: str, aes_key: str, xml: str, timestamp: str, nonce: str) -> str:
    """The safe-mode envelope WeChat expects around a passive reply."""
    encrypted = aes_cipher(aes_key).encrypt(xml, appid)
    encrypted = encrypted.decode() if isinstance(encrypted, bytes) else encrypted
    return xml_message({"Encrypt": encrypted, "MsgSignature": signature(token, timestamp, nonce, encrypted),
                        "TimeStamp": int(timestamp), "Nonce": nonce})
