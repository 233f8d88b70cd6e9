"""`linli demo` as a new user meets it: a scripted chat through the stand-in gets a receipt."""
from __future__ import annotations

from bot.demo import run_demo


async def lines(*items):
    for item in items:
        yield item


async def test_demo_chat_gets_a_receipt_and_dedupes_a_retry(tmp_path):
    shown: list[str] = []
    await run_demo(safe=True, port=0, db_file=str(tmp_path / "demo.db"), out=shown.append,
                   input_lines=lines("楼下的垃圾三天没人收了，味道很大", "/retry", "我的诉求", "/quit"))
    text = "\n".join(shown)
    assert text.count("编号") >= 2  # the receipt, and the same receipt for the retry
    receipts = [s for s in shown if "编号" in s]
    assert receipts[0] == receipts[1]
    assert "您最近反映的事" in text
