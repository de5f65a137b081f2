"""Corrections re-grade the class, measured with a simulated TA on human-graded datasets.

For each dataset split, every answer is graded once (the rubric built from the question's
reference answer, as `grader eval` builds it). A simulated TA then reviews the k least
confident answers of each question, giving them the human grade; those grades become the
question's exemplars (what `grader review` does with a TA's decisions), and the answers
nobody reviewed are graded again. Agreement with the human grades is reported on those
unreviewed answers only, before and after, beside how many of them moved. With
--control, a TA who reviews k answers drawn at random is measured the same way.

    python benchmarks/simulated_ta.py DATASETS_DIR [--k 3,5,10] [--limit 300] [--seed 0] [--no-judge] [--control]
    python benchmarks/simulated_ta.py path/to/scientsbank_2way.csv:test-unseen-questions ...

DATASETS_DIR holds scientsbank_2way.csv, beetle_2way.csv and saf_en_v2.csv (not part of the
repository; docs/benchmarks.md, "Datasets", says where to obtain them). --limit keeps at most
N answers per split, whole questions drawn with the seed, so k answers per question are
reviewed from every question kept.
Agreement: 2-way labels, accuracy of "at least half the points" and Pearson; points (SAF),
Pearson and RMSE on points. Built on grader.evaluation's public API.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from grader.evaluation import (
    Question,
    Row,
    accuracy,
    build_rubric,
    load_dataset,
    pearson,
    questions_of,
    resolve_split,
    rmse,
    rubric_set,
)
from grader.options import GradeOptions
from grader.pipeline import Grader
from grader.rubric import RubricSet
from grader.written import cached_models
from grader.written.embedding import Encoder
from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE

DEFAULT_RUNS = [
    ("scientsbank_2way.csv", "test-unseen-questions"),
    ("beetle_2way.csv", "test-unseen-questions"),
    ("saf_en_v2.csv", "unseen_questions"),
]


def limited(rows: list[Row], limit: int | None, seed: int) -> list[Row]:
    """Whole questions in a seeded order until `limit` answers are reached."""
    if limit is None or len(rows) <= limit:
        return rows
    by_q: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_q[r.question_id].append(r)
    order = sorted(by_q)
    np.random.default_rng(seed).shuffle(order)
    kept: list[Row] = []
    for qid in order:
        if len(kept) >= limit:
            break
        kept += by_q[qid]
    return kept


def grade(
    rubrics: RubricSet, rows: list[Row], questions: dict[str, Question], encoder: Encoder, judge
) -> tuple[np.ndarray, np.ndarray]:
    """(points, confidence) per row, through Grader.score_answers (what `grader grade` runs)."""
    with Grader(rubrics, GradeOptions(run_code=False), encoder=encoder, judge=judge) as grader:
        results = grader.score_answers([(f"{questions[r.question_id].rubric_id}.a", r.student_answer) for r in rows])
    return np.array([p.points for p in results]), np.array([p.confidence for p in results])


def agreement(task: str, points: np.ndarray, gold: np.ndarray, max_points: np.ndarray) -> dict[str, float | None]:
    if task == "2way":
        pred = (points / max_points >= 0.5).astype(int)
        return {"accuracy": accuracy(pred, gold.astype(int)), "pearson": pearson(points / max_points, gold)}
    return {"pearson": pearson(points, gold), "rmse": rmse(points, gold)}


def run_split(
    path: Path,
    split: str,
    ks: list[int],
    limit: int | None,
    seed: int,
    encoder: Encoder,
    judge,
    control: bool,
) -> list[dict]:
    dataset = load_dataset(path)
    split = resolve_split(dataset, split)
    questions = questions_of(dataset)
    rows = limited([r for r in dataset.rows if r.split == split and r.student_answer.strip()], limit, seed)
    used = sorted({r.question_id for r in rows}, key=lambda q: questions[q].rubric_id)
    t0 = time.perf_counter()
    base_rubrics = rubric_set([build_rubric(questions[q], "sentences") for q in used], name=f"{path.stem}-{split}")
    before, confidence = grade(base_rubrics, rows, questions, encoder, judge)
    gold = np.array([min(r.score, questions[r.question_id].max_score) for r in rows])
    max_points = np.array([questions[r.question_id].max_score for r in rows])
    out = []
    rng = np.random.default_rng(seed)
    for k in ks:
        for how in ("least confident", *(["random"] if control else [])):
            reviewed: set[int] = set()
            by_q: dict[str, list[int]] = defaultdict(list)
            for i, r in enumerate(rows):
                by_q[r.question_id].append(i)
            for idx in by_q.values():
                if how == "random":
                    pick = list(rng.permutation(idx)[:k])
                else:
                    pick = sorted(idx, key=lambda i: (confidence[i], rows[i].row))[:k]
                reviewed.update(int(i) for i in pick)
            rubrics = rubric_set(
                [
                    build_rubric(questions[q], "sentences", [rows[i] for i in sorted(by_q[q]) if i in reviewed])
                    for q in used
                ],
                name=f"{path.stem}-{split}-k{k}-{how}",
            )
            rest = [i for i in range(len(rows)) if i not in reviewed]
            after, _ = grade(rubrics, [rows[i] for i in rest], questions, encoder, judge)
            b, g, m = before[rest], gold[rest], max_points[rest]
            moved = np.abs(after - b) >= 0.01 * m
            out.append(
                {
                    "dataset": path.stem,
                    "split": split,
                    "task": dataset.task,
                    "k": k,
                    "review": how,
                    "n_questions": len(used),
                    "n_reviewed": len(reviewed),
                    "n_rest": len(rest),
                    "before": agreement(dataset.task, b, g, m),
                    "after": agreement(dataset.task, after, g, m),
                    "moved": int(moved.sum()),
                    "mean_move": float(np.abs(after - b)[moved].mean()) if moved.any() else 0.0,
                }
            )
    out[0]["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", help="A directory with the three CSVs, or FILE.csv:SPLIT entries.")
    ap.add_argument("--k", default="3,5,10", help="Answers the TA reviews per question (comma-separated).")
    ap.add_argument("--limit", type=int, default=300, help="At most N answers per split (whole questions); 0: all.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-judge", action="store_true")
    ap.add_argument("--control", action="store_true", help="Also a TA who reviews k random answers per question.")
    ap.add_argument("--cache", type=Path, default=None, help="SQLite cache of vectors and judge probabilities.")
    args = ap.parse_args(argv)
    runs: list[tuple[Path, str]] = []
    for item in args.datasets:
        path = Path(item)
        if path.is_dir():
            runs += [(path / name, split) for name, split in DEFAULT_RUNS if (path / name).is_file()]
        else:
            file, _, split = item.rpartition(":")
            runs.append((Path(file), split))
    if not runs:
        print("no datasets found", file=sys.stderr)
        return 2
    ks = [int(k) for k in args.k.split(",")]
    encoder, judge = cached_models(args.cache, judge=None if args.no_judge else DEFAULT_JUDGE)
    started = time.perf_counter()
    rows = []
    for path, split in runs:
        rows += run_split(path, split, ks, args.limit or None, args.seed, encoder, judge, args.control)
        print(f"{path.name} {split}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    header = ["dataset", "split", "reviewed per question", "TA reviews", "unreviewed answers", "metric", "before"]
    print("| " + " | ".join([*header, "after", "moved"]) + " |")
    print("|---|---|---:|---|---:|---|---:|---:|---:|")
    for r in rows:
        for metric in r["before"]:
            print(
                f"| {r['dataset']} | {r['split']} | {r['k']} | {r['review']} | {r['n_rest']} | {metric} | "
                f"{fmt(r['before'][metric])} | {fmt(r['after'][metric])} | {r['moved']} |"
            )
    print(
        f"\n{time.perf_counter() - started:.0f} s; limit {args.limit or 'none'} answers per split, seed {args.seed}, "
        f"judge {'off' if args.no_judge else 'on'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
