"""``linli nlp train|eval|cv|filing`` — learn keyword tables, score a model, choose settings by cross-validation,
measure which messages would be filed as tickets.

Wire into another argparse program with ``register(subparsers)``; run alone with ``python -m nlp.cli ...``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


FILING_DATA = ["tests/data/community_messages.csv", "tests/data/non_complaints.csv"]


def _add_settings(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("features and learner (defaults chosen by 5-fold CV, see docs/nlp.md)")
    g.add_argument("--C", type=float, default=None, help="LinearSVC regularisation (default 1.0)")
    g.add_argument("--no-balance", action="store_true", help="no class weights (default: balanced)")
    g.add_argument("--chars", default=None, help="character n-gram lengths lo,hi (default 1,2; 0 = none)")
    g.add_argument("--char-limit", type=int, default=None, help="only the first N characters give char n-grams")
    g.add_argument("--bigrams", action="store_true", help="add word bigrams (default: words only)")
    g.add_argument("--no-idf", action="store_true", help="no idf weighting")
    g.add_argument("--exact-cut", action="store_true", help="jieba's exact cut instead of its full mode for the words")
    g.add_argument("--hmm", action="store_true", help="exact cut with jieba's HMM for unknown words (slower)")
    g.add_argument("--word-scale", type=float, default=None, help="weight of the word block vs the char block (default 0.7)")
    g.add_argument("--prune", type=float, default=None, help="drop learned weights below this (default 0.001)")


def _settings(a) -> tuple[dict, dict]:
    cfg: dict = {}
    params: dict = {}
    if a.chars is not None:
        cfg["chars"] = None if a.chars in ("0", "") else [int(x) for x in a.chars.split(",")]
    if a.char_limit is not None:
        cfg["char_limit"] = a.char_limit
    if a.bigrams:
        cfg["bigrams"] = True
    if a.no_idf:
        cfg["idf"] = False
    if a.exact_cut or a.hmm:
        cfg["cut_all"] = False
    if a.hmm:
        cfg["hmm"] = True
    if a.C is not None:
        params["C"] = a.C
    if a.word_scale is not None:
        params["word_scale"] = a.word_scale
    if a.no_balance:
        params["class_weight"] = None
    if getattr(a, "prune", None) is not None:
        params["prune"] = a.prune
    return cfg, params


def register(subparsers) -> None:
    """Add ``train``, ``eval`` and ``cv`` to an argparse subparsers object."""
    p = subparsers.add_parser("train", help="从标注好的 CSV (text,label) 学关键词权重 / learn keyword weights from a labelled CSV")
    p.add_argument("data", help="CSV with columns text,label")
    p.add_argument("--out", required=True, help="model directory to write (keyword tables)")
    p.add_argument("--hand", default=None, help="model directory whose hand-written rows are kept in the output")
    _add_settings(p)
    p.set_defaults(nlp_func=cmd_train, run=cmd_train)

    p = subparsers.add_parser("eval", help="在标注好的 CSV 上评估模型（准确率、速度），最后一行是 JSON / score a model; last line is JSON")
    p.add_argument("data", help="CSV with columns text,label[,intent,emergency]")
    p.add_argument("--model", default=None, help="model directory (default: the shipped community model)")
    p.add_argument("--reps", type=int, default=3, help="timing repetitions (alternating; best of)")
    p.add_argument("--errors", type=int, default=0, help="print up to N misclassified messages")
    p.set_defaults(nlp_func=cmd_eval, run=cmd_eval)

    p = subparsers.add_parser("filing", help="哪些消息会立成工单：投诉召回率与非投诉立单率 / complaint recall "
                              "and the share of non-complaints filed; last line is JSON")
    p.add_argument("data", nargs="*", default=FILING_DATA,
                   help="CSV files: text plus should_file (1/0), or intent,emergency (community set), or neither "
                        "(all non-complaints); an optional part column is reported per part "
                        f"(default: {' '.join(FILING_DATA)})")
    p.add_argument("--errors", type=int, default=10, help="print up to N wrong decisions per file (default 10)")
    p.set_defaults(nlp_func=cmd_filing, run=cmd_filing)

    p = subparsers.add_parser("cv", help="训练设置的 k 折交叉验证 / k-fold cross-validation of training settings")
    p.add_argument("data", help="CSV with columns text,label")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines", action="store_true", help="also the TF-IDF + LinearSVC baselines, same folds")
    _add_settings(p)
    p.set_defaults(nlp_func=cmd_cv, run=cmd_cv)


def cmd_train(a) -> int:
    from .train import train

    cfg, params = _settings(a)
    train(a.data, a.out, cfg, params, hand=a.hand)
    return 0


def cmd_cv(a) -> int:
    from .train import cross_validate

    cfg, params = _settings(a)
    res = cross_validate(a.data, cfg, params, k=a.folds, seed=a.seed, baselines=a.baselines)
    print(json.dumps(res, ensure_ascii=False))
    return 0


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_eval(a) -> int:
    import csv

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    from . import DEFAULT_MODEL, load

    clf = load(a.model or DEFAULT_MODEL)
    clf.classify("启动")  # first call included: the service is ready after this
    startup = time.perf_counter() - t0
    rss_model = _rss_mb()

    with open(a.data, encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("text") is not None]
    texts = [r["text"] for r in rows]
    gold = [(r.get("label") or "").strip() for r in rows]
    n = len(texts)
    if not n:
        print(f"{a.data} 里没有数据 / no rows", file=sys.stderr)
        return 1

    import jieba
    import logging

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    jieba.lcut("预热")
    # timing: the baseline (plain jieba.lcut: default dictionary, HMM on), the full classifier and the category
    # part alone (tokenise, features, table sums, confidence, keywords; no intent/emergency rules), alternating
    # in chunks of 100 messages so that all three see the same machine load; repeated --reps times.
    verdicts = [clf.classify(t) for t in texts]
    score, tok, classify, lcut = clf.model.score, clf.tok, clf.classify, jieba.lcut
    perf = time.perf_counter
    reps = []
    for _ in range(max(1, a.reps)):
        tj = tc = tk = 0.0
        for i in range(0, n, 100):
            chunk = texts[i : i + 100]
            s = perf()
            for t in chunk:
                lcut(t)
            tj += perf() - s
            s = perf()
            for t in chunk:
                classify(t)
            tc += perf() - s
            s = perf()
            for t in chunk:
                score(t, tok)
            tk += perf() - s
        reps.append((tj, tc, tk))
    jieba_rate = n / min(r[0] for r in reps)
    clf_rate = n / min(r[1] for r in reps)
    core_rate = n / min(r[2] for r in reps)
    ratio = sorted(r[0] / r[1] for r in reps)[len(reps) // 2]  # median of the per-run ratios
    core_ratio = sorted(r[0] / r[2] for r in reps)[len(reps) // 2]

    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    pred = [v.category for v in verdicts]
    labels = sorted(set(gold) | set(pred))
    acc = accuracy_score(gold, pred)
    mf1 = f1_score(gold, pred, average="macro", labels=sorted(set(gold)), zero_division=0)
    P, R, F, S = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    print(f"model      {clf.model.path}  ({len(clf.model.labels) - 2} keywords, trained on "
          f"{clf.model.meta.get('trained_on', '?')})")
    print(f"data       {a.data}  n={n}")
    print(f"machine    {platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}")
    print(f"accuracy   {acc:.4f}\nmacro-F1   {mf1:.4f}\n")
    w = max(8, max(len(l) for l in labels) + 2)
    print(f"{'class':{w}s} {'P':>6s} {'R':>6s} {'F1':>6s} {'n':>6s}")
    for l, p, r, f1, s_ in zip(labels, P, R, F, S):
        print(f"{l:{w}s} {p:6.3f} {r:6.3f} {f1:6.3f} {s_:6d}")
    cm = confusion_matrix(gold, pred, labels=labels)
    print("\nconfusion matrix (rows: true, columns: predicted)")
    print(" " * w + "".join(f"{i:>6d}" for i in range(len(labels))))
    for i, (l, row) in enumerate(zip(labels, cm)):
        print(f"{l[:w - 4]:{w - 4}s}{i:>3d} " + "".join(f"{x:6d}" for x in row))
    out = {
        "accuracy": round(acc, 4),
        "macro_f1": round(mf1, 4),
        "msgs_per_s": round(clf_rate, 1),
        "n": n,
        "jieba_msgs_per_s": round(jieba_rate, 1),
        "speed_ratio": round(ratio, 3),
        "core_msgs_per_s": round(core_rate, 1),
        "core_speed_ratio": round(core_ratio, 3),
        "startup_s": round(startup, 3),
        "rss_mb": round(rss_model, 1),
        "model_rss_mb": round(rss_model - rss0, 1),
    }
    unsure = sum(v.unsure for v in verdicts)
    out["unsure_rate"] = round(unsure / n, 4)
    if any("intent" in r for r in rows):
        pairs = [((r.get("intent") or "").strip(), v.intent) for r, v in zip(rows, verdicts) if r.get("intent")]
        if pairs:
            out["intent_accuracy"] = round(sum(g == p for g, p in pairs) / len(pairs), 4)
            ilabels = sorted({g for g, _ in pairs} | {p for _, p in pairs})
            print("\nintent confusion (rows: true)")
            icm = confusion_matrix([g for g, _ in pairs], [p for _, p in pairs], labels=ilabels)
            for l, row in zip(ilabels, icm):
                print(f"{l:10s} " + "".join(f"{x:6d}" for x in row))
    if any("emergency" in r for r in rows):
        em = [((r.get("emergency") or "").strip(), v.emergency) for r, v in zip(rows, verdicts)]
        pos = [(g, p) for g, p in em if g]
        neg = [(g, p) for g, p in em if not g]
        if pos:
            out["emergency_recall"] = round(sum(p is not None for _, p in pos) / len(pos), 4)
            out["emergency_type_recall"] = round(sum(p == g for g, p in pos) / len(pos), 4)
            out["emergency_n"] = len(pos)
        if neg:
            out["emergency_false_alarm_rate"] = round(sum(p is not None for _, p in neg) / len(neg), 4)
        missed = [r["text"] for r, (g, p) in zip(rows, em) if g and p is None]
        if missed:
            print("\nmissed emergencies:\n  " + "\n  ".join(missed))
    print(f"\nspeed      classifier {clf_rate:,.0f} msg/s (full classify(): category, keywords, intent, emergency)")
    print(f"           category only {core_rate:,.0f} msg/s (tokenise, features, sums, confidence, keywords)")
    print(f"           jieba.lcut {jieba_rate:,.0f} msg/s (default dictionary, HMM on) -> ratio {ratio:.3f}"
          f" (category only {core_ratio:.3f}); rates: best of {len(reps)} runs, ratios: median of the runs,"
          f" alternating in chunks of 100 messages")
    print(f"start-up   {startup:.3f} s (tokenizer + tables + first call); RSS {rss_model:.0f} MB "
          f"(+{rss_model - rss0:.0f} MB for the model)")
    if a.errors:
        print("\nerrors (true -> predicted: text [keywords])")
        k = 0
        for g, v, t in zip(gold, verdicts, texts):
            if g != v.category and k < a.errors:
                k += 1
                print(f"  {g} -> {v.category} {v.confidence:.2f}: {t[:80]} {list(v.keywords)}")
    print(json.dumps(out, ensure_ascii=False))
    return 0


def should_file(row: dict) -> tuple[bool, bool]:
    """(should it be filed, does it name a problem) for a row of a filing CSV: ``should_file`` when given;
    else a community row labelled complaint or wish, or an emergency; a file without either column holds
    non-complaints only. A community row of category ``other`` names no problem the taxonomy knows
    (我要投诉, asdfghjkl, 。。。): it counts in the strict recall only."""
    if "should_file" in row:
        yes = row["should_file"].strip() == "1"
        return yes, yes
    if "intent" in row:
        yes = (row.get("intent") or "").strip() in ("complaint", "wish") or bool((row.get("emergency") or "").strip())
        return yes, yes and ((row.get("label") or "").strip() != "other" or bool(row.get("emergency", "").strip()))
    return False, False


def filing_figures(rows: list[dict], decide) -> dict:
    """Recall of the complaints and the share of non-complaints filed, for rows of one CSV."""
    decided = [(row, decide(row["text"])) for row in rows]
    pos = [(r, d) for r, d in decided if should_file(r)[0]]
    named = [(r, d) for r, d in decided if should_file(r)[1]]
    neg = [(r, d) for r, d in decided if not should_file(r)[0]]
    out: dict = {"n": len(rows)}
    if pos:
        out["complaints"] = len(pos)
        out["complaint_recall"] = round(sum(d == "file" for _, d in named) / len(named), 4) if named else None
        out["complaint_recall_all"] = round(sum(d == "file" for _, d in pos) / len(pos), 4)
        em = [(r, d) for r, d in pos if (r.get("emergency") or "").strip()]
        if em:
            out["emergencies"] = len(em)
            out["emergencies_filed"] = sum(d == "file" for _, d in em)
    if neg:
        out["non_complaints"] = len(neg)
        out["non_complaints_filed"] = round(sum(d == "file" for _, d in neg) / len(neg), 4)
        expected = [(r["expect"], d) for r, d in neg if r.get("expect")]
        if expected:
            out["answer_as_expected"] = round(sum(e == d for e, d in expected) / len(expected), 4)
    return out


def cmd_filing(a) -> int:
    import csv
    from pathlib import Path

    from . import filing

    summary: dict = {}
    for path in a.data:
        if not Path(path).is_file():
            print(f"找不到文件 / file not found: {path}", file=sys.stderr)
            return 1
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("text") is not None]
        parts = {"all": rows}
        if rows and "part" in rows[0]:
            for r in rows:
                parts.setdefault(r["part"], []).append(r)
        name = Path(path).stem
        summary[name] = {}
        for part, part_rows in parts.items():
            fig = filing_figures(part_rows, filing)
            summary[name][part] = fig
            shown = ", ".join(f"{k} {v}" for k, v in fig.items())
            print(f"{name:22s} {part:8s} {shown}")
        wrong = [(r["text"], d) for r in rows if (d := filing(r["text"])) != "file" and should_file(r)[0]
                 or d == "file" and not should_file(r)[0]]
        for text, decision in wrong[:a.errors]:
            print(f"    {decision:16s} {text[:60]}")
    first = lambda key: next((fig["all"][key] for fig in summary.values() if key in fig["all"]), None)  # noqa: E731
    out = {"complaint_recall": first("complaint_recall"), "complaint_recall_all": first("complaint_recall_all"),
           "non_complaints_filed": first("non_complaints_filed"), "files": summary}
    print(json.dumps(out, ensure_ascii=False))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nlp.cli", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    register(sub)
    a = ap.parse_args(argv)
    return a.nlp_func(a)


if __name__ == "__main__":
    sys.exit(main())
