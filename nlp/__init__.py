"""Keyword NLP: classify a resident's message into a category, an intent and an urgency.

Public interface used by the handlers (keep it stable):
    classify(text) -> Verdict
    warm_up()               load the jieba dictionary and the keyword tables (call once at start)
    CATEGORIES              code -> Category (name, route, time limits)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str  # shown to residents, e.g. "环境卫生"
    route: str  # grid_worker, property, owners_committee, residents_committee, mediation, duty_desk
    response_hours: int
    resolve_hours: int


@dataclass(frozen=True, slots=True)
class Verdict:
    category: str  # a code in CATEGORIES
    confidence: float  # 0..1
    keywords: tuple[str, ...]  # the words that decided it, strongest first
    candidates: tuple[tuple[str, float], ...]  # best categories with scores, best first
    unsure: bool  # True: ask the resident to choose among candidates
    intent: str  # complaint, wish, question, status, command, smalltalk
    emergency: str | None  # None, or fire, gas, medical, violence ...


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("environment", "环境卫生", "grid_worker", 24, 168),
        Category("property", "物业服务", "property", 24, 168),
        Category("parking", "停车交通", "grid_worker", 24, 168),
        Category("noise", "噪音扰民", "grid_worker", 24, 168),
        Category("facilities", "公共设施", "grid_worker", 24, 168),
        Category("other", "其他", "grid_worker", 24, 168),
    )
}

_KEYWORDS = {
    "environment": ("垃圾", "卫生", "臭", "清扫"),
    "property": ("物业", "电梯", "保安", "物业费"),
    "parking": ("停车", "车位", "堵"),
    "noise": ("噪音", "吵", "装修"),
    "facilities": ("路灯", "坏了", "健身器材"),
}


def warm_up() -> None:
    """Nothing to load yet: the jieba classifier replaces this in the NLP issue."""


def classify(text: str) -> Verdict:
    hits = {code: [w for w in words if w in text] for code, words in _KEYWORDS.items()}
    scores = sorted(((len(h), code) for code, h in hits.items()), reverse=True)
    best_score, best = scores[0]
    if best_score == 0:
        return Verdict("other", 0.0, (), (), True, "complaint", None)
    total = sum(s for s, _ in scores)
    candidates = tuple((code, s / total) for s, code in scores if s)
    return Verdict(best, best_score / total, tuple(hits[best]), candidates, False, "complaint", None)
