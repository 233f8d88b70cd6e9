"""What residents and staff read while binding a household or a role: short, numbered, with a way out."""
from __future__ import annotations

from handlers.texts import numbered
from storage.accounts import COMMITTEES, ROLE_NAMES

EXAMPLE = "3栋2单元501"
WAY_OUT = "回复 0 退出"

ASK_ADDRESS = (
    f"请回复您的住址，例如：{EXAMPLE}\n"
    "社区给过您户号的，也可以直接回复户号。\n"
    f"{WAY_OUT}"
)
ADDRESS_NOT_UNDERSTOOD = (
    "没看懂这个住址。\n"
    f"请按“楼栋+单元+房号”回复，例如：{EXAMPLE}\n"
    f"{WAY_OUT}"
)
GIVE_UP = (
    "还是没找到您的住址，先不绑了。\n"
    "可以向网格员或社区要一个户号，再回复“绑定”，发户号就能绑定。"
)
EXITED = "好的，已退出绑定。需要时回复“绑定”。"
OWNER_AGAIN = f"请回复数字：\n1 是业主\n2 不是（租户或家属）\n{WAY_OUT}"

INVITE_USED = "这个邀请码已经用过了，每个邀请码只能用一次。\n如需绑定，请联系社区管理员重新生成。"
INVITE_EXPIRED = "这个邀请码已过期。\n请联系社区管理员重新生成一个。"
INVITE_UNKNOWN = "没有找到这个邀请码，请核对后再发一次。\n（邀请码里没有数字0、1，也没有字母O、I）"

NO_PENDING = "现在没有等您确认的住户绑定。"
CODE_NOT_FOUND = "没有找到这个户号，请核对后再发一次（户号在社区发的住户卡上）。\n也可以回复住址，例如：3栋2单元501"
TOO_MANY_TRIES = "户号或邀请码错得太多次了，为了安全，今天先不能再试。\n请找网格员或社区核对，或回复住址绑定。"
CODES_PAUSED = "为了安全，绑定码暂时停用一小时，请稍后再试，或回复住址绑定。"


def admin_lockout_notice(sid: str, tries: int) -> str:
    return f"【安全提醒】有人（{sid}）一天内输错了{tries}次户号或邀请码，已暂停他今天的尝试。如非本人操作失误，请留意。"


def admin_codes_paused_notice(tries: int) -> str:
    return f"【安全提醒】一小时内有{tries}次户号或邀请码输错，可能有人在猜码，绑定码已暂停一小时。"


def owner_word(is_owner: bool) -> str:
    return "业主" if is_owner else "租户或家属"


def already_bound(label: str, pending: bool) -> str:
    state = "（等网格员确认）" if pending else ""
    return f"您现在绑定的住址：{label}{state}\n如要换一个，请回复新住址，例如：{EXAMPLE}\n{WAY_OUT}"


def address_not_found(typed: str) -> str:
    return f"没有找到“{typed}”，请核对楼栋、单元和房号，再发一次。\n{WAY_OUT}"


def choose_household(labels: list[str]) -> str:
    return f"找到几处住址，请回复数字选一个：\n{numbered(labels)}\n{WAY_OUT}"


def ask_owner(label: str) -> str:
    return f"住址：{label}\n您是业主吗？\n1 是\n2 不是（租户或家属）\n{WAY_OUT}"


def bound(label: str, is_owner: bool) -> str:
    return (f"绑定成功！您的住址：{label}（{owner_word(is_owner)}）。\n"
            "以后反映问题，会直接交给您所在网格的网格员。回复“我的身份”可以查看。")


def pending(label: str) -> str:
    return (f"已提交住址：{label}\n"
            "等网格员核实确认后就绑定好了，确认后会通知您。\n"
            "着急的话，可以向网格员要户号：回复“绑定”，再发户号，马上生效。")


def worker_notice(label: str, is_owner: bool, sid: str) -> str:
    return (f"【住户绑定待确认】\n{label} 有住户申请绑定（自称{owner_word(is_owner)}）。\n"
            f"核实后请回复：确认 {sid}\n"
            f"不是这一户请回复：拒绝 {sid}")


def pending_list(items: list[tuple[str, str, bool]]) -> str:
    lines = [f"· {label}（{owner_word(owner)}）：回复“确认 {sid}”或“拒绝 {sid}”" for sid, label, owner in items]
    return "等您确认的住户绑定：\n" + "\n".join(lines)


def no_such_pending(sid: str) -> str:
    return f"没有找到待确认的 {sid}。回复“待确认”看全部待确认的住户。"


def worker_confirmed(label: str, sid: str) -> str:
    return f"已确认：{label} 的住户（{sid}）绑定成功，已通知本人。"


def worker_rejected(label: str, sid: str) -> str:
    return f"已拒绝：{label} 的绑定申请（{sid}），已通知本人。"


def resident_confirmed(label: str, is_owner: bool) -> str:
    return f"好消息：网格员已确认，您已绑定住址 {label}（{owner_word(is_owner)}）。"


def resident_rejected(label: str) -> str:
    return (f"网格员没能确认您的住址 {label}。\n"
            "请核对后回复“绑定”重新提交，或向网格员要户号。")


def role_title(role: str, grid_name: str = "", is_head: bool = False) -> str:
    """"3号网格 的网格员", "居委会负责人", "在职党员"."""
    if role == "grid_worker":
        return f"{grid_name} 的网格员" if grid_name else "网格员"
    if role in COMMITTEES:
        return ROLE_NAMES[role] + ("负责人" if is_head else "成员")
    if role == "duty_desk":
        return "社区值班人员"
    return ROLE_NAMES.get(role, role)


def staff_bound(title: str) -> str:
    return f"您已绑定为 {title}。\n回复“我的身份”可以查看。"


def identity(home: str | None, home_state: str, is_owner: bool, titles: list[str]) -> str:
    lines = ["您的身份："]
    if home is None:
        lines.append("住址：还没有绑定（回复“绑定”来绑定）")
    elif home_state == "pending":
        lines.append(f"住址：{home}（{owner_word(is_owner)}，等网格员确认）")
    else:
        lines.append(f"住址：{home}（{owner_word(is_owner)}）")
    lines += [f"· {t}" for t in titles]
    return "\n".join(lines)
