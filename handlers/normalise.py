"""What a typed message looks like once the phone's keyboard has had its way with it.

Residents type on phones: full-width digits (１０００３８), a zero-width space pasted in with a number, a
direction mark from a contact card, a full stop after a command (我的诉求。). Every router matches the
normalised text; the record keeps what the resident really wrote (Inbound.text).
"""
from __future__ import annotations

import re
import sys
import unicodedata

# Format characters (Unicode category Cf: zero-width spaces and joiners, direction marks, the BOM, soft
# hyphens …) carry no meaning in a chat message; NFKC leaves them in. One regular expression drops them all.
def _ranges(codes: list[int]) -> str:
    """A character class of these code points, as runs (a class of 163 single characters is twice as slow)."""
    out, start = [], None
    for a, b in zip(codes, codes[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            out.append(re.escape(chr(start)) + ("-" + re.escape(chr(a)) if a > start else ""))
            start = None
    return "[" + "".join(out) + "]"


_INVISIBLE = re.compile(_ranges([c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]))
_SPACES = re.compile(r"\s+")
# What may trail (or lead) a command without changing it: punctuation and symbols of both widths, emoji.
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits to ASCII, ideographic space to space), invisible characters
    dropped, runs of whitespace as one space, trimmed."""
    if text.isascii():  # most commands and every digit answer: NFKC would change nothing
        return _SPACES.sub(" ", text).strip()
    if not unicodedata.is_normalized("NFKC", text):  # a quick check; most Chinese text is NFKC already
        text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    return _SPACES.sub(" ", text).strip()


def command_words(text: str) -> str:
    """A normalised text as commands are matched: leading and trailing punctuation and emoji trimmed
    (我的诉求。 -> 我的诉求, 【查询】100038 stays itself inside)."""
    return _EDGE.sub("", text)


_HAN = re.compile("[\u3400-\u9fff]")


def has_han(text: str) -> bool:
    """Whether there is a Chinese character in it: without one, a message ("ok", "???", "asdf") names no problem."""
    return _HAN.search(text) is not None
