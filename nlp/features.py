"""Text normalisation and feature generation, shared by training and the runtime.

Everything the classifier sees of a message is a list of *features* (with repetitions):
  - words:    the jieba tokens (whitespace dropped): by default jieba's full mode, i.e. every dictionary
              word in the text, overlaps included              table notation  <词>
  - bigrams:  two jieba tokens in a row, joined by one space         table notation  <词 词>
  - chars:    every character sequence of length lo..hi of the text  table notation  字串 (plain)
Training and the runtime call the same functions, so a learned table is exactly what the runtime sums.
"""
from __future__ import annotations

import re

# Full-width ASCII -> half-width, ideographic space -> space, angle brackets (table notation) -> space.
_TRANS = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_TRANS[0x3000] = 0x20
_TRANS[ord("<")] = 0x20
_TRANS[ord(">")] = 0x20
_TRANS.update({ord(c): 0x20 for c in "\t\r\n\x0b\x0c\u00a0"})


def normalize(text: str) -> str:
    """Half-width, lower case, one kind of whitespace. Cheap (two C-level passes)."""
    return text.translate(_TRANS).lower().strip()


_HAN = re.compile("[\u4e00-\u9fd5]+")  # jieba's Han runs (re_han_cut_all)
_LATIN = re.compile("[a-z0-9+#]+")  # jieba's full mode keeps these runs whole (the text is lower case)


def words_in(text: str, tok, cfg: dict, known: dict | None = None) -> list[str]:
    """The word block of a normalised text.

    By default (``cut_all``) the words of jieba's word graph, as in its full mode: each Han character and
    every word of jieba's dictionary (with the community words) of two or more characters, overlaps
    included, plus each run of Latin letters and digits. As accurate in cross-validation as the exact cut
    (docs/nlp.md) and much cheaper: no route search.

    ``known`` (a prefix dictionary like jieba's, see ``vocabulary``) limits the words of two or more
    characters to those it holds: a model passes its own vocabulary, because a word it never saw in training
    carries no weight, and looking words up in a few thousand entries instead of jieba's 500,000 keeps the
    lookups in the CPU's cache."""
    if not cfg.get("cut_all"):
        toks = tok.lcut(text, HMM=cfg["hmm"])
        return [w for w in toks if not w.isspace()] if " " in text else toks
    out = _LATIN.findall(text)
    get = (tok.FREQ if known is None else known).get
    for run in _HAN.findall(text):
        out += dict_words(run, get)
    return out


def vocabulary(words) -> dict[str, int]:
    """A prefix dictionary of these words, in the form of jieba's ``FREQ``: each word of two or more
    characters -> 1, each shorter start of one (two characters or more) -> 0."""
    out: dict[str, int] = {}
    for w in words:
        for i in range(2, len(w)):
            out.setdefault(w[:i], 0)
    for w in words:
        if len(w) > 1:
            out[w] = 1
    return out


def dict_words(run: str, get) -> list[str]:
    """Each character of a Han run followed by the words of 2+ characters that start there, read straight off
    jieba's prefix dictionary ``FREQ`` (word -> frequency, prefix of a word -> 0) as ``Tokenizer.get_DAG``
    does (tests/test_nlp_properties.py checks), with one lookup per step instead of two and no graph."""
    out = []
    n = len(run)
    for k in range(n):
        out.append(run[k])
        i = k + 2
        if i > n:
            break
        frag = run[k:i]
        f = get(frag)
        while f is not None:
            if f:
                out.append(frag)
            if i == n:
                break
            i += 1
            frag = run[k:i]
            f = get(frag)
    return out


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
