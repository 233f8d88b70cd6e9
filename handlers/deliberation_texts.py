"""What residents and staff read about proposals, meetings and votes: short, plain, with numbered choices."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from handlers.texts import local_time

RATING_NAMES = {1: "满意", 2: "基本满意", 3: "不满意"}


def _choices(options: Sequence[str]) -> str:
    return "\n".join(f"{i} {name}" for i, name in enumerate(options, 1))


# ---- votes -----------------------------------------------------------------------------------------------------
def vote_opened(number: str, title: str, options: Sequence[str], closes_at: datetime, *, secret: bool,
                advisory: bool, budget: str | None = None) -> str:
    head = f"【{'征询' if advisory else '表决'}】{title}\n编号：{number}"
    if budget is not None:
        how = (f"可用资金 {budget} 元，请选您支持的项目（合计不超过可用资金），回复“表决 {number} 项目号”，"
               f"几个项目用空格隔开：\n{_choices(options)}")
    else:
        how = f"请回复“表决 {number} 选项号”：\n{_choices(options)}"
    notes = [f"{local_time(closes_at)}截止，截止前可以改，以最后一次为准。"]
    if secret:
        notes.append("不记名：公布结果时不写谁投了什么。")
    if advisory:
        notes.append("这是征求意见，结果供参考。")
    return "\n".join([head, how, *notes])


def vote_reminder(number: str, title: str, closes_at: datetime) -> str:
    return (f"【表决提醒】“{title}”（编号 {number}）{local_time(closes_at)}截止，您还没有表态。"
            f"回复“表决 {number} 选项号”即可。")


def ballot_receipt(number: str, title: str, chose: str, receipts: Sequence[str], closes_at: datetime,
                   replaced: bool) -> str:
    lines = [f"{'已改为' if replaced else '已收到'}：{chose}", f"“{title}”", f"编号：{number}"]
    lines += [f"凭证：{r}" for r in receipts]
    lines.append(f"{local_time(closes_at)}前可以再改，以最后一次为准。结果公布后可用凭证核对。")
    return "\n".join(lines)


BALLOT_CLOSED = "这次表决已经截止，不能再投了。结果公布后会通知您。"
NOT_ON_ROLL = "您不在这次表决的名单里。业主表决只认业主名册：请发送社区给您的业主码绑定。"
BAD_CHOICE = "没有这个选项，请回复选项前面的数字。"


def result_notice(number: str, title: str, doc: dict, objection_until: datetime | None, *, advisory: bool) -> str:
    if doc["rule"] == "budget":
        verdict = ("获得资金的项目：" + "、".join(str(p) for p in doc["funded"])) if doc["funded"] else "没有项目获得资金"
    else:
        verdict = "通过" if doc["passed"] else "未通过"
    lines = [f"【{'征询' if advisory else '表决'}结果】“{title}”", f"编号：{number}", f"结果：{verdict}",
             f"参与：{doc['participating_headcount']}/{doc['total_headcount']}"
             + (f"，面积 {doc['participating_area']}/{doc['total_area']} 平方米" if doc["rule"].startswith("art278")
                else "")]
    if doc["rule"] != "budget":
        lines.append("各选项：" + "，".join(f"{name} {doc['counts'][str(i)]}"
                                            for i, name in enumerate(doc["options"], 1)))
    if objection_until is not None:
        lines.append(f"公示到{local_time(objection_until)}。有异议请回复“异议 {number} 内容”。")
    return "\n".join(lines)


def vote_annulled(number: str, title: str, reason: str) -> str:
    return f"【表决作废】“{title}”（编号 {number}）经复核作废。原因：{reason}"


def objection_received(number: str) -> str:
    return f"已收到您的异议（表决编号 {number}），社区会在公示期内答复。"


def objection_notice(number: str, title: str, text: str) -> str:
    return f"【异议】表决“{title}”（编号 {number}）收到异议：{text}\n请在公示期内答复。"


def objection_answered(number: str, answer: str) -> str:
    return f"您对表决（编号 {number}）的异议，社区答复：{answer}"


def vote_final(number: str, title: str, passed: bool) -> str:
    return f"“{title}”（编号 {number}）公示期满，结果生效：{'通过' if passed else '未通过'}。"


# ---- proposals ----------------------------------------------------------------------------------------------------
def proposal_raised(number: str, title: str, threshold: int) -> str:
    return (f"已提出议题：“{title}”\n编号：{number}\n请邻居回复“附议 {number}”支持，"
            f"满{threshold}户就提交社区。")


def cosigned(number: str, supporters: int, threshold: int) -> str:
    if supporters >= threshold:
        return f"已附议，编号：{number}\n已有{supporters}户支持，已提交社区，等待受理。"
    return f"已附议，编号：{number}\n现有{supporters}户支持，满{threshold}户提交社区。"


ALREADY_COSIGNED = "您家已经支持过这个议题了，一户算一次。"
NOT_BOUND = "请先绑定您家的房屋（回复“绑定”），一户一票。"
PROPOSAL_CLOSED = "这个议题现在不能附议了。"


def proposal_notice(number: str, title: str, supporters: int) -> str:
    return (f"【议题】“{title}”（编号 {number}）已有{supporters}户支持，请受理、合并，"
            f"或说明不受理的理由。")


def proposal_accepted(number: str, title: str) -> str:
    return f"您提出的议题“{title}”（编号 {number}）社区已受理，接下来会组织大家商议。"


def proposal_declined(number: str, title: str, reason: str) -> str:
    return f"您提出的议题“{title}”（编号 {number}）社区暂不受理。原因：{reason}"


def proposal_merged(number: str, into: str, reason: str) -> str:
    return f"您提出的议题（编号 {number}）和议题 编号 {into} 说的是一件事，已合并，请关注编号 {into}。{reason}"


COMMENT_PROBLEMS = {
    "empty": "发言内容是空的。请回复“发言 编号 内容”。",
    "too_long": "发言太长了，请控制在{chars}字以内。",
    "limit": "今天您对这个议题已经发言{per_day}次了，明天再来吧。",
    "closed": "这个议题已经结束，不能再发言了。",
}


def comment_saved(number: str) -> str:
    return f"已发言，编号：{number}\n回复“议题 {number}”可以看大家的意见。"


def meeting_notice(number: str, proposal_number: str, title: str, starts_at: datetime, place: str) -> str:
    return (f"【议事会】为议题“{title}”（编号 {proposal_number}）召开议事会：{local_time(starts_at)}，{place}。"
            f"欢迎参加，到场后回复“签到 {number}”。")


def signed_in(number: str) -> str:
    return f"签到成功，编号：{number}"


def rate_request(number: str, title: str) -> str:
    return (f"“{title}”（编号 {number}）已经办完。您满意吗？回复“评价 {number} 数字”：\n"
            + "\n".join(f"{k} {v}" for k, v in RATING_NAMES.items()))


def task_text(proposal_title: str, task: str) -> str:
    return f"【民事民办】{proposal_title}：{task}"
