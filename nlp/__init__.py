"""Keyword NLP: classify a resident's message into a category, an intent and an urgency.

Public interface used by the handlers (keep it stable):
    classify(text) -> Verdict
    emergency(text) -> str | None   the emergency kind alone (the rules, not the classifier)
    warm_up()               load the jieba dictionary and the keyword tables (call once at start)
    CATEGORIES              code -> Category (name, route, time limits, urgency, co_routes)
Also: EMERGENCIES (code -> Emergency(name, call)), load(model_dir) -> Classifier, DEFAULT_MODEL.

Importing this package is cheap: jieba, numpy and the tables are loaded by warm_up() or the first classify().
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import NamedTuple

from .taxonomy import CATEGORIES, EMERGENCIES, ROUTES as ROUTES_OK, Category, Emergency

DEFAULT_MODEL = Path(__file__).with_name("tables") / "community"
# The classifier's vectors are a few thousand numbers: BLAS threads only spin beside the server (measured with
# callgrind: about 80k instructions a message on the spinning threads). Set before numpy is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__all__ = [
    "CATEGORIES", "EMERGENCIES", "ROUTES_OK", "Category", "Emergency", "Verdict", "Classifier",
    "classify", "emergency", "filing", "warm_up", "load", "DEFAULT_MODEL",
]


class Verdict(NamedTuple):  # a named tuple: made for every message, at a quarter of a frozen dataclass's cost
    category: str  # a code in CATEGORIES
    confidence: float  # 0..1
    keywords: tuple[str, ...]  # the words that decided it, strongest first
    candidates: tuple[tuple[str, float], ...]  # best categories with scores, best first
    unsure: bool  # True: ask the resident to choose among candidates
    intent: str  # complaint, wish, question, status, command, smalltalk
    emergency: str | None  # None, or fire, gas, medical, violence ...
    urgency: str = "normal"  # normal | high | emergency (emergency set, or a high-urgency category)
    evidence: float = 0.0  # total weight of the known keywords found (0: nothing known in the message)
    filing: str = "file"  # "file" as a ticket | "ask" whether it is a problem | "answer:<kind>" (see filing())


class Classifier:
    """A loaded model (keyword tables) plus the tokenizer and the intent/emergency rules."""

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL):
        from . import rules, tokenizer
        from .features import normalize
        from .model import Model

        self.normalize = normalize
        self.model = Model.load(model_dir)
        self.tok = tokenizer.get(self.model.extra_words)
        self.rules = rules.Rules.load()
        self.min_evidence = float(self.model.meta.get("min_evidence", 0.0))

    def classify(self, text: str) -> Verdict:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        m = self.model
        t = self.normalize(text)
        intent, emergency = self.rules.analyse(t, normalized=True)
        sc = m.score(t, self.tok, normalized=True)
        classes = m.classes
        ranked = sorted(zip(sc.probs, classes), reverse=True)[:3]
        conf, best = ranked[0]
        candidates = tuple([(c, p) for p, c in ranked])
        # unsure: a weak winner, too little known vocabulary, or "other" (nothing recognised to route by)
        unsure = conf < m.unsure_below or sc.evidence <= self.min_evidence or best == "other"
        if intent in ("command", "smalltalk") and text and not text.isspace():
            # nothing to route: the service answers these itself
            best, unsure = ("other" if "other" in classes else best), False
        c = sc.contrib
        kws = _readable(sorted(c, key=c.__getitem__, reverse=True)) if c else ()
        if emergency:
            urgency = "emergency"
        else:
            cat = CATEGORIES.get(best)
            urgency = cat.urgency if cat else "normal"
        filing = self.rules.filing(t, intent, emergency, sc.evidence, unsure, normalized=True)
        return Verdict(best, conf, kws, candidates, unsure, intent, emergency, urgency, sc.evidence, filing)


def _readable(ranked: list[str], k: int = 5) -> tuple[str, ...]:
    """Strongest keywords first, leaving out a character sequence already inside a stronger keyword
    (垃圾 > 垃, 圾): they did contribute, but say nothing new to the reader."""
    kept: list[str] = []
    shown = "\0"  # the shown keywords, each followed by \0: one substring test covers them all
    for key in ranked:
        if key[0] == "<":
            plain = key[1:-1]
            if f"\0{plain}\0" in shown:
                continue
        elif key in shown:
            continue
        else:
            plain = key
        kept.append(key)
        shown += plain + "\0"
        if len(kept) == k:
            break
    return tuple(kept)


_lock = threading.Lock()
_default: Classifier | None = None


def load(model_dir: str | Path = DEFAULT_MODEL) -> Classifier:
    return Classifier(model_dir)


def warm_up(model_dir: str | Path | None = None) -> Classifier:
    """Load jieba's dictionary, the community words and the default tables once (idempotent, thread-safe).

    ``model_dir`` replaces the default model (and reloads: a hand edit takes effect)."""
    global _default
    with _lock:
        if _default is None or model_dir is not None:
            _default = Classifier(model_dir or DEFAULT_MODEL)
        return _default


def classify(text: str) -> Verdict:
    """Category, confidence, deciding keywords, candidates, unsure flag, intent and emergency of a message."""
    c = _default or warm_up()
    v = c.classify(text)
    if v.category not in CATEGORIES:  # a model with other labels: keep the interface's promise
        v = v._replace(category="other", unsure=True)
    return v


def emergency(text: str) -> str | None:
    """The emergency kind in a message, or None: the rules alone, without the classifier (cheap enough to
    ask of every message before anything else)."""
    c = _default or warm_up()
    return c.rules.emergency(c.normalize(text), normalized=True)


def filing(text: str) -> str:
    """What to do with a message: "file" (a ticket), "ask" ("是要反映问题吗？1 是 2 不是") or "answer:<kind>"
    (kinds: help, report, my_tickets, query, bind, who, contact, hours, thanks, greeting, ack, status).
    The same as ``classify(text).filing``."""
    return classify(text).filing
