"""What people read about micro-wishes (微心愿): short, simplified Chinese, numbered choices, `编号：<number>`."""
from __future__ import annotations

from datetime import datetime

from handlers.texts import local_time
from handlers.wish_rules import KINDS

STATUS_NAMES = {
    "submitted": "等待社区审核",
    "approved": "已上心愿墙，等待认领",
    "claimed": "已有党员认领，正在办",
    "fulfilled": "党员说已完成，等您确认",
    "closed": "已圆梦",
    "rejected": "审核未通过",
    "withdrawn": "已撤回",
}

# A status in at most 5 characters: the phrase field of a template message about a wish (WeChat's limit).
STATUS_WORDS = {"submitted": "待审核", "approved": "待认领", "claimed": "已认领", "fulfilled": "待确认",
                "closed": "已完成", "rejected": "未通过", "withdrawn": "已撤回"}

MEMBER_STATUS_NAMES = {"claimed": "正在办", "fulfilled": "已上报，等居民确认", "closed": "已圆梦"}


def kind_name(kind: str | None) -> str:
    return KINDS.get(kind or "", "待分类")


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def member_title(name: str) -> str:
    """How a Party member is named to a resident: the surname only."""
    return "在职党员" + (name[:1] + "*" * max(len(name) - 1, 0) if name else "")


def hours_text(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return f"{h}小时{m}分钟" if h and m else f"{h}小时" if h else f"{m}分钟"


# -- residents ---------------------------------------------------------------------------------------------------
ASK_WISH = "请写上您的心愿，例如：微心愿 想请人帮忙换一下厨房的灯泡"
NEED_HOME = "登记微心愿要先绑定您家的房屋（社区要核对）。请回复“绑定”，按提示操作。"


def receipt(number: str, review_hours: float) -> str:
    days = max(1, round(review_hours / 24))
    return (f"您的微心愿已登记。\n编号：{number}\n社区会在{days}天内审核，通过后放上心愿墙，由在职党员认领。\n"
            "可以接着发一张照片。回复“我的心愿”看进度。")


def too_many(max_open: int, numbers: list[str]) -> str:
    return (f"您已经有{len(numbers)}个心愿还没完成（{'、'.join(numbers)}），每人最多同时{max_open}个。\n"
            "等其中一个圆梦后再登记，或回复“撤回 编号”撤回一个还没被认领的。")


def wish_list(items: list[tuple[str, str, str, datetime]]) -> str:
    if not items:
        return "您还没有登记过微心愿。发送“微心愿 内容”登记一个。"
    lines = ["您的微心愿："]
    lines += [f"{i}. 编号 {number} {short(text, 12)}｜{STATUS_NAMES.get(status, status)}｜{local_time(at)}"
              for i, (number, text, status, at) in enumerate(items, 1)]
    lines.append("回复数字看详情；没被认领的可以回复“撤回 编号”。")
    return "\n".join(lines)


def not_found(ref: str) -> str:
    return f"没有找到编号 {ref} 的心愿，请核对编号。"


def not_yours(number: str) -> str:
    return f"编号 {number} 的心愿，这一步不归您操作。"


def changed(number: str) -> str:
    """Someone else changed the wish a moment ago (a lost race)."""
    return f"编号 {number} 的心愿刚刚有了变化，请回复“我的心愿”或“心愿墙”看看现在的情况。"


def cannot_now(number: str, status: str) -> str:
    return f"编号 {number} 的心愿现在{STATUS_NAMES.get(status, status)}，不能这样操作。"


def withdrawn(number: str) -> str:
    return f"编号：{number}\n心愿已撤回。需要时可以再登记。"


def withdraw_too_late(number: str) -> str:
    return f"编号 {number} 的心愿刚刚被党员认领了，不能撤回。有话可以回复“回复 {number} 内容”告诉他。"


def resident_approved(number: str, kind: str | None, text: str) -> str:
    return (f"【微心愿】您的心愿（编号 {number}）审核通过，已放上心愿墙（{kind_name(kind)}）：{short(text, 30)}\n"
            "有党员认领时会告诉您。")


def resident_rejected(number: str, reason: str) -> str:
    return (f"【微心愿】您的心愿（编号 {number}）这次没有通过审核。\n原因：{reason}\n"
            "有疑问可以问居委会，也可以改一改再登记。")


def resident_claimed(number: str, title: str, group: bool) -> str:
    who = f"{title}带着团队" if group else title
    return (f"【微心愿】好消息！您的心愿（编号 {number}）已被{who}认领，会通过公众号和您联系。\n"
            f"想说什么，回复“回复 {number} 内容”。愿意让党员打电话给您，回复“同意留电话”。")


IS_IT_DONE = "办好了吗？回复数字：\n1 已完成\n2 没有完成"  # the resident's question once a member says it is done


def resident_fulfilled(number: str, title: str, story: str) -> str:
    """Also the resident's open question from then on: a bare 1 or 2 answers it."""
    return (f"【微心愿】{title}说您的心愿（编号 {number}）已经完成：{short(story, 40)}\n{IS_IT_DONE}\n"
            f"（也可以回复“确认 {number}”或“没有完成 {number}”）")


def resident_released(number: str) -> str:
    return f"【微心愿】您的心愿（编号 {number}）重新放回心愿墙，等其他党员认领。"


def resident_confirm_reminder(number: str, days_left: int) -> str:
    return (f"【微心愿】您的心愿（编号 {number}）完成了吗？\n1 已完成：回复“确认 {number}”\n"
            f"2 没有完成：回复“没有完成 {number}”\n{days_left}天内没有回复，就当作已完成。")


def resident_closed_unconfirmed(number: str) -> str:
    return f"【微心愿】您的心愿（编号 {number}）没有收到您的回复，已按完成结束。如果还没办好，请告诉居委会。"


def confirmed_reply(number: str) -> str:
    return f"编号：{number}\n谢谢您的确认，心愿已圆梦！"


def disputed_reply(number: str) -> str:
    return (f"编号：{number}\n收到，已经告诉认领的党员和居委会，会继续帮您办。\n"
            f"想说说哪里没办好，回复“回复 {number} 内容”。")


def from_member(number: str, title: str, words: str) -> str:
    return f"【微心愿 {number}】{title}：{words}\n回复“回复 {number} 内容”和他说话。"


def message_sent(number: str) -> str:
    return f"编号：{number}\n话已经带到。"


ASK_WORDS = "请写上要说的话，例如：回复 {number} 我下午在家"
ASK_PHONE = "我们还没有您的电话。请回复“同意留电话 手机号”，例如：同意留电话 13800001234"
NO_CLAIMED_WISH = "您现在没有被认领的心愿，不需要留电话。"


def which_wish(numbers: list[str]) -> str:
    lines = ["您有几个心愿被认领了，要把电话给哪一个的党员？"]
    lines += [f"{i}. 回复“同意留电话 {n}”" for i, n in enumerate(numbers, 1)]
    return "\n".join(lines)


def phone_shared(number: str) -> str:
    return f"编号：{number}\n已把您的电话告诉认领的党员，他会打电话联系您。"


# -- reviewers -------------------------------------------------------------------------------------------------------
NOT_REVIEWER = "只有居委会和社区管理员可以审核微心愿。"
NEED_REASON = "不通过要写原因，居民会看到。例如：审核 编号 不通过 已由民政部门帮扶"
UNKNOWN_KIND = "类别请写 物质帮扶、便民服务 或 公益服务。"


def new_wish_notice(number: str, text: str, address: str, due: datetime) -> str:
    return (f"【待审核微心愿】编号 {number}：{short(text, 40)}\n住户：{address}\n请在{local_time(due)}前审核：\n"
            f"1 通过：回复“审核 {number} 通过”\n2 不通过：回复“审核 {number} 不通过 原因”")


def pending_list(items: list[tuple[str, str, str, datetime]]) -> str:
    if not items:
        return "没有待审核的微心愿。"
    lines = ["待审核的微心愿："]
    lines += [f"{i}. 编号 {number} {short(text, 20)}｜{address}｜{local_time(due)}前"
              for i, (number, text, address, due) in enumerate(items, 1)]
    lines.append("回复数字看详情；回复“审核 编号 通过”或“审核 编号 不通过 原因”。")
    return "\n".join(lines)


def reviewed_reply(number: str, approved: bool, kind: str | None) -> str:
    if approved:
        return f"编号：{number}\n已通过，上了心愿墙（{kind_name(kind)}）。"
    return f"编号：{number}\n已不通过，原因已告诉居民。"


def edited_reply(number: str, kind: str | None, text: str) -> str:
    return f"编号：{number}\n已修改：{kind_name(kind)}｜{short(text, 40)}"


def review_reminder(number: str, due: datetime) -> str:
    return f"【催办】微心愿编号 {number} 须在{local_time(due)}前审核。回复“待审核”看列表。"


def review_escalation(number: str, due: datetime) -> str:
    return f"【督办】微心愿编号 {number} 审核时限{local_time(due)}已过，仍未审核，请督促。回复“待审核”看列表。"


def committee_disputed(number: str, text: str, reason: str) -> str:
    return (f"【微心愿】编号 {number}（{short(text, 20)}）居民说没有完成" + (f"：{reason}" if reason else "") +
            "。已退回认领的党员，请关注。")


def committee_released(number: str, text: str, days: float) -> str:
    return f"【微心愿】编号 {number}（{short(text, 20)}）认领后{days:g}天没有进展，已放回心愿墙。"


# -- Party members ---------------------------------------------------------------------------------------------------
NOT_MEMBER = "心愿墙是给在职党员认领的。党员请先用社区给的邀请码绑定身份。"
NEED_REGISTER = "请先到居住的社区报到，例如：报到 单位：区税务局 特长：水电维修 时间：周末"
ASK_UNIT = "报到请写上工作单位，例如：报到 单位：区税务局 特长：水电维修 时间：周末"
WHICH_COMMUNITY = "您要到哪个社区报到？例如：报到 单位：区税务局 社区：幸福里社区"


def registered(community: str, unit: str) -> str:
    return (f"报到成功：{community}，单位：{unit}。\n回复“心愿墙”看可以认领的心愿，“我的服务”看您的认领和时长。")


def wall(community: str, items: list[tuple[str, str | None, str, str]], groups: list[tuple[str, str, int]],
         first: int = 1, more: bool = False) -> str:
    if not items and not groups:
        if first > 1:
            return "心愿墙没有更多了。"
        return f"{community}心愿墙上现在没有等待认领的心愿，谢谢关心！"
    lines = [f"{community}心愿墙（最新在前）："]
    lines += [f"{i}. 编号 {number}｜{kind_name(kind)}｜{building}\n   {short(text, 40)}"
              for i, (number, kind, building, text) in enumerate(items, first)]
    if items:
        lines.append(f"回复数字看详情；回复“认领 编号”认领；几个人一起办，回复“认领 编号 团队”。"
                     + ("\n还有更多：回复“下一页”。" if more else ""))
    if groups:
        lines.append("团队认领中，可以加入：")
        lines += [f"· 编号 {number} {short(text, 20)}（已有{members}人）" for number, text, members in groups]
        lines.append("回复“加入 编号”加入。")
    return "\n".join(lines)


def claimed_reply(number: str, group: bool) -> str:
    team = "团队认领成功，其他党员回复“加入 {0}”就能加入。\n".format(number) if group else "认领成功！\n"
    return (f"编号：{number}\n{team}和居民说话：回复“回复 {number} 内容”（不会显示双方的电话）。\n"
            f"办完回复“圆梦 {number} 说明 用时2小时”，再发一张照片。")


def already_claimed(number: str) -> str:
    return f"编号 {number} 的心愿已经被其他党员认领了，谢谢！回复“心愿墙”看别的心愿。"


def own_wish(number: str) -> str:
    return f"编号 {number} 是您自己的心愿，不能认领。"


def joined_reply(number: str) -> str:
    return f"编号：{number}\n已加入团队认领。办完由任何一位回复“圆梦 {number} 说明 用时N小时”，时长大家平分。"


def member_joined(number: str, title: str) -> str:
    return f"【微心愿 {number}】{title}加入了您的团队认领。"


def not_group(number: str) -> str:
    return f"编号 {number} 是个人认领，不能加入。回复“心愿墙”看别的心愿。"


def not_claimed_yet(number: str) -> str:
    return f"编号 {number} 的心愿还没人认领，回复“认领 {number}”认领它。"


def group_full(number: str, max_group: int) -> str:
    return f"编号 {number} 的团队已经有{max_group}人了，谢谢！回复“心愿墙”看别的心愿。"


def join_too_late(number: str) -> str:
    return f"编号 {number} 的心愿刚刚有了变化（团队满了，或放回了心愿墙），请回复“心愿墙”看看。"


def already_in(number: str) -> str:
    return f"您已经在编号 {number} 的认领里了。"


def ask_hours(number: str) -> str:
    return f"编号 {number}：这次一共用了多长时间？请回复时长，例如：2小时（团队填大家合计的时间）。"


def hours_again(number: str) -> str:
    return f"没看懂时长。编号 {number} 一共用了多长时间？例如：2小时、半小时、90分钟。"


def fulfilled_reply(number: str, minutes: int, members: int) -> str:
    share = f"，{members}人平分，每人约{hours_text(minutes // members)}" if members > 1 else ""
    return (f"编号：{number}\n已上报完成（用时{hours_text(minutes)}{share}），等居民确认。\n"
            "请接着发一张照片作为记录。")


def member_fulfilled(number: str, title: str, minutes: int) -> str:
    return f"【微心愿 {number}】{title}已上报完成，用时{hours_text(minutes)}，等居民确认。"


def member_confirmed(number: str, minutes: int | None) -> str:
    mine = f"您的服务时长记{hours_text(minutes)}。" if minutes else ""
    return f"【微心愿 {number}】居民确认心愿已圆梦，谢谢您！{mine}"


def member_disputed(number: str, reason: str) -> str:
    return (f"【微心愿 {number}】居民说还没有完成" + (f"：{reason}" if reason else "") +
            f"。请回复“回复 {number} 内容”问问情况，办好后再回复“圆梦 {number} 说明 用时N小时”。")


def member_closed_unconfirmed(number: str, minutes: int | None) -> str:
    mine = f"您的服务时长记{hours_text(minutes)}。" if minutes else ""
    return f"【微心愿 {number}】居民一直没有回复，心愿已按完成结束。{mine}"


def member_stale(number: str, release_at: datetime) -> str:
    return (f"【微心愿 {number}】您认领的心愿好几天没有进展了。办完请回复“圆梦 {number} 说明 用时N小时”；"
            f"{local_time(release_at)}前还没有进展，心愿会放回心愿墙。")


def member_released(number: str) -> str:
    return f"【微心愿 {number}】认领后一直没有进展，心愿已放回心愿墙。"


def from_resident(number: str, words: str) -> str:
    return f"【微心愿 {number}】心愿人：{words}\n回复“回复 {number} 内容”回他。"


def from_teammate(number: str, title: str, words: str) -> str:
    return f"【微心愿 {number}】队友{title}对居民说：{words}"


def phone_for_member(number: str, phone: str) -> str:
    return f"【微心愿 {number}】居民同意留电话：{phone}。请只为这个心愿联系他。"


def photo_kept(number: str) -> str:
    return f"编号：{number}\n照片已收到。"


def my_service(items: list[tuple[str, str, str, str]], total_minutes: int) -> str:
    if not items:
        return "您还没有认领过心愿。回复“心愿墙”看看。"
    lines = [f"您的服务（已确认时长共{hours_text(total_minutes) if total_minutes else '0小时'}）："]
    lines += [f"{i}. 编号 {number} {short(text, 16)}｜{state}{('｜' + share) if share else ''}"
              for i, (number, text, state, share) in enumerate(items, 1)]
    return "\n".join(lines)


EVENT_NAMES = {
    "submitted": "居民登记", "approved": "审核通过", "rejected": "审核未通过", "edited": "修改公开内容",
    "withdrawn": "居民撤回", "claimed": "党员认领", "joined": "党员加入", "message": "留言", "photo": "照片",
    "phone_shared": "居民同意留电话", "fulfilled": "党员上报完成", "confirmed": "居民确认圆梦",
    "disputed": "居民说没有完成", "reminded": "催办", "escalated": "督办", "released": "放回心愿墙",
    "expired": "未确认，自动结束",
}


# -- the chat: questions, one wish, lists ------------------------------------------------------------------------------
OFFER = "这听起来像一个微心愿（小而实的需要，由在职党员帮您办）。\n登记为微心愿吗？\n1 是\n2 不是，按问题反映"
OFFER_AGAIN = "请回复数字：\n1 登记为微心愿\n2 不是，按问题反映"
OFFER_DROPPED = "好的，没有登记。有事直接打字告诉我。"
WISH_MENU = ("请写上您的心愿（小而实的需要），例如：想请人帮忙换一下厨房的灯泡\n回复“我的心愿”看您登记过的。\n"
             "在职党员：回复“心愿墙”看可以认领的心愿，“报到”到居住的社区报到。")
WISH_TOO_SHORT = "请多写几个字，说说需要帮什么忙，例如：想请人帮忙换一下厨房的灯泡"
WISH_LEFT = "好的，没有登记。想登记时回复“微心愿 内容”。"
HOW_TO_CLAIM = "请回复“认领 编号”，编号在心愿墙上。回复“心愿墙”看看。"
HOW_TO_WITHDRAW = "请回复“撤回 编号”，编号在“我的心愿”里。"
HOW_TO_FULFIL = "办完请回复“圆梦 编号 说明 用时2小时”，例如：圆梦 100017 换好了灯泡 用时1小时"
HOW_TO_JOIN = "请回复“加入 编号”，编号在心愿墙的“团队认领中”里。"
HOW_TO_REVIEW = ("审核请回复：\n1 通过：审核 编号 通过 便民服务（或 物质帮扶、公益服务；后面可以写改过的公开内容）\n"
                 "2 不通过：审核 编号 不通过 原因")
HOW_TO_EDIT = "改心愿墙上的内容，请回复：修改心愿 编号 [类别] 新内容，例如：修改心愿 100017 便民服务 想请人帮忙换灯泡"
ASK_UNIT_STEP = "欢迎报到！请回复您的工作单位，例如：区税务局"
ASK_SKILLS = "您有什么特长？例如：水电维修、量血压。没有就回复“无”。"
ASK_TIME = "您一般什么时间方便？例如：周末、工作日晚上。"
WHICH_COMMUNITY_STEP = "您住在哪个社区？请回复社区的名字，例如：幸福里社区"
TOO_LONG = "写短一点就好（20个字以内）。"
NO_SKILLS = frozenset({"无", "没有", "暂无", "不会", "跳过", "无特长"})
REGISTER_LEFT = "好的，先不报到。需要时回复“报到”。"
HOURS_LEFT = "好的。办完请回复“圆梦 编号 说明 用时2小时”。"
CONFIRM_LEFT = "好的，以后可以回复“确认 编号”或“没有完成 编号”。"


def offer_refused(reason: str) -> str:
    """Answered 1 but no wish can be made now (not bound, at the limit): the matter can still be a problem."""
    return f"{reason}\n也可以回复 2，按问题反映。"


def pick_again(first: int, last: int) -> str:
    return f"请回复 {first} 到 {last} 的数字看那一个。"


def confirm_again(number: str) -> str:
    return f"编号 {number} 的心愿{IS_IT_DONE}"


def timeline(events: list[tuple[datetime, str]]) -> str:
    return "\n".join(f"{local_time(at)} {EVENT_NAMES.get(action, action)}" for at, action in events)


def wish_card(number: str, status: str, kind: str | None, building: str, text: str, *, view: str,
              claimed_by: str = "", history: str = "", address: str = "", joinable: bool = False) -> str:
    """One wish as one person may see it. `view`: owner (the resident's own words and timeline), member (what
    the wall shows, and how to claim), claimer, reviewer (with the household's address)."""
    head = f"编号：{number}\n"
    if view == "member":
        lines = [head + f"{kind_name(kind)}｜{building}", text]
        if status == "approved":
            lines.append(f"认领：回复“认领 {number}”；几个人一起办：回复“认领 {number} 团队”。")
        elif joinable:
            lines.append(f"团队认领中，回复“加入 {number}”加入。")
        else:
            lines.append(STATUS_NAMES.get(status, status))
        return "\n".join(lines)
    lines = [head + ("您的心愿：" if view == "owner" else "心愿：") + text,
             f"现在：{STATUS_NAMES.get(status, status)}" + (f"（{kind_name(kind)}）" if kind else "")]
    if view == "reviewer":
        lines.append(f"住户：{address}")
    if claimed_by:
        lines.append(f"认领：{claimed_by}")
    if history:
        lines.append(history)
    nexts = {
        ("owner", "submitted"): f"不需要了可以回复“撤回 {number}”。",
        ("owner", "approved"): f"不需要了可以回复“撤回 {number}”。",
        ("owner", "claimed"): f"和党员说话：回复“回复 {number} 内容”；愿意让他打电话给您：回复“同意留电话”。",
        ("owner", "fulfilled"): IS_IT_DONE,
        ("claimer", "claimed"): f"和居民说话：回复“回复 {number} 内容”。办完回复“圆梦 {number} 说明 用时2小时”。",
        ("claimer", "fulfilled"): f"等居民确认。可以回复“回复 {number} 内容”。",
        ("reviewer", "submitted"): f"1 通过：回复“审核 {number} 通过 便民服务”（或 物质帮扶、公益服务）\n"
                                   f"2 不通过：回复“审核 {number} 不通过 原因”",
    }
    if (step := nexts.get((view, status))) is not None:
        lines.append(step)
    return "\n".join(lines)

