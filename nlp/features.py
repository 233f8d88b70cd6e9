"""Text normalisation and feature generation, shared by training and the runtime.

Everything the classifier sees of a message is a list of *features* (with repetitions):
  - words:    the jieba tokens (whitespace dropped)                  table notation  <词>
  - bigrams:  two jieba tokens in a row, joined by one space         table notation  <词 词>
  - chars:    every character sequence of length lo..hi of the text  table notation  字串 (plain)
Training and the runtime call the same functions, so a learned table is exactly what the runtime sums.
"""
from __future__ import annotations

# Full-width ASCII -> half-width, ideographic space -> space, angle brackets (table notation) -> space.
_TRANS = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_TRANS[0x3000] = 0x20
_TRANS[ord("<")] = 0x20
_TRANS[ord(">")] = 0x20
_TRANS.update({ord(c): 0x20 for c in "\t\r\n\x0b\x0c\u00a0"})


def normalize(text: str) -> str:
    """Half-width, lower case, one kind of whitespace. Cheap (two C-level passes)."""
    return text.translate(_TRANS).lower().strip()


def words_of(tokens: list[str]) -> list[str]:
    return [t for t in tokens if not t.isspace()]


def char_ngrams(text: str, lo: int, hi: int, limit: int = 0) -> list[str]:
    if limit and len(text) > limit:
        text = text[:limit]
    n = len(text)
    out: list[str] = []
    for k in range(lo, hi + 1):
        out.extend([text[i : i + k] for i in range(n - k + 1)])
    return out


def bigrams_of(words: list[str]) -> list[str]:
    return [a + " " + b for a, b in zip(words, words[1:])]
