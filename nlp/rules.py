"""Intent and emergency rules: regular expressions kept in editable TSV files (nlp/tables/*.tsv).

intent.tsv     ``kind<TAB>regex``; kinds: command, smalltalk, status, wish, question, complaint_marker
emergency.tsv  ``code<TAB>regex``; code is a key of nlp.EMERGENCIES (fire, gas, medical, violence ...);
               the earliest match in the message decides the code
answers.tsv    ``kind<TAB>regex``: whole messages the service answers itself (see ``Answers``)
Texts are normalised (half-width, lower case) before matching. Order of decision for the intent:
command > smalltalk (whole message is a greeting/thanks) > status > wish > question (unless a complaint
marker is present) > complaint.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .features import normalize

_HAN = re.compile("[\u4e00-\u9fff]")

TABLES = Path(__file__).with_name("tables")
INTENTS = ("complaint", "wish", "question", "status", "command", "smalltalk")
INTENT_SPAN = 160
ANSWER_SPAN = 40  # longer messages are never menu words, thanks or questions about the service
PROBLEM_EVIDENCE = 1.0  # known keywords weighing this much make a message a problem (see filing())
PROBLEM_HAN = 12  # so do this many Chinese characters: a resident who writes that much is telling us something
PLACED_HAN = 7  # ... or this many, when the classifier places the message in a category (chat is shorter)
FILE, ASK = "file", "ask"


def read_patterns(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kind, sep, pat = line.partition("\t")
        if not sep or not pat.strip():
            raise ValueError(f"{path}:{n}: expected kind<TAB>regex")
        out.setdefault(kind.strip(), []).append(pat.strip())
    return out


def _first_chars(items) -> set[str] | None:
    """Characters a match of the parsed (sub)pattern can start with; None when unknown (e.g. '.')."""
    from re import _constants as C  # noqa: N812
    from re import _parser

    out: set[str] = set()
    for op, av in items:
        if op is C.AT:  # anchors are zero-width
            continue
        if op is C.LITERAL:
            out.add(chr(av))
            return out
        if op is C.IN:
            for iop, iav in av:
                if iop is C.LITERAL:
                    out.add(chr(iav))
                elif iop is C.RANGE and iav[1] - iav[0] < 2000:
                    out.update(chr(x) for x in range(iav[0], iav[1] + 1))
                else:
                    return None
            return out
        if op is C.SUBPATTERN:
            sub, nullable = av[3], av[3].getwidth()[0] == 0
        elif op is C.BRANCH:
            subs = [_first_chars(b) for b in av[1]]
            if any(x is None for x in subs):
                return None
            out.update(*subs)
            if not any(b.getwidth()[0] == 0 for b in av[1]):
                return out
            continue
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            sub, nullable = av[2], av[0] == 0 or av[2].getwidth()[0] == 0
        else:
            return None
        f = _first_chars(sub if isinstance(sub, _parser.SubPattern) else sub)
        if f is None:
            return None
        out |= f
        if not nullable:
            return out
    return None  # the whole pattern can match empty


def split_top(pattern: str) -> list[str]:
    """Split a regex at its top-level '|' (outside groups and character classes)."""
    out, depth, cls, esc, cur = [], 0, False, False, []
    for ch in pattern:
        if esc:
            esc = False
        elif ch == "\\":
            esc = True
        elif cls:
            cls = ch != "]"
        elif ch == "[":
            cls = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [p for p in out if p]


class Fast:
    """Alternatives indexed by their possible first character.

    Python's re tries every alternative at every position; here a C-level scan finds the positions whose
    character can start some alternative, and only the alternatives starting with that character are tried
    there (a small regex per character). Same matches as ``re.search`` of the whole alternation, earliest
    position first; ``lastgroup`` of the match is the kind (for named kinds)."""

    def __init__(self, kinds: dict[str, list[str]] | list[str], named: bool = True, index: bool = True):
        from re import _parser

        if not isinstance(kinds, dict):
            kinds, named = {"x": list(kinds)}, False
        alts = [(k, a) for k, pats in kinds.items() for p in pats for a in split_top(p)]
        self.re = re.compile(self._join(alts, named))
        self.pre = None
        if not index:  # plain re (faster for single-character classes and very common first characters)
            self.search = self.re.search
            return
        by_char: dict[str, list] = {}
        generic = []
        for k, a in alts:
            first = _first_chars(_parser.parse(a))
            if not first:
                generic.append((k, a))
                continue
            for ch in first:
                by_char.setdefault(ch, []).append((k, a))
        self.generic = re.compile(self._join(generic, named)) if generic else None
        self.by_char = {ch: re.compile(self._join(v, named)) for ch, v in by_char.items()}
        self.pre = re.compile("[" + "".join(re.escape(c) for c in sorted(by_char)) + "]") if by_char else None

    @staticmethod
    def _join(alts, named: bool) -> str:
        if not named:
            return "|".join(f"(?:{a})" for _, a in alts)
        groups: dict[str, list[str]] = {}
        for k, a in alts:
            groups.setdefault(k, []).append(a)
        return "|".join(f"(?P<{k}>{'|'.join(f'(?:{a})' for a in v)})" for k, v in groups.items())

    def search(self, text: str):
        g = self.generic.search(text) if self.generic else None
        if self.pre is not None:
            by_char = self.by_char
            for m in self.pre.finditer(text, 0, g.start() if g else len(text)):
                i = m.start()
                r = by_char[text[i]].match(text, i)
                if r:
                    return r
        return g

    def fullmatch(self, text: str):
        return self.re.fullmatch(text)


def _compile(pats: list[str], index: bool = True) -> Fast | None:
    return Fast(pats, index=index) if pats else None


class Answers:
    """Whole messages the service answers itself (answers.tsv): menu words typed out, questions about the
    service, thanks, greetings. ``kind(text)`` is the answer's kind, or None.

    A message of social pieces only (你好，在吗 / 好的，谢谢 / 路灯修好了，辛苦了) is thanks if a piece thanks,
    else a greeting if a piece greets, else an acknowledgement if a piece acknowledges; "resolved" pieces
    alone (路灯修好了) are no answer: the resident is asked what they mean.
    A menu word or question may have greetings, thanks and acknowledgements around it (你好，请问居委会几点
    上班？谢谢). Those patterns must start with known characters (no leading ``.``): the question patterns
    are only tried on a message whose first characters can start one, which keeps complaints cheap."""

    SOCIAL = ("thanks", "greeting", "ack")
    _EDGE = r"[\W_\d]*"  # punctuation, spaces, emoji, digits (你好1: a greeting whatever the digit)
    _TAIL = r"[啊呀哈啦哟哦呢嘛吧哇呗嘞噢喔了]*[\W_\d]*"  # particles and punctuation after a piece
    _POLITE = r"(?:请问|想问一?下|问一?下|麻烦问一?下|那个)"

    def __init__(self, kinds: dict[str, list[str]]):
        from re import _parser

        def alt(names) -> str:
            return "|".join(f"(?:{p})" for k in names for p in kinds.get(k, []))

        pieces = self.SOCIAL + ("resolved",)
        piece = f"(?:{alt(pieces)}){self._TAIL}"
        around = f"(?:{alt(self.SOCIAL)}){self._TAIL}"
        self._each = {k: re.compile(alt((k,))) for k in ("thanks", "greeting")}
        # 好 is an acknowledgement, but also in 修好了: one is there when the message cannot be read without it
        self._without_ack = re.compile(f"{self._EDGE}(?:(?:{alt(('thanks', 'greeting', 'resolved'))}){self._TAIL})+")
        self.asks = [k for k in kinds if k not in pieces]
        # Each regular expression below is tried only where its first piece can start: one dictionary lookup
        # per leading character instead of a hundred alternatives (the classifier runs on every message).
        social_at: dict[str, list[str]] = {}
        ask_at: dict[str, dict[str, list[str]]] = {}
        for k in self.SOCIAL + tuple(self.asks):
            for pattern in kinds.get(k, []):
                for a in split_top(pattern):
                    first = _first_chars(_parser.parse(a))
                    if not first:
                        raise ValueError(f"answers.tsv, {k}: {a!r} must start with known characters")
                    for ch in first:
                        if k in self.SOCIAL:
                            social_at.setdefault(ch, []).append(a)
                        else:
                            ask_at.setdefault(ch, {}).setdefault(k, []).append(a)
        self._social_at = {ch: re.compile(f"(?:{'|'.join(f'(?:{a})' for a in alts)}){self._TAIL}(?:{piece})*")
                           for ch, alts in social_at.items()}
        # a message may also open with "it is fixed" (路灯修好了，谢谢): the whole alternation, when it could
        self._social = re.compile(f"{self._EDGE}(?:{piece})+")
        self._resolved = re.compile("|".join(f"(?:{p})" for p in kinds.get("resolved", ()))) \
            if kinds.get("resolved") else None
        self._ask_at = {ch: re.compile("(?:" + "|".join(f"(?P<{k}>{'|'.join(f'(?:{a})' for a in alts)})"
                                                          for k, alts in by_kind.items())
                                       + f"){self._TAIL}(?:{around})*")
                        for ch, by_kind in ask_at.items()}
        # what may open a message before the question (你好，/ 请问): each alternative alone, to find every end
        opening_at = {ch: list(alts) for ch, alts in social_at.items()}
        for a in split_top(self._POLITE[3:-1]):
            for ch in _first_chars(_parser.parse(a)):
                opening_at.setdefault(ch, []).append(a)
        self._opening_at = {ch: [re.compile(a) for a in alts] for ch, alts in opening_at.items()}
        self._tail = re.compile(self._TAIL)
        self._lead = re.compile(self._EDGE)

    def kind(self, text: str) -> str | None:
        lead = self._lead.match(text).end()
        starts = range(lead + 1) if lead < len(text) else range(len(text))  # where the first piece may start
        social = False
        for i in starts:
            if (r := self._social_at.get(text[i])) and r.fullmatch(text, i):
                social = True
                break
        else:
            social = ("了" in text and self._resolved is not None and self._resolved.match(text, lead) is not None
                      and self._social.fullmatch(text) is not None)
        if social:
            for k, r in self._each.items():  # thanks, else a greeting, else an acknowledgement
                if r.search(text):
                    return k
            return "ack" if not self._without_ack.fullmatch(text) else None  # 路灯修好了 alone: ask
        todo = list(starts)
        seen: set[int] = set()
        while todo:  # the question starts here, or after one more opening piece (你好，请问…)
            i = todo.pop()
            if i in seen or i >= len(text) or len(seen) > 12:
                continue
            seen.add(i)
            ch = text[i]
            if (r := self._ask_at.get(ch)) and (m := r.fullmatch(text, i)):
                return next(k for k in r.groupindex if m.group(k) is not None)
            for r in self._opening_at.get(ch, ()):
                if m := r.match(text, i):
                    todo += (m.end(), self._tail.match(text, m.end()).end())
        return None


@dataclass
class Rules:
    command: Fast | None
    smalltalk: Fast | None
    status: Fast | None
    wish: Fast | None
    question: Fast | None
    complaint_marker: Fast | None
    emergencies: Fast | None  # one alternation with a named group per code
    answers: Answers | None = None
    # The last text asked about and its emergency: the hallway asks nlp.emergency first, then the classifier
    # asks again for the same message (a dataclass field would compare rules by it: not one).
    _last_emergency = ("\0", None)

    @classmethod
    def load(cls, folder: Path = TABLES) -> "Rules":
        it = read_patterns(folder / "intent.tsv")
        em = read_patterns(folder / "emergency.tsv")
        answers = folder / "answers.tsv"
        return cls(
            command=_compile(it.get("command", []), index=False),
            smalltalk=_compile(it.get("smalltalk", []), index=False),
            status=_compile(it.get("status", [])),
            wish=_compile(it.get("wish", [])),
            question=_compile(it.get("question", []), index=False),
            complaint_marker=_compile(it.get("complaint_marker", [])),
            emergencies=Fast(em) if em else None,
            answers=Answers(read_patterns(answers)) if answers.is_file() else None,
        )

    def analyse(self, text: str, normalized: bool = False) -> tuple[str, str | None]:
        """(intent, emergency) of a message; normalises once. The intent is read from the first
        INTENT_SPAN characters (how a message opens says what it wants; long letters stay cheap); emergencies
        are searched in the whole text."""
        t = text if normalized else normalize(text)
        head = t if len(t) <= INTENT_SPAN else t[:INTENT_SPAN]
        return self.intent(head, normalized=True), self.emergency(t, normalized=True)

    def intent(self, text: str, normalized: bool = False) -> str:
        t = text if normalized else normalize(text)
        if not t:
            return "smalltalk"
        if self.command and len(t) <= 20 and self.command.fullmatch(t):
            return "command"
        if self.smalltalk and len(t) <= 20 and self.smalltalk.fullmatch(t):
            return "smalltalk"
        if self.status and self.status.search(t):
            return "status"
        if self.wish and self.wish.search(t):
            return "wish"
        if self.question and self.question.search(t):
            if not (self.complaint_marker and self.complaint_marker.search(t)):
                return "question"
        return "complaint"

    def emergency(self, text: str, normalized: bool = False) -> str | None:
        if self.emergencies is None:
            return None
        t = text if normalized else normalize(text)
        last = self._last_emergency
        if t == last[0]:
            return last[1]
        m = self.emergencies.search(t)
        found = m.lastgroup if m else None
        self._last_emergency = (t, found)  # one assignment of a tuple: safe with classify in threads
        return found

    def filing(self, text: str, intent: str, emergency: str | None, evidence: float, unsure: bool,
               normalized: bool = False) -> str:
        """What the service should do with a message: "file" it as a ticket, "ask" whether it is a problem
        ("是要反映问题吗？1 是 2 不是"), or "answer:<kind>" it (a menu word, a question about the service,
        thanks, a greeting, a status query). Only a message that is clearly a problem is filed: an
        emergency, a micro-wish, or a complaint with a word of a problem in it, enough known keywords
        (``evidence``), enough Chinese text to be telling us something, or a sentence the classifier places
        in a category (not ``unsure``) that is longer than a chat phrase."""
        if emergency:
            return FILE  # never asked about, never answered away
        t = text if normalized else normalize(text)
        if self.answers is not None and len(t) <= ANSWER_SPAN and (kind := self.answers.kind(t)):
            return "answer:" + kind
        if intent == "status":
            return "answer:status"
        if intent == "wish":
            return FILE
        if intent == "smalltalk":
            return "answer:ack"  # 哈哈, 呵呵, an emoji: nothing to ask about
        if intent != "complaint":
            return ASK  # a question about something else, a command out of place, small talk
        if evidence >= PROBLEM_EVIDENCE or (self.complaint_marker and self.complaint_marker.search(t)):
            return FILE
        han = len(_HAN.findall(t))
        return FILE if han >= PROBLEM_HAN or (han >= PLACED_HAN and not unsure) else ASK
