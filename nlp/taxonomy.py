"""The default community taxonomy: categories, routes, time limits, urgency; emergency kinds."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROUTES = ("grid_worker", "property", "owners_committee", "residents_committee", "mediation", "duty_desk")
URGENCIES = ("normal", "high", "emergency")


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str  # shown to residents, e.g. "环境卫生"
    route: str  # grid_worker, property, owners_committee, residents_committee, mediation, duty_desk
    response_hours: int  # accept (签收) within
    resolve_hours: int  # resolve (办结) within
    urgency: str = "normal"  # normal | high (hazards, outages); an emergency verdict overrides it
    co_routes: tuple[str, ...] = ()  # others to copy (三方联动: 居委会 + 业委会 + 物业)
    description: str = ""  # one line for the "which category?" question and the console


# Time limits after DESIGN.md: emergencies 2 h; water, power, gas, heating 24 h; general 7 days (168 h);
# complex matters 15 days (360 h). Configurable per category by the admin; these are the defaults.
CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("environment", "环境卫生", "grid_worker", 24, 168, description="垃圾、清扫、异味、绿化"),
        Category(
            "property", "物业服务", "property", 24, 168,
            co_routes=("residents_committee", "owners_committee"), description="物业管理、电梯、门禁、物业费",
        ),
        Category("parking", "停车交通", "grid_worker", 24, 168, description="停车、车位、道路拥堵、僵尸车"),
        Category("noise", "噪音扰民", "grid_worker", 24, 168, description="装修、广场舞、夜间噪音"),
        Category("facilities", "公共设施", "grid_worker", 24, 168, description="路灯、道路、健身器材、座椅"),
        Category("water", "水电气暖", "property", 4, 24, urgency="high", description="停水停电、漏水、下水道堵、燃气、暖气"),
        Category("safety", "安全消防", "grid_worker", 2, 24, urgency="high", description="消防通道、飞线充电、高空抛物、隐患"),
        Category("dispute", "邻里纠纷", "mediation", 24, 360, description="邻居矛盾、漏水纠纷、争吵"),
        Category("elderly", "助老助残", "residents_committee", 24, 168, description="独居老人、残疾人、助餐、微心愿"),
        Category("pets", "宠物管理", "grid_worker", 24, 168, description="狗叫、遛狗不牵绳、粪便、流浪猫狗"),
        Category(
            "building", "违建占道", "grid_worker", 24, 360,
            co_routes=("property",), description="违章搭建、占用公共空间、占道经营",
        ),
        Category("other", "其他", "grid_worker", 24, 168, description="以上都不是"),
    )
}


@dataclass(frozen=True, slots=True)
class Emergency:
    code: str
    name: str
    call: str  # the number to tell the resident to call at once
    advice: str = ""  # what to do, for the resident, first in the reply (plain sentences, no 【紧急】 label)


EMERGENCY_ADVICE = Path(__file__).with_name("tables") / "emergency_advice.tsv"


def load_emergencies(path: Path = EMERGENCY_ADVICE) -> dict[str, Emergency]:
    """The emergency kinds and their advice, from one table a community can edit (code, name, call, advice)."""
    out: dict[str, Emergency] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 4 or not all(fields):
            raise ValueError(f"{path}:{n}: expected code<TAB>name<TAB>call<TAB>advice")
        if fields[0] in out:
            raise ValueError(f"{path}:{n}: {fields[0]} is already defined")
        out[fields[0]] = Emergency(*fields)
    return out


EMERGENCIES: dict[str, Emergency] = load_emergencies()
