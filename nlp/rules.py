"""Intent and emergency rules: regular expressions kept in editable TSV files (nlp/tables/*.tsv).

intent.tsv     ``kind<TAB>regex``; kinds: command, smalltalk, status, wish, question, complaint_marker
emergency.tsv  ``code<TAB>regex``; code is a key of nlp.EMERGENCIES (fire, gas, medical, violence ...);
               the earliest match in the message decides the code
Texts are normalised (half-width, lower case) before matching. Order of decision for the intent:
command > smalltalk (whole message is a greeting/thanks) > status > wish > question (unless a complaint
marker is present) > complaint.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .features import normalize

TABLES = Path(__file__).with_name("tables")
INTENTS = ("complaint", "wish", "question", "status", "command", "smalltalk")
INTENT_SPAN = 160


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


@dataclass
class Rules:
    command: Fast | None
    smalltalk: Fast | None
    status: Fast | None
    wish: Fast | None
    question: Fast | None
    complaint_marker: Fast | None
    emergencies: Fast | None  # one alternation with a named group per code

    @classmethod
    def load(cls, folder: Path = TABLES) -> "Rules":
        it = read_patterns(folder / "intent.tsv")
        em = read_patterns(folder / "emergency.tsv")
        return cls(
            command=_compile(it.get("command", []), index=False),
            smalltalk=_compile(it.get("smalltalk", []), index=False),
            status=_compile(it.get("status", [])),
            wish=_compile(it.get("wish", [])),
            question=_compile(it.get("question", []), index=False),
            complaint_marker=_compile(it.get("complaint_marker", []), index=False),
            emergencies=Fast(em) if em else None,
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
        m = self.emergencies.search(text if normalized else normalize(text))
        return m.lastgroup if m else None
