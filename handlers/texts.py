"""Every sentence a resident reads: simplified Chinese, short, numbered choices, no jargon."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from storage.accounts import ROLE_NAMES  # the one table of role names; residents read ROUTE_NAMES below

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
    "回复数字：1 反映问题  2 我的诉求  3 查询进度"
)

HOW_TO_REPORT = "请直接打字告诉我您遇到的问题，说清楚在哪里、什么情况。也可以发照片、位置或语音。"
HOW_TO_QUERY = "请回复“查询”加编号，例如：查询 100007\n不记得编号？回复“我的诉求”。"
SMALLTALK = "不客气，有事随时找我！遇到问题直接打字告诉我就行。回复“帮助”看看能做什么。"
RATE_LIMITED = "您发得有点快，请歇一会儿，一分钟后再发。已经收到的内容不会丢。"
TRY_AGAIN_LATER = "抱歉，系统有点忙，这条消息没有记上。请过两分钟再发一次。"
NOT_UNDERSTOOD = "没太明白您的意思。请说说遇到了什么问题，或回复数字：\n1 反映问题\n2 我的诉求\n3 查询进度\n4 使用帮助"
NO_QUESTION = "您回复的数字没有对应的问题。请回复数字：\n1 反映问题\n2 我的诉求\n3 查询进度\n4 使用帮助"
LEFT_TO_DUTY_DESK = "好的，这件事先交给社区值班人员安排，会尽快联系您。"
NO_TICKETS = "您还没有反映过问题。直接打字告诉我遇到的事就可以。"

# --- the front desk: what the service answers itself ----------------------------------------------------
ASK_IF_PROBLEM = "是要反映问题吗？回复数字：\n1 是，请记下来\n2 不是"
NOT_A_PROBLEM = "好的，没有记成问题。有事随时直接打字告诉我。"
ACK = "好的。有事随时直接打字告诉我。"
WHO_WE_ARE = ("我是社区的公众号“邻里”，由居委会和网格员在后面办理。\n"
              "您可以在这里反映问题、查看进度，社区也会在这里通知您。回复“帮助”看看能做什么。")


def community_contact(name: str, phone: str, hours: str, address: str) -> str:
    lines = [f"{name}："] if name else []
    lines += [f"电话：{phone}"] if phone else []
    lines += [f"办公时间：{hours}"] if hours else []
    lines += [f"地址：{address}"] if address else []
    if len(lines) <= (1 if name else 0):
        return "社区还没有登记联系方式。有事可以直接在这里打字告诉我们，网格员会联系您。"
    return "\n".join(lines + ["有事也可以直接在这里打字告诉我们。"])


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
    "dispatched": "派给",
    "accepted": "已签收",
    "message": "留言",
    "resolved": "已办结",
    "reassigned": "转派",
    "returned": "退回重派",
    "repeated": "居民再次反映",
    "rated": "评价",
    "reopened": "重新办理",
    "reminded": "提醒",
    "escalated": "督办",
    "closed": "结束",
}

RATING_NAMES = {1: "满意", 2: "基本满意", 3: "不满意"}
# A status in at most 5 characters: the phrase field of a template message (WeChat's limit).
STATUS_WORDS = {"submitted": "已受理", "dispatched": "待签收", "accepted": "办理中", "resolved": "已办结",
                "reopened": "重新办理", "closed": "已结束"}


def category_name(code: str) -> str:
    import nlp

    category = nlp.CATEGORIES.get(code)
    return category.name if category else code


def number_not_understood(number: str) -> str:
    return (f"“{number}”不是有效的编号。编号是6位以上的数字，写在回执里。\n"
            "请回复数字：\n1 反映问题\n2 我的诉求\n3 查询进度\n4 使用帮助")


def pick_from_list(count: int) -> str:
    return f"请回复 1 到 {count} 的数字看那一件，或回复“查询 编号”。"


def with_kept_notices(notices: list[str], reply: str) -> str:
    """Notices that could not be sent earlier, shown before the answer to the person's message."""
    return "【您有未读消息】\n" + "\n—\n".join(notices) + "\n——————\n" + reply


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


def emergency_advice(code: str) -> str:
    """What to do first, for this kind of emergency (nlp/tables/emergency_advice.tsv, which a community edits)."""
    import nlp

    kind = nlp.EMERGENCIES.get(code)
    advice = kind.advice if kind and kind.advice else "如有危险，请先离开危险的地方，马上拨打 110、119 或 120。"
    return f"【紧急】{advice}\n我们已通知社区加急处理。\n"


def emergency_again(number: str) -> str:
    return f"这件紧急的事已经在加急处理，编号：{number}\n还有情况请接着说，或直接打电话。"


def same_matter(number: str, text: str) -> str:
    return (f"您之前反映过：编号 {number}“{_short(text, 20)}”。\n是同一件事吗？回复数字：\n"
            "1 是，再催一下\n2 不是，是另一件事")


def repeat_progress(number: str, status: str) -> str:
    return (f"这件事您已经反映过了，编号 {number}，{STATUS_NAMES.get(status, status)}。\n"
            f"我们已记下您又催了一次。看进度：回复“查询 {number}”")


# --- for staff -----------------------------------------------------------------------------------------

def new_ticket_notice(number: str, category_name: str, text: str, where: str, response_hours: float,
                      households: int, *, lead: bool, emergency: bool = False) -> str:
    head = ("【紧急】" if emergency else "") + ("【新工单】" if lead else "【协办】")
    voices = f"（{households}户反映）" if households > 1 else ""
    lines = [f"{head}编号 {number}｜{category_name}{voices}", f"内容：{_short(text, 40)}"]
    if where:
        lines.append(f"地点：{where}")
    if lead:
        lines.append(f"请在{hours_text(int(response_hours))}内签收：回复“签收 {number}”")
    return "\n".join(lines)


def emergency_notice(number: str, text: str, where: str) -> str:
    return (f"【紧急】编号 {number}：{_short(text, 40)}\n地点：{where or '未知'}\n"
            f"请立即处理，已告知居民拨打急救/报警电话。看详情：回复“工单 {number}”")


def hotspot_notice(category_name: str, where: str, households: int, number: str) -> str:
    return (f"【议题候选】{where}有{households}户反映同一件事（{category_name}，如编号 {number}）。"
            f"建议提交居民议事，回复“工单 {number}”看详情。")


def numbered(options: list[str]) -> str:
    """Numbered choices, one per line: what an elderly resident answers with a single digit."""
    return "\n".join(f"{i} {option}" for i, option in enumerate(options, 1))


def choose_category(number: str, options: list[str]) -> str:
    lines = numbered(options)
    return (
        f"已收到，编号：{number}\n"
        f"为了交给对的人办理，请问这件事属于哪一类？回复数字：\n{lines}\n"
        f"0 都不是"
    )


def choose_again(options: list[str]) -> str:
    lines = numbered(options)
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


STORY_PAGE = 8  # timeline entries per reply of 查询; `下一页` shows the next


def ticket_status(number: str, category_name: str, status: str, text: str, history: list[tuple[datetime, str]],
                  *, first: int = 1, total: int | None = None, more: bool = False) -> str:
    total = len(history) if total is None else total
    lines = [f"编号 {number}（{category_name}）", f"内容：{_short(text, 60)}", f"现在：{STATUS_NAMES.get(status, status)}"]
    if total > len(history):
        lines.append(f"经过（第{first}–{first + len(history) - 1}条，共{total}条）：")
    lines += [f"· {local_time(at)} {what}" for at, what in history]
    if more:
        lines.append("回复“下一页”看后面的经过。")
    return "\n".join(lines)


_STAFF_ONLY = {"reminded"}  # the handler's own reminders: nothing a resident needs to read
_REASON_HIDDEN = {"reassigned", "returned", "escalated"}  # staff's reasons stay among staff


def _unit_of(note: str, names: dict[str, str]) -> tuple[str, str]:
    """A dispatch note is "route" or "route：reason" (older rows carry the unit's name instead of its code)."""
    head, _, reason = note.partition("：")
    return names.get(head, ROUTE_NAMES.get(head, head)), reason


def timeline(events, *, for_staff: bool) -> list[tuple[datetime, str]]:
    """A ticket's history as its reader may see it: staff everything; residents no staff-only entry and no
    reason a colleague gave a colleague, and every unit named in plain words."""
    names = ROLE_NAMES if for_staff else ROUTE_NAMES
    lines = []
    for e in events:
        action, note = e.action, e.note or ""
        if not for_staff and action in _STAFF_ONLY:
            continue
        if action in ("dispatched", "reassigned", "returned"):
            unit, reason = _unit_of(note, names)
            if action == "dispatched":
                text = f"交给{unit}" if not for_staff else f"派给：{unit}"
            elif action == "reassigned":
                text = f"转交给{unit}办理" if not for_staff else f"转派：{unit}" + (f"（{reason}）" if reason else "")
            else:
                text = "重新安排办理人" if not for_staff else "退回重派" + (f"（{reason}）" if reason else "")
        elif not for_staff and action in _REASON_HIDDEN:
            text = EVENT_NAMES.get(action, action)
        else:
            text = EVENT_NAMES.get(action, action) + (f"：{note}" if note else "")
        lines.append((e.at, text))
    return lines


def ticket_list(items: list[tuple[str, str, str, datetime]]) -> str:
    lines = ["您最近反映的事："]
    lines += [f"{i} {number} {_short(text, 12)}｜{STATUS_NAMES.get(status, status)}｜{local_time(at)}"
              for i, (number, text, status, at) in enumerate(items, 1)]
    lines.append("回复数字看那一件的进度。")
    return "\n".join(lines)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# --- staff work in WeChat ------------------------------------------------------------------------------

STAFF_HELP = (
    "工单命令：\n"
    "待签收 / 办理中 / 逾期 —— 看工单\n"
    "签收 编号\n"
    "回复 编号 内容 —— 通过公众号给居民留言\n"
    "办结 编号 办理情况（可再发一张照片）\n"
    "转派 编号 物业/业委会/居委会/调解/网格员/值班 原因\n"
    "退回 编号 原因 —— 派错了，退回值班重派"
)
NOT_STAFF = "这个命令只有社区工作人员能用。如需反映问题，直接打字告诉我就行。"
NO_WORK = "太好了，没有需要处理的工单。"
NEED_REASON = "请写上原因，例如：转派 100009 物业 属于电梯维修"
UNKNOWN_TARGET = "转派给谁？请写：物业、业委会、居委会、调解、网格员 或 值班"


STAFF_PAGE = 10  # tickets per page of a staff list; `下一页` shows the next


def staff_ticket_line(number: str, category_name: str, text: str, due: datetime | None, now: datetime,
                      households: int, emergency: bool = False) -> str:
    flags = ("【紧急】" if emergency else "") + ("【逾期】" if due is not None and due < now else "")
    voices = f"（{households}户）" if households > 1 else ""
    until = f"｜限{local_time(due)}" if due is not None else ""
    return f"{flags}{number} {category_name}{voices}｜{_short(text, 14)}{until}"


def staff_list(title: str, total: int, offset: int, lines: list[str]) -> str:
    """One page of a staff list: the most urgent first (emergencies, then the nearest deadline)."""
    first, last = offset + 1, offset + len(lines)
    span = f"，第{first}–{last}件" if total > len(lines) else ""
    tail = "回复“下一页”看后面的；" if last < total else ""
    return "\n".join([f"{title}（共{total}件{span}，最急的在前）：", *lines,
                      f"{tail}回复“工单 编号”看详情，“签收 编号”签收。"])


def staff_summary(counts: dict[str, int]) -> str:
    return "，".join(f"{name}{counts[key]}件" for key, name in (("waiting", "待签收"), ("doing", "办理中"),
                                                             ("late", "逾期")))


def nothing_late(counts: dict[str, int]) -> str:
    return f"没有逾期的工单。{staff_summary(counts)}。回复“待签收”或“办理中”查看。"


NO_MORE_PAGES = "后面没有了。回复“待签收”“办理中”或“逾期”重新看。"
NEED_NUMBER = "请在命令后面写上编号，例如：签收 100009\n不记得编号？回复“待签收”看列表。"


def staff_ticket_detail(number: str, category_name: str, status: str, text: str, where: str, resident: str,
                        history: list[tuple[datetime, str]], handler: str = "") -> str:
    lines = [f"编号 {number}（{category_name}）{STATUS_NAMES.get(status, status)}", f"内容：{_short(text, 80)}"]
    if where:
        lines.append(f"地点：{where}")
    if resident:
        lines.append(f"居民：{resident}")
    if handler:
        lines.append(f"办理人：{handler}")
    lines += [f"· {local_time(at)} {what}" for at, what in history[-6:]]
    return "\n".join(lines)


def not_yours(number: str) -> str:
    return f"编号 {number} 不是您的工单，或已由别人处理。回复“待签收”看可签收的工单。"


def accepted_reply(number: str) -> str:
    return f"已签收 {number}。请尽快联系居民：回复“回复 {number} 内容”留言；办完回复“办结 {number} 办理情况”。"


def already_taken(number: str) -> str:
    return f"编号 {number} 已被别人签收了，不用重复处理。"


def ticket_link(public_url: str, number: str) -> str:
    """The page inside WeChat with a ticket's whole story and photos (bot/web/h5.py)."""
    return f"{public_url}/h5/tickets/{number}"


def resident_accepted(number: str, who: str, link: str = "") -> str:
    return f"您反映的问题（编号 {number}）已由{who}签收，正在办理。" + (f"\n看经过：{link}" if link else "")


def staff_message(number: str, who: str, text: str) -> str:
    return f"关于您的诉求（编号 {number}），{who}说：{text}\n要回话，请发：回复 {number} 您想说的话"


def resident_message(number: str, text: str) -> str:
    return f"居民留言（编号 {number}）：{text}\n回话请发：回复 {number} 内容"


def message_sent(number: str) -> str:
    return f"留言已发出（编号 {number}）。"


def resolved_reply(number: str) -> str:
    return f"已办结 {number}，已请居民评价。需要补照片，现在直接发一张就行。"


def resident_resolved(number: str, note: str, link: str = "") -> str:
    return (f"您反映的问题（编号 {number}）已办结：{_short(note, 60)}\n" + (f"看经过和照片：{link}\n" if link else "")
            + "问题解决了吗？回复数字：\n1 解决了\n2 没解决")


def reassigned_reply(number: str, target: str) -> str:
    return f"已把编号 {number} 转派给{target}。"


def resident_reassigned(number: str, target: str) -> str:
    return f"您反映的问题（编号 {number}）已转交给{target}办理，会尽快联系您。"


def resident_returned(number: str) -> str:
    return f"您反映的问题（编号 {number}）正在重新安排合适的人办理，会尽快联系您。"


def previous_handler_told(number: str, verb: str, who: str, target: str) -> str:
    return f"【工单变动】编号 {number} 已由{who}{verb}给{target}，您不用再处理了。"


def grid_needed(number: str, grids: list[str]) -> str:
    listed = "、".join(grids) if grids else "（还没有导入网格）"
    return (f"编号 {number} 的居民还没有绑定住址，不知道是哪个网格。请写上网格，例如：\n"
            f"转派 {number} 网格员 1 原因\n可选的网格：{listed}")


def returned_reply(number: str) -> str:
    return f"已退回编号 {number}，值班人员会重新派单。"


def cannot_now(number: str, status: str) -> str:
    return f"编号 {number} 现在是“{STATUS_NAMES.get(status, status)}”，不能这样操作。"


# --- the resident's rating -----------------------------------------------------------------------------

def ask_rating(number: str, solved: bool | None = None) -> str:
    lead = "谢谢！" if solved is not False else "知道了，会再交给办理人。"
    return f"{lead}您对编号 {number} 的办理态度和过程满意吗？回复数字：\n1 满意\n2 基本满意\n3 不满意"


def nothing_to_rate(number: str) -> str:
    return f"编号 {number} 现在没有等您评价的结果。回复“查询 {number}”看进度。"


def ask_solved_again(number: str) -> str:
    return f"编号 {number} 的问题解决了吗？回复数字：\n1 解决了\n2 没解决"


def thanks_closed(number: str) -> str:
    return f"感谢您的评价！编号 {number} 已结束。以后有事随时找我。"


def reopened_reply(number: str, solved: bool | None, rating: int) -> str:
    """The answer fits what the resident said: 没解决 with 基本满意 is thanks, not an apology for the manner."""
    if solved is False and rating in (1, 2):
        return (f"谢谢您的评价。问题还没解决，编号 {number} 已重新交给办理人，"
                "并告知了社区负责人，会尽快再联系您。")
    return f"抱歉没让您满意。编号 {number} 已重新交给办理人，并告知了社区负责人，会尽快再联系您。"


def staff_reopened(number: str, solved: bool | None, rating: int | None) -> str:
    why = "居民说问题没解决" if solved is False else f"居民评价：{RATING_NAMES.get(rating or 3)}"
    return f"【重新办理】编号 {number}：{why}。请尽快再联系居民。"
