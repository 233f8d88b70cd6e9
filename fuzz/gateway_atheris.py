"""Coverage-guided fuzzing of the WeChat gateway with atheris (libFuzzer for Python). Optional: not a test.

atheris is not a dependency of the project. Install it beside the venv, not into pyproject:

    .venv/bin/pip install --target /tmp/atheris-pkgs atheris
    PYTHONPATH=/tmp/atheris-pkgs:. .venv/bin/python fuzz/gateway_atheris.py -max_total_time=300 -rss_limit_mb=1024

libFuzzer's own flags follow the script (-runs=N, -max_len=65536, -jobs=2, a corpus directory, ...). Every input
is split into a query and a body and fed to Gateway.open three ways: unsigned, correctly signed (plain), and as a
safe-mode push whose Encrypt comes from the input with a correct msg_signature. Anything but a Push or a
Rejected(400/403), or one call over the time bound, is a crash that libFuzzer saves as crash-<sha1>;
replay one with `python fuzz/gateway_atheris.py crash-<sha1>`.
"""
from __future__ import annotations

import os
import sys
import time

import atheris

with atheris.instrument_imports():
    import xmltodict
    import wechatpy  # noqa: F401  (instrumented for coverage feedback)

    from bot.gateway import Gateway, Push, Rejected
    from bot.signing import signature, xml_message

TOKEN, APPID = "spamtest", "wx2c2769f8efd9abc2"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
NOW = 1_790_000_000
BOUND_S = float(os.environ.get("LINLI_FUZZ_BOUND_S", "0.5"))  # per call, wall time: generous, libFuzzer is slow
GATEWAY = Gateway(TOKEN, APPID, AES_KEY, clock=lambda: NOW)
KEYS = ["signature", "timestamp", "nonce", "encrypt_type", "msg_signature", "echostr"]
SEEDS = [xml_message(fields).encode() for fields in (
    {"ToUserName": "gh", "FromUserName": "o1", "CreateTime": NOW, "MsgType": "text", "Content": "路灯坏了", "MsgId": 1},
    {"ToUserName": "gh", "FromUserName": "o1", "CreateTime": NOW, "MsgType": "event", "Event": "subscribe",
     "EventKey": "qrscene_7"},
    {"ToUserName": "gh", "FromUserName": "o1", "CreateTime": NOW, "MsgType": "location", "Location_X": 23.1,
     "Location_Y": 113.3, "Scale": 20, "Label": "x", "MsgId": 2},
    {"ToUserName": "gh", "FromUserName": "o1", "CreateTime": NOW, "MsgType": "voice", "MediaId": "m",
     "Recognition": "r", "MsgId": 3},
)]


def check(query: dict[str, str], body: bytes) -> None:
    started = time.perf_counter()
    try:
        outcome = GATEWAY.open(query, body)
    except Rejected as r:
        if r.status not in (400, 403):
            raise AssertionError(f"Rejected with status {r.status}") from None
    else:
        assert isinstance(outcome, Push)
    elapsed = time.perf_counter() - started
    if elapsed > BOUND_S and len(body) <= 64 * 1024:
        raise AssertionError(f"Gateway.open took {elapsed * 1000:.0f} ms on {len(body)} bytes")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    query = {k: fdp.ConsumeUnicode(16) for k in KEYS if fdp.ConsumeBool()}
    nonce = fdp.ConsumeUnicode(8)
    if fdp.ConsumeBool():  # splice the fuzz bytes into a real push, so most inputs get deep into the parser
        seed = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
        at = fdp.ConsumeIntInRange(0, len(seed))
        cut = fdp.ConsumeIntInRange(0, len(seed) - at)
        body = seed[:at] + fdp.ConsumeBytes(fdp.remaining_bytes()) + seed[at + cut:]
    else:
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
    check(query, body)  # as it came
    ts = str(NOW)
    signed = {"timestamp": ts, "nonce": nonce, "signature": signature(TOKEN, ts, nonce)}
    check(signed, body)  # past the signature: the XML parser and the field checks
    text = body.decode("utf-8", "replace")
    envelope = xml_message({"ToUserName": "gh", "Encrypt": text}).encode()
    try:
        encrypt = xmltodict.parse(envelope)["xml"]["Encrypt"] or ""
    except Exception:
        return
    safe = {**signed, "encrypt_type": "aes", "msg_signature": signature(TOKEN, ts, nonce, encrypt)}
    check(safe, envelope)  # past msg_signature: base64, AES, padding, length, appid


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
