"""`linli demo` as a new user meets it: a scripted chat through the stand-in gets a receipt."""
from __future__ import annotations

import re

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


async def test_demo_walks_a_wish_from_zhang_to_liu_and_back(tmp_path):
    """README's wish walk-through, line by line: 张阿姨's wish, 陈主任's review, 刘党员's claim and 圆梦, her
    confirmation; the demo's seeded wishes are there too."""
    shown: list[str] = []

    def number() -> str:
        reply = next(s for s in reversed(shown) if s.startswith("公众号："))
        return re.search(r"编号：(\d{6,})", reply).group(1)

    async def script():
        yield "微心愿 想请人帮忙换一下厨房的灯泡"
        n = number()
        for line in ("/image", "/as 陈主任", "待审核", f"审核 {n} 通过 便民服务", "/as 刘党员", "心愿墙",
                     f"认领 {n}", f"回复 {n} 阿姨好，周六上午来换，方便吗？", f"圆梦 {n} 换好了新的节能灯泡",
                     "1小时", "/image", "/as 张阿姨", "1", "/as 刘党员", "我的服务", "/quit"):
            yield line

    await run_demo(safe=False, port=0, db_file=str(tmp_path / "demo.db"), out=shown.append, input_lines=script())
    # a typed line ("名字> …") -> the account's reply printed after it (a notice may come in between)
    replies = {line: next(r for r in shown[i + 1:] if r.startswith("公众号："))
               for i, line in enumerate(shown) if re.match(r"^\S+> ", line) and not line.endswith("/quit")}

    n = re.search(r"编号：(\d{6,})", replies["张阿姨> 微心愿 想请人帮忙换一下厨房的灯泡"]).group(1)
    assert f"编号：{n}" in replies["张阿姨> /image"] and "照片" in replies["张阿姨> /image"]
    assert n in replies["陈主任> 待审核"] and "视频通话" in replies["陈主任> 待审核"]  # a seeded wish waits too
    assert "已通过" in replies[f"陈主任> 审核 {n} 通过 便民服务"]
    wall = replies["刘党员> 心愿墙"]
    assert n in wall and "便民服务" in wall and "3栋" in wall and "501" not in wall and "老花镜" in wall
    assert "认领成功" in replies[f"刘党员> 认领 {n}"]
    assert "话已经带到" in replies[f"刘党员> 回复 {n} 阿姨好，周六上午来换，方便吗？"]
    assert "多长时间" in replies[f"刘党员> 圆梦 {n} 换好了新的节能灯泡"]
    assert "已上报完成" in replies["刘党员> 1小时"] and f"编号：{n}" in replies["刘党员> /image"]
    assert "圆梦" in replies["张阿姨> 1"] and f"编号：{n}" in replies["张阿姨> 1"]
    assert n in replies["刘党员> 我的服务"] and "1小时" in replies["刘党员> 我的服务"]
