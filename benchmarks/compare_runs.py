"""Did a change help, beyond the luck of which questions a split holds? Two runs' predictions, compared.

Reads two directories of predictions CSVs (`benchmarks/agreement.py --predictions DIR`, or
`benchmarks/dev_sweep.py --predictions DIR`), the run before a change and the run after it, and
for every file both hold prints the grader's headline metric in each (accuracy of the 2-way
decisions, or Pearson on points), the change, and a 95% interval for the change from resampling
whole questions (grader.evaluation.intervals). Rows are matched by their `row` id; a row in only
one file is left out and counted.

    python benchmarks/compare_runs.py BEFORE_DIR AFTER_DIR [--resamples 1000] [--seed 0]

An interval that spans zero says the split's questions cannot tell the two runs apart: a
SciEntsBank unseen-questions row (15 questions) moves by a question, not by an answer.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from grader.evaluation import lead
from grader.evaluation.metrics import accuracy, pearson


def read(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["row"]: r for r in csv.DictReader(fh)}


def compare(before: Path, after: Path, resamples: int, seed: int) -> str:
    """One Markdown table row for a file both runs wrote."""
    a, b = read(before), read(after)
    rows = [k for k in a if k in b]
    if not rows:
        return f"| {before.name} | 0 | | | | no rows in common |"
    gold = np.array([float(a[k]["gold"]) for k in rows])
    questions = [a[k]["question_id"] for k in rows]
    two_way = "grader_decision" in a[rows[0]] and "grader_decision" in b[rows[0]]
    column = "grader_decision" if two_way else "grader_points"
    old = np.array([float(a[k][column]) for k in rows])
    new = np.array([float(b[k][column]) for k in rows])
    metric = "accuracy" if two_way else "pearson"
    if two_way:
        gold, old, new = gold.astype(int), old.astype(int), new.astype(int)
        values = accuracy(old, gold), accuracy(new, gold)
    else:
        values = pearson(old, gold), pearson(new, gold)
    change = lead(questions, gold, new, old, metric, resamples=resamples, seed=seed)
    left_out = len(a) + len(b) - 2 * len(rows)
    span = "" if change.low is None or change.high is None else f"[{change.low:+.3f}, {change.high:+.3f}]"
    shown = " | ".join("-" if v is None else f"{v:.3f}" for v in values)
    diff = "-" if change.difference is None else f"{change.difference:+.3f}"
    return (
        f"| {before.stem} | {len(rows)} ({change.questions} q{f', {left_out} unmatched' if left_out else ''}) "
        f"| {metric} | {shown} | {diff} | {span} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="Predictions directory of the run before the change.")
    parser.add_argument("after", type=Path, help="Predictions directory of the run after it.")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for d in (args.before, args.after):
        if not d.is_dir():
            sys.exit(f"{d}: not a directory of predictions CSVs")
    names = sorted(p.name for p in args.before.glob("*.csv") if (args.after / p.name).is_file())
    if not names:
        sys.exit(f"no predictions file is in both {args.before} and {args.after}")
    print("| file | rows | metric | before | after | change | 95% interval over questions |")
    print("|---|---|---|---:|---:|---:|---|")
    for name in names:
        print(compare(args.before / name, args.after / name, args.resamples, args.seed))


if __name__ == "__main__":
    main()
