"""Evaluate a judge on its own, as a whole-answer classifier, next to plain MiniLM cosine (same run).

    python training/evaluate_judge.py DATASETS --judge PATH [--dev-fraction F] [--fit-rows N] [--json out.json]

Per answer: P(entailment) of the judge, max over the reference and its alternatives; the baseline:
max cosine of the bundled all-MiniLM-L6-v2 between the answer and each reference. 2-way data:
ROC AUC, and accuracy with one threshold per method and dataset fitted on a seeded sample of the
TRAIN split (`--fit-rows`); SAF: Pearson with ``score_norm``. With ``--dev-fraction F`` (the
value the judge was trained with) the rows are the training questions that run held out, and
thresholds are fitted on the others: for choosing settings without touching a test split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from grader.evaluation.metrics import auroc, fit_threshold, pearson  # noqa: E402

from judge_data import DATASET_FILES, Row, read_rows, split_dev  # noqa: E402

TEST_SPLITS = {
    "scientsbank": ["test-unseen-answers", "test-unseen-questions", "test-unseen-domains"],
    "beetle": ["test-unseen-answers", "test-unseen-questions"],
    "saf": ["unseen_answers", "unseen_questions"],
}


def judge_scores(judge, rows: list[Row]) -> np.ndarray:  # noqa: ANN001
    pairs = [(ref, r.answer) for r in rows for ref in r.references]
    probs = judge.classify(pairs)[:, 0]
    out, k = [], 0
    for r in rows:
        out.append(float(probs[k : k + len(r.references)].max()))
        k += len(r.references)
    return np.array(out)


def cosine_scores(encoder, rows: list[Row]) -> np.ndarray:  # noqa: ANN001
    encoder.prime([r.answer for r in rows] + [t for r in rows for t in r.references])
    return np.array([float(np.max(encoder.encode(r.references) @ encoder.encode([r.answer])[0])) for r in rows])


def measure(judge, encoder, name: str, rows: list[Row], fit: list[Row]) -> dict:  # noqa: ANN001
    result: dict = {"n": len(rows)}
    for method, score in (("judge", lambda rs: judge_scores(judge, rs)), ("cosine", lambda rs: cosine_scores(encoder, rs))):
        s = score(rows)
        y = np.array([r.label for r in rows])
        if name == "saf":
            result[method] = {"pearson": pearson(s, y)}
            continue
        t = fit_threshold(score(fit), np.array([int(r.label >= 1) for r in fit]))
        result[method] = {"auc": auroc(s, y >= 1), "accuracy": float(np.mean((s > t) == (y >= 1))), "threshold": t}
    return result


def main(argv: list[str] | None = None) -> None:
    from grader.written.embedding import Encoder
    from grader.written.judge import Judge

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--judge", required=True)
    parser.add_argument("--dev-fraction", type=float, default=0.0)
    parser.add_argument("--fit-rows", type=int, default=1500, help="train rows per dataset the thresholds are fitted on")
    parser.add_argument("--only", action="append", choices=list(DATASET_FILES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    judge, encoder = Judge.load(args.judge), Encoder()
    rng = np.random.default_rng(args.seed)
    results: dict = {}
    for name in args.only or list(DATASET_FILES):
        train, _ = read_rows(args.datasets, splits={name: DATASET_FILES[name][1]})
        if args.dev_fraction:
            fit, dev = split_dev(train, args.dev_fraction, args.seed)
            evaluations = {"dev": dev}
        else:
            fit, evaluations = train, {s: read_rows(args.datasets, splits={name: s})[0] for s in TEST_SPLITS[name]}
        if len(fit) > args.fit_rows:
            fit = [fit[int(i)] for i in sorted(rng.choice(len(fit), size=args.fit_rows, replace=False))]
        for split, rows in evaluations.items():
            results[f"{name} {split}"] = measure(judge, encoder, name, rows, fit)
            print(f"{name} {split}: {json.dumps(results[f'{name} {split}'])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
