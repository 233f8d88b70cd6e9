"""Every sentence a resident reads: simplified Chinese, short, numbered choices, no jargon."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))  # China keeps no daylight saving time

WELCOME = (
    "您好，欢迎来到邻里！这里可以：\n"
    "1 反映问题（垃圾、噪音、停车、路灯……）\n"
    "2 我的诉求（看看办到哪一步了）\n"
    "3 查询进度（回复“查询 编号”）\n"
    "4 使用帮助\n"
    "回复数字即可。有问题也可以直接打字、发照片或发语音告诉我。"
)

HELP = (
    "使用方法：\n"
    "· 直接打字说出问题，比如“3栋门口垃圾好几天没人收”\n"
    "· 可以接着发照片、位置或语音，会补充到同一件事里\n"
    "· 回复“我的诉求”看您反映过的事\n"
    "· 回复“查询 编号”看某一件的进度\n"
    "回复数字：1 反映问题  2 我的诉求"
)

HOW_TO_REPORT = "请直接打字告诉我您遇到的问题，说清楚在哪里、什么情况。也可以发照片、位置或语音。"
HOW_TO_QUERY = "请回复“查询”加编号，例如：查询 100007\n不记得编号？回复“我的诉求”。"
SMALLTALK = "不客气，有事随时找我！遇到问题直接打字告诉我就行。回复“帮助”看看能做什么。"
RATE_LIMITED = "您发得有点快，请歇一会儿，一分钟后再发。已经收到的内容不会丢。"
TRY_AGAIN_LATER = "抱歉，系统有点忙，这条消息没有记上。请过两分钟再发一次。"
NOT_UNDERSTOOD = "没太明白您的意思。请说说遇到了什么问题，或回复数字：\n1 反映问题\n2 我的诉求\n4 使用帮助"
NO_TICKETS = "您还没有反映过问题。直接打字告诉我遇到的事就可以。"

ROUTE_NAMES = {
    "grid_worker": "您所在网格的网格员",
    "property": "物业公司",
    "owners_committee": "业主委员会",
    "residents_committee": "居委会",
    "mediation": "人民调解委员会",
    "duty_desk": "社区值班人员",
}

STATUS_NAMES = {
    "submitted": "已受理，等待派单",
    "dispatched": "已派单，等待签收",
    "accepted": "正在办理",
    "resolved": "已办结，等待您评价",
    "closed": "已结束",
    "reopened": "重新办理中",
}

EVENT_NAMES = {
    "created": "提交",
    "attached": "补充材料",
    "categorised": "确认类别",
}


def local_time(at: datetime) -> str:
    return at.replace(tzinfo=timezone.utc).astimezone(CHINA).strftime("%m月%d日 %H:%M")


def hours_text(hours: int) -> str:
    return f"{hours // 24}天" if hours >= 48 and hours % 24 == 0 else f"{hours}小时"


def receipt(number: str, category_name: str, handler: str, response_hours: int, *, wish: bool = False) -> str:
    what = "微心愿" if wish else "反映的问题"
    return (
        f"已收到您{what}，谢谢！\n"
        f"编号：{number}\n"
        f"类别：{category_name}\n"
        f"接下来：{handler}会在{hours_text(response_hours)}内联系您。\n"
        f"查进度：回复“查询 {number}”"
    )


def emergency_advice(kind: str | None) -> str:
    numbers = {"fire": "119", "gas": "119", "medical": "120", "violence": "110"}
    first = numbers.get(kind or "", "110/119/120")
    return f"【紧急】如有危险，请先离开危险地方，马上拨打 {first}！我们已通知社区加急处理。\n"


def choose_category(number: str, options: list[str]) -> str:
    lines = "\n".join(f"{i} {name}" for i, name in enumerate(options, 1))
    return (
        f"已收到，编号：{number}\n"
        f"为了交给对的人办理，请问这件事属于哪一类？回复数字：\n{lines}\n"
        f"0 都不是"
    )


def choose_again(options: list[str]) -> str:
    lines = "\n".join(f"{i} {name}" for i, name in enumerate(options, 1))
    return f"请回复一个数字：\n{lines}\n0 都不是"


def categorised(number: str, category_name: str, handler: str, response_hours: int) -> str:
    return (
        f"好的，编号 {number} 归为“{category_name}”。\n"
        f"{handler}会在{hours_text(response_hours)}内联系您。查进度：回复“查询 {number}”"
    )


def attached(number: str, what: str) -> str:
    return f"{what}已补充到编号 {number} 的诉求里。还有要补充的，可以接着发。"


def orphan_media(what: str) -> str:
    return f"收到{what}。请再用一句话说说遇到了什么问题，我会一起记下来。"


def ticket_not_found(number: str) -> str:
    return f"没有找到编号 {number} 的诉求，请核对一下。\n回复“我的诉求”可以看您反映过的事。"


def ticket_status(number: str, category_name: str, status: str, text: str, history: list[tuple[datetime, str]]) -> str:
    lines = [f"编号 {number}（{category_name}）", f"内容：{_short(text, 40)}", f"现在：{STATUS_NAMES.get(status, status)}"]
    lines += [f"· {local_time(at)} {what}" for at, what in history[-5:]]
    return "\n".join(lines)


def ticket_list(items: list[tuple[str, str, str, datetime]]) -> str:
    lines = ["您最近反映的事："]
    lines += [f"{i}. {number} {_short(text, 12)}｜{STATUS_NAMES.get(status, status)}｜{local_time(at)}"
              for i, (number, text, status, at) in enumerate(items, 1)]
    lines.append("回复“查询 编号”看详情。")
    return "\n".join(lines)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
