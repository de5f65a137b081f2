"""Evaluate the cross-encoder judge as a whole-answer scorer, next to plain MiniLM cosine (same run).

    python training/evaluate_judge.py DATASETS_DIR [--model grader-judge-v1] [--json out.json]

Per student answer: the judge's probability = max over the reference and its alternatives of
Judge.score((reference, answer)); the baseline = max cosine of the bundled all-MiniLM-L6-v2
between the whole answer and each reference.

* 2-way data (SciEntsBank UA/UQ/UD, Beetle UA/UQ): accuracy with one threshold per method and
  dataset, fitted on the dataset's TRAIN split to maximise accuracy (the judge was trained on
  that split, so its train probabilities are over-confident: accuracy at the fixed 0.5 is shown
  too), and ROC AUC (threshold-free).
* SAF (unseen_answers, unseen_questions): Pearson of the score with ``score_norm``.

``--dev-fraction F`` evaluates instead on the training questions a ``--dev-fraction F`` training
run held out (same seed), for choosing settings without touching a test split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from graded_data import DATASET_FILES, Row, read_rows, split_dev  # noqa: E402

TWO_WAY = [
    ("scientsbank", "SciEntsBank", "test-unseen-answers", "UA"),
    ("scientsbank", "SciEntsBank", "test-unseen-questions", "UQ"),
    ("scientsbank", "SciEntsBank", "test-unseen-domains", "UD"),
    ("beetle", "Beetle", "test-unseen-answers", "UA"),
    ("beetle", "Beetle", "test-unseen-questions", "UQ"),
]
SAF = [("saf", "SAF", "unseen_answers", "UA"), ("saf", "SAF", "unseen_questions", "UQ")]


def rows_of(datasets: Path, name: str, split: str) -> list[Row]:
    rows, _ = read_rows(datasets, {n: ({split} if n == name else set()) for n in DATASET_FILES})
    return [r for r in rows if r.dataset == name]


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The cut (midpoint between sorted scores) that maximises accuracy of `score >= cut`."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    # predicting positive for s[i:] : correct = negatives before i + positives from i
    neg_before = np.concatenate([[0], np.cumsum(1 - y)])
    pos_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    acc = neg_before + pos_from
    i = int(np.argmax(acc))
    if i == 0:
        return float(s[0] - 1e-9)
    if i == len(s):
        return float(s[-1] + 1e-9)
    return float((s[i - 1] + s[i]) / 2)


class Scorers:
    def __init__(self, model: str, batch_size: int, device: str = "cpu"):
        from grader.embedding import Encoder
        from grader.judge import Judge

        t = time.time()
        self.judge = Judge.load(model, device=device)
        self.load_s = time.time() - t
        self.encoder = Encoder()
        self.batch_size = batch_size
        self.judge_s = 0.0
        self.judge_pairs = 0
        self.judge_tokens = 0
        self.cos_s = 0.0

    def score(self, rows: list[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = [(ref, r.student_answer) for r in rows for ref in r.references]
        owner = np.array([k for k, r in enumerate(rows) for _ in r.references])
        before = self.judge.forward_pairs
        t = time.time()
        probs = self.judge.score(pairs, batch_size=self.batch_size)
        self.judge_s += time.time() - t
        self.judge_pairs += self.judge.forward_pairs - before
        judge = np.full(len(rows), -np.inf)
        np.maximum.at(judge, owner, probs)
        t = time.time()
        texts = sorted({t for p in pairs for t in p})
        vecs = dict(zip(texts, self.encoder.encode(texts)))
        cos = np.array([float(vecs[a] @ vecs[b]) for a, b in pairs])
        self.cos_s += time.time() - t
        base = np.full(len(rows), -np.inf)
        np.maximum.at(base, owner, cos)
        labels = np.array([r.label for r in rows], dtype=float)
        return judge, base, labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--model", default="grader-judge-v1")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (for the judge; the baseline encoder picks its own)")
    parser.add_argument("--dev-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch
    from scipy.stats import pearsonr
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(args.threads)
    started = time.time()
    sc = Scorers(args.model, args.batch_size, args.device)
    print(f"judge {sc.judge.identity} loaded in {sc.load_s:.1f}s")
    results = []

    if args.dev_fraction:
        train_rows, _ = read_rows(args.datasets)
        fit, dev = split_dev(train_rows, args.dev_fraction, args.seed)
        plan = [(name, label, fit, dev) for name, label in (("scientsbank", "SciEntsBank"), ("beetle", "Beetle"), ("saf", "SAF"))]
        for name, label, fit_rows, dev_rows in plan:
            d = [r for r in dev_rows if r.dataset == name]
            f = [r for r in fit_rows if r.dataset == name]
            if name == "saf":
                j, b, y = sc.score(d)
                results.append({"data": f"{label} dev", "n": len(d), "metric": "pearson",
                                "judge": pearsonr(j, y)[0], "base": pearsonr(b, y)[0]})
                continue
            jf, bf, yf = sc.score(f)
            j, b, y = sc.score(d)
            tj, tb = best_threshold(jf, yf), best_threshold(bf, yf)
            results.append({"data": f"{label} dev", "n": len(d), "metric": "accuracy",
                            "judge": float(np.mean((j >= tj) == y)), "judge_0.5": float(np.mean((j >= 0.5) == y)),
                            "base": float(np.mean((b >= tb) == y)), "judge_auc": roc_auc_score(y, j),
                            "base_auc": roc_auc_score(y, b), "judge_threshold": tj, "base_threshold": tb})
    else:
        thresholds = {}
        for name in ("scientsbank", "beetle"):
            train = rows_of(args.datasets, name, DATASET_FILES[name][1])
            jf, bf, yf = sc.score(train)
            thresholds[name] = (best_threshold(jf, yf), best_threshold(bf, yf))
            print(f"{name} train ({len(train)}): thresholds judge {thresholds[name][0]:.3f}, base {thresholds[name][1]:.3f}; "
                  f"train accuracy judge {np.mean((jf >= thresholds[name][0]) == yf):.3f}", flush=True)
        for name, label, split, short in TWO_WAY:
            rows = rows_of(args.datasets, name, split)
            j, b, y = sc.score(rows)
            tj, tb = thresholds[name]
            results.append({"data": f"{label} {short}", "n": len(rows), "metric": "accuracy",
                            "judge": float(np.mean((j >= tj) == y)), "judge_0.5": float(np.mean((j >= 0.5) == y)),
                            "base": float(np.mean((b >= tb) == y)), "judge_auc": float(roc_auc_score(y, j)),
                            "base_auc": float(roc_auc_score(y, b)), "judge_threshold": tj, "base_threshold": tb})
            print(results[-1], flush=True)
        for name, label, split, short in SAF:
            rows = rows_of(args.datasets, name, split)
            j, b, y = sc.score(rows)
            results.append({"data": f"{label} {short}", "n": len(rows), "metric": "pearson (score_norm)",
                            "judge": float(pearsonr(j, y)[0]), "base": float(pearsonr(b, y)[0])})
            print(results[-1], flush=True)

    rate = sc.judge_pairs / sc.judge_s if sc.judge_s else float("nan")
    print()
    print(f"| data | n | metric | MiniLM cosine | judge (train-fitted threshold) | judge @ 0.5 | MiniLM AUC | judge AUC |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['data']} | {r['n']} | {r['metric']} | {r['base']:.3f} | **{r['judge']:.3f}** | "
              f"{r.get('judge_0.5', float('nan')):.3f} | {r.get('base_auc', float('nan')):.3f} | {r.get('judge_auc', float('nan')):.3f} |")
    print()
    print(f"judge: {sc.judge_pairs} pairs scored in {sc.judge_s:.0f}s = {rate:.0f} pairs/s "
          f"(batch {args.batch_size}, {args.threads} threads); MiniLM cosine {sc.cos_s:.0f}s; total {time.time() - started:.0f}s")
    if args.json:
        args.json.write_text(json.dumps({"model": sc.judge.identity, "results": results, "judge_pairs": sc.judge_pairs,
                                         "judge_s": sc.judge_s, "pairs_per_s": rate}, indent=2) + "\n")


if __name__ == "__main__":
    main()
