"""Keyword tables: loading, scoring and explaining.

A model is a directory:
    model.json        classes, biases, feature settings, confidence temperature, unsure threshold
    <class>.tsv       one table per class: ``keyword<TAB>weight<TAB>source`` (source: hand | learned)
    _idf.tsv          optional: ``keyword<TAB>idf`` (learned; keywords not listed count with the block's max idf)
    userdict.txt      optional extra jieba words for this model

Keyword notation in the tables (see docs/nlp.md):
    垃圾          a character sequence: counts once per occurrence in the message (any length)
    <垃圾>        the jieba word 垃圾
    <垃圾 分类>   the jieba words 垃圾 then 分类
Rows for the same keyword in one table add up, so a hand row can correct a learned one. Lines starting with
``#`` are comments.

Runtime decision, per block (words+bigrams; character sequences):
    ``score[c] = bias[c] + Σ_block  Σ weight[c] / √(Σ idf²)``   (idf = 1 without _idf.tsv: √(number of features))
— a lookup and a sum (the idf² sum is one more column of the same matrix); the confidence is
``softmax(temperature × score)``.
"""
from __future__ import annotations

import array
import itertools
import json
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .features import _TRANS, normalize, vocabulary, words_in

_KEY_TRANS = {**_TRANS}
for _c in "<>":
    _KEY_TRANS.pop(ord(_c), None)

_ZERO = itertools.repeat(0)
_ONE = itertools.repeat(1)
_ADD = operator.add
_JOIN = "".join
_SPACE_JOIN = " ".join

_CACHE_VERSION = 6  # bump when the Model layout changes (invalidates pickled caches)

DEFAULT_CFG = {
    "words": True,
    "cut_all": True,
    "bigrams": False,
    "chars": [1, 2],
    "char_limit": 0,
    "hmm": False,
}


def parse_keyword(key: str) -> tuple[str, str]:
    """Table notation -> (kind, key): kind is 'word', 'bigram' or 'chars'.

    Spaces inside a character sequence are significant (a learned 2-gram can be "a "), so nothing is stripped
    here; read_table strips hand-written keywords only."""
    if len(key) > 2 and key[0] == "<" and key[-1] == ">":
        inner = key[1:-1].strip()
        if " " in inner.strip():
            a, b = inner.split(None, 1)
            return "bigram", normalize(a) + " " + normalize(b)
        return "word", normalize(inner)
    return "chars", key.translate(_KEY_TRANS).lower()


def show_keyword(kind: str, key: str) -> str:
    return key if kind == "chars" else f"<{key}>"


def read_table(path: Path) -> list[tuple[str, float, str]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line[0] == "#" or line.isspace() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{path}:{n}: expected keyword<TAB>weight[<TAB>source]")
        try:
            weight = float(parts[1])
        except ValueError:
            raise ValueError(f"{path}:{n}: weight {parts[1]!r} is not a number") from None
        source = parts[2].strip() if len(parts) > 2 else "hand"
        key = parts[0] if source == "learned" else parts[0].strip()
        if key:
            rows.append((key, weight, source))
    return rows


@dataclass
class Scored:
    scores: list[float]  # raw linear scores per class
    probs: list[float]  # softmax(temperature * scores)
    contrib: dict[str, float]  # keyword (table notation) -> contribution to the best class
    evidence: float  # what the known keywords add to the best class's score (0: nothing known)


@dataclass
class Model:
    path: Path
    classes: list[str]
    bias: np.ndarray
    cfg: dict
    temperature: float
    unsure_below: float
    meta: dict
    W: np.ndarray = field(repr=False)  # rows x (classes + 1); last column idf²; rows 0/1 unknown word/char
    labels: list[str] = field(repr=False)  # row -> keyword in table notation
    word_ix: dict = field(repr=False)
    bigram_ix: dict = field(repr=False)
    char_ix: dict = field(repr=False)
    long_keys: list = field(repr=False)  # (chars, row) matched by substring search
    long_prefix: dict = field(default_factory=dict, repr=False)  # first two chars -> [(chars, row)]
    extra_words: tuple = ()
    bias_list: list = field(default_factory=list, repr=False)
    short_keys: list = field(default_factory=list, repr=False)  # 1-char keys outside the n-gram range
    known_words: dict | None = field(default=None, repr=False)  # prefix dictionary of word_ix (see rows_of)

    def __post_init__(self):
        self.bias_list = [float(x) for x in self.bias]
        self.short_keys = [(k, r) for k, r in self.long_keys if len(k) < 2]
        if self.cfg.get("cut_all") and not self.cfg.get("bigrams"):
            # Full-mode words are a bag, so the model reads them off its own vocabulary: a few thousand entries
            # stay in the CPU's cache, jieba's 500,000 do not (classify ~20 % faster inside the server).
            # Dictionary words the model has no row for are left out; they used to only lengthen the word
            # block's norm (same CV scores, docs/nlp.md; tests/test_nlp_properties.py checks the words).
            self.known_words = vocabulary(self.word_ix)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, cache: bool = True) -> "Model":
        """Parse the tables; big models are cached (pickle keyed by the files' names, sizes and mtimes,
        so an edit of any file invalidates it) in $LINLI_NLP_CACHE or ~/.cache/linli-nlp."""
        path = Path(path)
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in (".tsv", ".json", ".txt"))
        size = sum(f.stat().st_size for f in files)
        cpath = None
        if cache and size > 2_000_000:
            import hashlib
            import os
            import pickle

            sig = hashlib.sha1(repr([_CACHE_VERSION, str(path.resolve())] + [(f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                                             for f in files]).encode()).hexdigest()
            cdir = Path(os.environ.get("LINLI_NLP_CACHE") or Path.home() / ".cache" / "linli-nlp")
            cpath = cdir / f"{sig}.pkl"
            try:
                with open(cpath, "rb") as fh:
                    return pickle.load(fh)
            except Exception:
                pass
        model = cls._parse(path)
        if cpath is not None:
            try:
                cpath.parent.mkdir(parents=True, exist_ok=True)
                tmp = cpath.with_suffix(f".{os.getpid()}.tmp")
                with open(tmp, "wb") as fh:
                    pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, cpath)
            except OSError:
                pass
        return model

    @classmethod
    def _parse(cls, path: Path) -> "Model":
        meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
        classes = list(meta["classes"])
        cfg = {**DEFAULT_CFG, "cut_all": False, **meta.get("features", {})}  # older models: exact cut
        lo, hi = cfg["chars"] if cfg.get("chars") else (0, 0)
        index: dict[tuple[str, str], int] = {}
        labels = ["", ""]
        idf_rows: list[tuple[int, float]] = []
        raw: dict[str, int] = {}  # keyword as written -> row (most keywords appear in several tables)
        idf_meta = meta.get("idf") or {}
        idf_path = path / "_idf.tsv"
        if idf_path.exists():
            for line in idf_path.read_text(encoding="utf-8").splitlines():
                if not line or line[0] == "#":
                    continue
                key, _, v = line.partition("\t")
                kind, k = parse_keyword(key)
                if not k:
                    continue
                r = index[(kind, k)] = raw[key] = len(labels)
                labels.append(show_keyword(kind, k))
                idf_rows.append((r, float(v)))
        r_: list[int] = []
        c_: list[int] = []
        w_: list[float] = []
        for c, name in enumerate(classes):
            f = path / f"{name}.tsv"
            if not f.exists():
                continue
            rget = raw.get
            for key, weight, _source in read_table(f):
                r = rget(key)
                if r is None:
                    kind, k = parse_keyword(key)
                    if not k:
                        continue
                    r = index.get((kind, k))
                    if r is None:
                        r = index[(kind, k)] = len(labels)
                        labels.append(show_keyword(kind, k))
                    raw[key] = r
                r_.append(r)
                c_.append(c)
                w_.append(weight)
        ncol = len(classes) + 1
        flat = np.array(r_, dtype=np.int64) * ncol + np.array(c_, dtype=np.int64)
        W = np.bincount(flat, weights=np.array(w_, dtype=np.float64), minlength=len(labels) * ncol)
        W = W.reshape(len(labels), ncol).astype(np.float32)
        # idf² column: listed keywords their own, everything else the block's maximum (as an unseen feature)
        max_w = float(idf_meta.get("max_word", 1.0))
        max_c = float(idf_meta.get("max_char", 1.0))
        for (kind, _k), r in index.items():
            W[r, -1] = (max_c if kind == "chars" else max_w) ** 2
        W[0, -1] = max_w**2
        W[1, -1] = max_c**2
        for r, v in idf_rows:
            W[r, -1] = v * v
        W = np.ascontiguousarray(W)
        word_ix, bigram_ix, char_ix, long_keys = {}, {}, {}, []
        extra = []
        for (kind, k), r in index.items():
            if kind == "word":
                word_ix[k] = r
                if len(k) > 1:
                    extra.append(k)
            elif kind == "bigram":
                bigram_ix[k] = r
            elif lo <= len(k) <= hi:
                char_ix[k] = r
            else:
                long_keys.append((k, r))
        extra_words = []
        ud = path / "userdict.txt"
        if ud.exists():
            from .tokenizer import read_userdict

            extra_words = [w for w, _ in read_userdict(ud)]
        return cls(
            path=path,
            classes=classes,
            bias=np.array([float(meta.get("bias", {}).get(c, 0.0)) for c in classes]),
            cfg=cfg,
            temperature=float(meta.get("temperature", 1.0)),
            unsure_below=float(meta.get("unsure_below", 0.5)),
            meta=meta,
            W=W,
            labels=labels,
            word_ix=word_ix,
            bigram_ix=bigram_ix,
            char_ix=char_ix,
            long_keys=long_keys,
            long_prefix=_index_by_prefix(long_keys),
            # hand words and long hand keywords go into the tokenizer so jieba cuts them out whole
            extra_words=tuple(extra_words) + tuple(k for k, _ in long_keys if len(k) > 1),
        )

    # ------------------------------------------------------------------ scoring
    def rows_of(self, text: str, tok, normalized: bool = False) -> tuple[list[int], list[int]]:
        """Feature rows (with repetitions) of the word block and of the character block.

        Written for speed (this is the classifier's cost on top of jieba): keys are built and looked up with
        C-level map() calls; unknown features map to row 0 (word) / 1 (chars), which carry only their idf²."""
        cfg = self.cfg
        t = text if normalized else normalize(text)
        wrows: list[int] = []
        crows: list[int] = []
        if cfg["words"]:
            toks = words_in(t, tok, cfg, self.known_words)
            wrows = list(map(self.word_ix.get, toks, _ZERO))
            if cfg["bigrams"] and len(toks) > 1:
                wrows += map(self.bigram_ix.get, map(_SPACE_JOIN, zip(toks, toks[1:])), _ZERO)
        chars = cfg.get("chars")
        if chars:
            lo, hi = chars
            lim = cfg.get("char_limit", 0)
            s = t[:lim] if lim and len(t) > lim else t
            cget = self.char_ix.get
            if lo <= 1 <= hi:
                crows = list(map(cget, s, _ONE))
            if lo <= 2 <= hi:
                bg = list(map(_ADD, s, s[1:]))
                crows += map(cget, bg, _ONE)
            if lo <= 3 <= hi:
                crows += map(cget, map(_JOIN, zip(s, s[1:], s[2:])), _ONE)
            for k in range(max(lo, 4), hi + 1):
                crows += [cget(s[i : i + k], 1) for i in range(len(s) - k + 1)]
        if self.long_keys:
            # longer character sequences (hand keywords), indexed by their first two characters
            hits: list[int] = []
            lp = self.long_prefix
            pairs = bg if chars and lo <= 2 <= hi and s is t else map(_ADD, t, t[1:])
            for p in filter(lp.__contains__, dict.fromkeys(pairs)):  # in text order: the same in every process
                for k, r in lp[p]:
                    c = t.count(k)
                    if c:
                        hits += [r] * c
            if self.short_keys:
                hits += [r for k, r in self.short_keys if k in t]
            if hits:
                if chars:
                    crows += hits
                else:
                    wrows += hits
        return wrows, crows

    def raw_scores(self, wrows, crows) -> tuple[list[float], float, float, np.ndarray | None]:
        """Scores per class (a list), the two block normalisers, and the gathered weight rows.

        Per-message work is one gather and one reduction in numpy; the handful of per-class numbers are
        combined in plain Python (cheaper than more numpy calls on 7-12 values)."""
        nwr = len(wrows)
        rows = wrows + crows
        bias = self.bias_list
        if not rows:
            return list(bias), 0.0, 0.0, None
        # list -> index array through array.array is ~3x faster than numpy's own conversion
        A = self.W.take(np.frombuffer(array.array("q", rows), dtype=np.int64), axis=0)
        if nwr and crows:
            a, b = np.add.reduceat(A, (0, nwr)).tolist()  # word block sums, char block sums (+ Σ idf²)
            nw, nc = 1.0 / math.sqrt(a[-1]), 1.0 / math.sqrt(b[-1])
            s = [x + y * nw + z * nc for x, y, z in zip(bias, a, b)]
        else:
            a = A.sum(0).tolist()
            n = 1.0 / math.sqrt(a[-1])
            nw, nc = (n, 0.0) if nwr else (0.0, n)
            s = [x + y * n for x, y in zip(bias, a)]
        return s, nw, nc, A

    def score(self, text: str, tok, explain: bool = True, normalized: bool = False) -> Scored:
        wrows, crows = self.rows_of(text, tok, normalized)
        s, nw, nc, A = self.raw_scores(wrows, crows)
        best = max(range(len(s)), key=s.__getitem__)
        top_s, t = s[best], self.temperature
        z = [math.exp((v - top_s) * t) for v in s]
        total = sum(z)
        probs = [v / total for v in z]
        contrib: dict[str, float] = {}
        # evidence: what the known keywords add to the best class (0 when nothing in the message is known)
        evidence = top_s - self.bias_list[best]
        if explain and A is not None:
            nwr = len(wrows)
            col = A[:, best] * nc
            if nwr:
                col[:nwr] = A[:nwr, best] * nw
            n = col.size
            # the 8 strongest contributions in score units (block normaliser applied), merged per keyword
            top = np.argpartition(col, n - 8)[n - 8 :] if n > 8 else np.arange(n)
            rows = wrows + crows
            labels = self.labels
            for v, i in zip(col[top].tolist(), top.tolist()):
                if v > 0:
                    key = labels[rows[i]]
                    contrib[key] = contrib.get(key, 0.0) + v
        return Scored(s, probs, contrib, evidence)

    def predict(self, texts, tok) -> list[str]:
        out = []
        for t in texts:
            s = self.raw_scores(*self.rows_of(t, tok))[0]
            out.append(self.classes[max(range(len(s)), key=s.__getitem__)])
        return out


def _index_by_prefix(keys: list[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for k, r in keys:
        if len(k) >= 2:
            out.setdefault(k[:2], []).append((k, r))
    return out


def write_model(
    out: str | Path,
    classes: list[str],
    bias: dict[str, float],
    tables: dict[str, list[tuple[str, float, str]]],
    meta: dict,
    idf: dict[str, float] | None = None,
) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "classes": classes, "bias": {c: round(float(bias[c]), 6) for c in classes}}
    (out / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if idf:
        with open(out / "_idf.tsv", "w", encoding="utf-8") as f:
            f.write("# learned idf of every training feature (keeps the length normalisation exact)\n")
            for k, v in idf.items():
                f.write(f"{k}\t{v:.5g}\n")
    elif (out / "_idf.tsv").exists():
        (out / "_idf.tsv").unlink()
    for c in classes:
        rows = tables.get(c, [])
        hand = [r for r in rows if r[2] == "hand"]
        learned = sorted((r for r in rows if r[2] != "hand"), key=lambda r: -abs(r[1]))
        with open(out / f"{c}.tsv", "w", encoding="utf-8") as f:
            f.write(f"# {c}: keyword<TAB>weight<TAB>source — hand rows first, then learned rows by |weight|\n")
            for k, w, src in hand + learned:
                f.write(f"{k}\t{w:.5g}\t{src}\n")


def softmax_nll(scores: np.ndarray, y: np.ndarray, t: float) -> float:
    z = scores * t
    z = z - z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1))
    return float((lse - z[np.arange(len(y)), y]).mean())


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """One scalar so that softmax(t * score) is calibrated (minimum log-loss on held-out scores)."""
    best = (math.inf, 1.0)
    for t in np.exp(np.linspace(math.log(0.05), math.log(50), 120)):
        best = min(best, (softmax_nll(scores, y, t), float(t)))
    return best[1]
