"""A private jieba.Tokenizer with the community user dictionary.

A private instance (not the global ``jieba.dt``) keeps the rest of the process unaffected and makes the
comparison with plain ``jieba.lcut`` fair: both tokenise with the same algorithm (HMM on, jieba's default).
Loading happens only on the first call of :func:`get` (``nlp.warm_up`` calls it at start-up).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

TABLES = Path(__file__).with_name("tables")
USERDICT = TABLES / "userdict.txt"

_lock = threading.Lock()
_tok = None


def read_userdict(path: Path = USERDICT) -> list[tuple[str, int]]:
    """``word [freq]`` per line, ``#`` comments. Default frequency 20000 (beats most splits)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 20000
        out.append((parts[0], freq))
    return out


def get(extra_words: tuple[str, ...] = ()):
    """The shared tokenizer, initialised once (thread-safe). ``extra_words`` are added on top."""
    global _tok
    if _tok is None:
        with _lock:
            if _tok is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tok = jieba.Tokenizer()
                tok.initialize()
                for word, freq in read_userdict():
                    tok.add_word(word, freq)
                _tok = tok
    for w in extra_words:
        if w not in _tok.FREQ or not _tok.FREQ[w]:
            _tok.add_word(w, 20000)
    return _tok
