"""Fit the confidence model (grader.written.confidence) on dev predictions, and say how well it ranks.

The model is a logistic regression, P(the grade is within a quarter of the maximum of the human's)
from the signals the scorer writes for every judged answer, blended with the hand-made confidence.
It is fitted on the dev rows of benchmarks/dev_sweep.py (train-split questions the judge never
saw), one CSV per dataset and exemplar count, each dataset weighing the same. Every number it
reports is out of fold (question-grouped cross-validation), so a fit is judged on questions it was
not fitted on: the logistic model alone, the hand-made confidence, and each blend of the two. The
blend kept gains most on average over the hand-made confidence among those that lose on no file
by more than --tolerance (the rule every scoring change follows: it must hold everywhere, not on
average; 0.01 is half a standard error of the AUROC on a few hundred answers). Test splits are
never read: confirm the shipped fit there with benchmarks/agreement.py.

    python benchmarks/dev_sweep.py DATASETS_DIR --cache DIR --predictions PRED   # and with --exemplars 5
    python training/fit_confidence.py PRED --out grader/models/grader-confidence-v1/confidence.json

Deterministic (Newton's method on an L2-penalised log-loss; contiguous question folds): no seed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.evaluation.metrics import LARGE_ERROR, auroc  # noqa: E402
from grader.written.confidence import HAND_MADE, SHIPPED, SIGNALS  # noqa: E402

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE  # noqa: E402


@dataclass
class Rows:
    """The judged rows of one predictions file."""

    name: str
    dataset: str
    questions: list[str]
    x: np.ndarray
    right: np.ndarray
    hand_made: np.ndarray
    sha256: str
    """Of the columns read (see _digest)."""


def read(path: Path) -> Rows:
    """Signals, and whether the grade was right, for every row the judge read."""
    with path.open(encoding="utf-8", newline="") as fh:
        records = [r for r in csv.DictReader(fh) if r.get(f"signal_{SIGNALS[0]}")]
    if not records:
        raise SystemExit(f"{path}: no row has the confidence signals (write it with dev_sweep.py --predictions)")
    gold = np.array([float(r["gold"]) for r in records])
    top = np.array([float(r["max_points"]) for r in records])
    points = np.array([float(r["grader_points"]) for r in records])
    return Rows(
        name=path.stem,
        dataset=path.stem.split("_dev_")[0],
        questions=[r["question_id"] for r in records],
        x=np.array([[float(r[f"signal_{n}"]) for n in SIGNALS] for r in records]),
        right=(np.abs(points - gold) / top < LARGE_ERROR - 1e-9).astype(float),
        hand_made=np.array([float(r[f"signal_{HAND_MADE}"]) for r in records]),
        sha256=_digest(records),
    )


def _digest(records: list[dict[str, str]]) -> str:
    """sha256 of what the fit reads (not the confidence the rows were graded with): equal inputs, equal digest."""
    columns = ["row", "question_id", "gold", "max_points", "grader_points"] + [
        f"signal_{n}" for n in (*SIGNALS, HAND_MADE)
    ]
    text = "\n".join("\t".join(r.get(c, "") for c in columns) for r in records)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float) -> np.ndarray:
    """[intercept, weights...] minimising sum(weight * log-loss) + l2/2 * |weights|^2 (Newton's method)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    penalty = np.diag([0.0] + [l2] * x.shape[1])
    beta = np.zeros(design.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        gradient = design.T @ (weight * (p - y)) + penalty @ beta
        hessian = design.T @ (design * (weight * p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def predict(beta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(beta[0] + x @ beta[1:])))


def pooled(files: list[Rows]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Every file's rows together, each dataset's rows weighing the same in all (the weights sum to n)."""
    per_dataset: dict[str, int] = defaultdict(int)
    for f in files:
        per_dataset[f.dataset] += len(f.right)
    n = sum(per_dataset.values())
    weight = np.concatenate([np.full(len(f.right), n / len(per_dataset) / per_dataset[f.dataset]) for f in files])
    groups = [f"{f.dataset}:{q}" for f in files for q in f.questions]
    return np.vstack([f.x for f in files]), np.concatenate([f.right for f in files]), weight, groups


def cross_validated(files: list[Rows], l2: float, folds: int) -> list[np.ndarray]:
    """Out-of-fold P(right) for every row, file by file; a question's rows (all files) share a fold."""
    x, y, weight, groups = pooled(files)
    names = sorted(set(groups))
    fold_of = {g: i % folds for i, g in enumerate(names)}
    fold = np.array([fold_of[g] for g in groups])
    out = np.zeros(len(y))
    for k in range(folds):
        held = fold == k
        out[held] = predict(fit(x[~held], y[~held], weight[~held], l2), x[held])
    return np.split(out, np.cumsum([len(f.right) for f in files])[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="Directory of dev_sweep.py --predictions CSVs.")
    parser.add_argument("--out", type=Path, default=None, help="Write the fitted model here (JSON).")
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--tolerance", type=float, default=0.01, help="The largest AUROC loss on a file taken as noise."
    )
    args = parser.parse_args()

    files = [read(p) for p in sorted(args.predictions.glob("*_dev_*.csv"))]
    if not files:
        raise SystemExit(f"{args.predictions}: no *_dev_*.csv files")
    table: dict[str, dict[str, float | None]] = {}
    for f, model in zip(files, cross_validated(files, args.l2, args.folds)):
        wrong = f.right == 0
        table[f.name] = {"hand_made": auroc(1 - f.hand_made, wrong)}
        for blend in BLENDS:
            table[f.name][f"blend {blend:g}"] = auroc(1 - (blend * model + (1 - blend) * f.hand_made), wrong)

    def worst_and_mean(blend: float) -> tuple[float, float]:
        gains = [(t[f"blend {blend:g}"] or 0) - (t["hand_made"] or 0) for t in table.values()]
        return min(gains), float(np.mean(gains))

    chosen = max((b for b in BLENDS if worst_and_mean(b)[0] >= -args.tolerance), key=lambda b: worst_and_mean(b)[1])
    columns = ["hand_made"] + [f"blend {b:g}" for b in BLENDS]
    print(f"AUROC of (1 - confidence) for grades off by >= {LARGE_ERROR:g} x max ({args.folds}-fold by question)")
    print("| file | rows | graded wrong | " + " | ".join(columns) + " |")
    print("|---|---:|---:|" + "---:|" * len(columns))
    for f in files:
        cells = " | ".join(f"{table[f.name][c] or 0:.3f}" for c in columns)
        print(f"| {f.name} | {len(f.right)} | {int((f.right == 0).sum())} | {cells} |")
    print(
        "worst / mean gain over the hand-made confidence:",
        {b: np.round(worst_and_mean(b), 3).tolist() for b in BLENDS},
    )
    x, y, weight, _ = pooled(files)
    beta = fit(x, y, weight, args.l2)
    print(f"blend {chosen:g}; intercept {beta[0]:.4f};", dict(zip(SIGNALS, np.round(beta[1:], 4).tolist())))
    if args.out:
        saved = {
            "format": SHIPPED,
            "target": f"P(|grade - human grade| < {LARGE_ERROR:g} x maximum), for answers the judge read",
            "judge": DEFAULT_JUDGE,
            "intercept": round(float(beta[0]), 6),
            "weights": {k: round(float(v), 6) for k, v in zip(SIGNALS, beta[1:])},
            "blend": chosen,
            "l2": args.l2,
            "tolerance": args.tolerance,
            "seed": None,
            "command": "python training/fit_confidence.py " + " ".join(sys.argv[1:]),
            "data": {
                f.name: {"sha256": f.sha256, "rows": len(f.right), "questions": len(set(f.questions))} for f in files
            },
            "cross_validation": table,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
