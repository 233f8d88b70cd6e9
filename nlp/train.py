"""Learning keyword weights from a labelled CSV (``text,label``) with scikit-learn.

The fitted model is linear over exactly the features the runtime generates (nlp.features), so exporting the
coefficients as keyword tables loses nothing: the runtime sum reproduces the fitted decision function.
"""
from __future__ import annotations

import csv
import hashlib
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import tokenizer
from .features import bigrams_of, char_ngrams, normalize, words_in
from .model import DEFAULT_CFG, Model, fit_temperature, read_table, write_model

DEFAULT_TRAIN = {"C": 1.0, "class_weight": "balanced", "prune": 1e-3, "word_scale": 0.7}


def read_csv(path: str | Path) -> tuple[list[str], list[str], list[dict]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("text") is not None and (r.get("label") or "").strip()]
    return [r["text"] for r in rows], [r["label"].strip() for r in rows], rows


def docs_of(texts: list[str], cfg: dict, tok=None) -> tuple[list[list[str]], list[list[str]]]:
    """Feature lists per message: (word block with table notation, char block)."""
    tok = tok or tokenizer.get()
    wdocs, cdocs = [], []
    lo, hi = cfg["chars"] if cfg.get("chars") else (0, 0)
    lim = cfg.get("char_limit", 0)
    for text in texts:
        t = normalize(text)
        w: list[str] = []
        if cfg["words"]:
            ws = words_in(t, tok, cfg)
            w = [f"<{x}>" for x in ws]
            if cfg["bigrams"]:
                w += [f"<{x}>" for x in bigrams_of(ws)]
        wdocs.append(w)
        cdocs.append(char_ngrams(t, lo, hi, lim) if hi else [])
    return wdocs, cdocs


class Block:
    """One feature block: vocabulary, idf, and the normalised design matrix."""

    def __init__(self, docs: list[list[str]], use_idf: bool = True):
        vocab: dict[str, int] = {}
        for d in docs:
            for f in d:
                if f not in vocab:
                    vocab[f] = len(vocab)
        self.vocab = vocab
        n = len(docs)
        df = np.zeros(len(vocab))
        for d in docs:
            for f in set(d):
                df[vocab[f]] += 1
        self.idf = np.log((1 + n) / (1 + df)) + 1 if use_idf else np.ones(len(vocab))
        self.idf_max = float(self.idf.max()) if len(vocab) and use_idf else 1.0

    def matrix(self, docs: list[list[str]], counts_unseen=None) -> sp.csr_matrix:
        """Rows of the block, each length-normalised; an unseen feature counts in the norm like the rarest
        seen one, unless `counts_unseen(feature)` says the runtime never sees it."""
        vocab, idf, m2 = self.vocab, self.idf, self.idf_max**2
        indptr, indices, data = [0], [], []
        for d in docs:
            c = Counter(d)
            norm = 0.0
            cols, vals = [], []
            for f, k in c.items():
                j = vocab.get(f)
                if j is None:
                    if counts_unseen is None or counts_unseen(f):
                        norm += k * m2  # as the runtime counts it: row 0 or 1 of the model
                else:
                    cols.append(j)
                    vals.append(k * idf[j])
                    norm += k * idf[j] ** 2
            s = 1.0 / math.sqrt(norm) if norm else 0.0
            indices += cols
            data += [v * s for v in vals]
            indptr.append(len(indices))
        return sp.csr_matrix((data, indices, indptr), shape=(len(docs), len(vocab)))


def design(wdocs, cdocs, blocks=None, use_idf=True, word_scale=1.0, cfg=None):
    """Design matrix [word block x word_scale | char block]; each block length-normalised on its own."""
    if blocks is None:
        blocks = (Block(wdocs, use_idf), Block(cdocs, use_idf))
    # A model reads full-mode words off its own vocabulary (Model.known_words): there, a word of two or more
    # Han characters it never saw is not found at all, while an unseen character or Latin run still counts.
    unseen = _counts_unseen if cfg and cfg.get("cut_all") and not cfg.get("bigrams") else None
    X = sp.hstack([blocks[0].matrix(wdocs, unseen) * word_scale, blocks[1].matrix(cdocs)]).tocsr()
    return X, blocks


def _counts_unseen(feature: str) -> bool:
    return len(feature) <= 3 or not "\u4e00" <= feature[1] <= "\u9fd5"  # "<字>", or not a Han word


def fit_linear(X, y, params):
    from sklearn.svm import LinearSVC

    clf = LinearSVC(C=params["C"], class_weight=params["class_weight"] or None, max_iter=5000, random_state=0)
    clf.fit(X, y)
    return clf


def scores_of(clf, X) -> np.ndarray:
    s = clf.decision_function(X)
    return s if s.ndim == 2 else np.stack([-s, s], 1)


def folds_of(texts: list[str], labels: list[str], k: int, seed: int = 0):
    """Stratified k folds grouped by a hash of the text's title (first field), like the organisers' split."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = [int(hashlib.md5(t.split(" ")[0].encode("utf-8")).hexdigest()[:8], 16) for t in texts]
    k = max(2, min(k, min(Counter(labels).values())))
    return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(texts, labels, groups)), k


def train(
    data: str | Path,
    out: str | Path,
    cfg: dict | None = None,
    params: dict | None = None,
    hand: str | Path | None = None,
    calib_folds: int = 3,
    log=print,
) -> dict:
    cfg = {**DEFAULT_CFG, **(cfg or {})}
    params = {**DEFAULT_TRAIN, **(params or {})}
    texts, labels, _ = read_csv(data)
    if len(set(labels)) < 2:
        raise SystemExit(f"{data}: need at least two labels")
    t0 = time.perf_counter()
    use_idf = cfg.get("idf", True)
    wdocs, cdocs = docs_of(texts, cfg)
    y = np.array(labels)
    X, blocks = design(wdocs, cdocs, use_idf=use_idf, word_scale=params["word_scale"], cfg=cfg)
    clf = fit_linear(X, y, params)
    classes = [str(c) for c in clf.classes_]
    # confidence calibration: one temperature fitted on held-out decision values
    folds, _ = folds_of(texts, labels, calib_folds)
    held = np.zeros((len(texts), len(classes)))
    for tr, te in folds:
        Xtr, b = design([wdocs[i] for i in tr], [cdocs[i] for i in tr], use_idf=use_idf,
                        word_scale=params["word_scale"], cfg=cfg)
        Xte, _ = design([wdocs[i] for i in te], [cdocs[i] for i in te], b, word_scale=params["word_scale"], cfg=cfg)
        m = fit_linear(Xtr, y[tr], params)
        s = scores_of(m, Xte)
        held[te] = s[:, [list(m.classes_).index(c) for c in classes]] if len(m.classes_) == len(classes) else 0
    yi = np.array([classes.index(l) for l in labels])
    temperature = fit_temperature(held, yi)
    # export: table weight = coefficient x idf (per occurrence, before length normalisation)
    coef = clf.coef_ if len(classes) > 2 else np.vstack([-clf.coef_[0], clf.coef_[0]])
    nwv = len(blocks[0].vocab)
    intercept = clf.intercept_ if len(classes) > 2 else np.array([-clf.intercept_[0], clf.intercept_[0]])
    keys = list(blocks[0].vocab) + list(blocks[1].vocab)
    idf = np.concatenate([blocks[0].idf, blocks[1].idf])
    idf_scaled = idf.copy()
    idf_scaled[:nwv] *= params["word_scale"]  # the word block's scale folds into its weights
    W = coef * idf_scaled[None, :]
    tables: dict[str, list[tuple[str, float, str]]] = {c: [] for c in classes}
    # pruning: a feature whose weights are all below the threshold is dropped entirely (it then counts in the
    # length normaliser like an unseen feature, with the block's largest idf); others keep all their weights
    keep = np.flatnonzero(np.abs(W).max(0) >= params["prune"]) if params["prune"] > 0 else np.arange(len(keys))
    for ci, c in enumerate(classes):
        row = W[ci]
        for j in keep[np.abs(row[keep]) >= params["prune"]] if params["prune"] > 0 else keep:
            tables[c].append((keys[j], float(row[j]), "learned"))
    if hand:
        for c in classes:
            f = Path(hand) / f"{c}.tsv"
            if f.exists():
                tables[c] = [r for r in read_table(f) if r[2] == "hand"] + tables[c]
    idf_map = {keys[j]: float(idf[j]) for j in keep} if use_idf else None
    meta = {
        "name": Path(out).name,
        "trained_on": str(data),
        "n_train": len(texts),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "features": {k: cfg[k] for k in DEFAULT_CFG} | {"idf": bool(use_idf)},
        "training": {**params, "learner": "LinearSVC (scikit-learn)"},
        "idf": {"max_word": blocks[0].idf_max, "max_char": blocks[1].idf_max},
        "temperature": round(temperature, 5),
        "unsure_below": cfg.get("unsure_below", 0.5),
        "min_evidence": cfg.get("min_evidence", 0.0),
        "n_table_features": int(len(keep)),
        "n_word_features": nwv,
        "n_char_features": len(keys) - nwv,
    }
    if hand and (Path(hand) / "model.json").exists():
        import json

        hm = json.loads((Path(hand) / "model.json").read_text(encoding="utf-8"))
        for k in ("unsure_below", "min_evidence", "description"):
            if k in hm:
                meta[k] = hm[k]
    write_model(out, classes, dict(zip(classes, intercept)), tables, meta, idf_map)
    if hand and (Path(hand) / "userdict.txt").exists() and Path(hand).resolve() != Path(out).resolve():
        (Path(out) / "userdict.txt").write_text((Path(hand) / "userdict.txt").read_text(encoding="utf-8"), encoding="utf-8")
    Model.load(out)  # parses the tables once more and caches big models, so the next start-up is quick
    n_rows = sum(len(v) for v in tables.values())
    log(f"trained on {len(texts)} messages, {len(classes)} classes, {len(keys)} features, "
        f"{n_rows} table rows, temperature {temperature:.3g}, {time.perf_counter() - t0:.1f} s -> {out}")
    return meta


def cross_validate(data, cfg=None, params=None, k=5, seed=0, log=print, baselines=False) -> dict:
    """k-fold CV (stratified, grouped by title hash) of these settings; optionally the TF-IDF SVM baselines."""
    from sklearn.metrics import accuracy_score, f1_score

    cfg = {**DEFAULT_CFG, **(cfg or {})}
    params = {**DEFAULT_TRAIN, **(params or {})}
    texts, labels, _ = read_csv(data)
    y = np.array(labels)
    folds, k = folds_of(texts, labels, k, seed)
    wdocs, cdocs = docs_of(texts, cfg)
    use_idf = cfg.get("idf", True)
    res: dict[str, list] = {"ours": []}
    if baselines:
        res["svm_char13"] = []
        res["svm_word12_char13"] = []
        base_words = docs_of(texts, {**DEFAULT_CFG, "cut_all": False, "hmm": True, "bigrams": True, "chars": None})[0]
    for tr, te in folds:
        Xtr, b = design([wdocs[i] for i in tr], [cdocs[i] for i in tr], use_idf=use_idf,
                        word_scale=params["word_scale"], cfg=cfg)
        Xte, _ = design([wdocs[i] for i in te], [cdocs[i] for i in te], b, word_scale=params["word_scale"], cfg=cfg)
        p = fit_linear(Xtr, y[tr], params).predict(Xte)
        res["ours"].append((accuracy_score(y[te], p), f1_score(y[te], p, average="macro")))
        if baselines:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.svm import LinearSVC

            vc = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
            vw = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True)  # jieba words + bigrams (HMM on)
            tr_t, te_t = [texts[i] for i in tr], [texts[i] for i in te]
            Ctr, Cte = vc.fit_transform(tr_t), vc.transform(te_t)
            p = LinearSVC().fit(Ctr, y[tr]).predict(Cte)
            res["svm_char13"].append((accuracy_score(y[te], p), f1_score(y[te], p, average="macro")))
            Wtr = vw.fit_transform([base_words[i] for i in tr])
            Wte = vw.transform([base_words[i] for i in te])
            p = LinearSVC().fit(sp.hstack([Wtr, Ctr]).tocsr(), y[tr]).predict(sp.hstack([Wte, Cte]).tocsr())
            res["svm_word12_char13"].append((accuracy_score(y[te], p), f1_score(y[te], p, average="macro")))
    out = {"n": len(texts), "folds": k}
    for name, v in res.items():
        a = np.array(v)
        out[name] = {"accuracy": round(float(a[:, 0].mean()), 4), "macro_f1": round(float(a[:, 1].mean()), 4),
                     "macro_f1_std": round(float(a[:, 1].std()), 4)}
        log(f"{name:20s} accuracy {a[:, 0].mean():.4f}  macro-F1 {a[:, 1].mean():.4f} ± {a[:, 1].std():.4f}")
    return out
