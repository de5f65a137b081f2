"""A difference between two systems, with its interval over questions (grader.evaluation.intervals)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.evaluation import lead, question_interval

ROOT = Path(__file__).resolve().parent.parent


def _questions(sizes: list[int]) -> list[str]:
    return [f"q{i}" for i, n in enumerate(sizes) for _ in range(n)]


def test_a_lead_on_every_question_is_sure():
    questions = _questions([20] * 10)
    gold = np.tile([0, 1], 100)
    right = gold.copy()
    half = np.where(np.arange(200) % 4 == 0, 1 - gold, gold)  # wrong on a quarter of every question
    result = lead(questions, gold, right, half, "accuracy")
    assert result.difference == pytest.approx(0.25)
    assert result.sure and 0 < result.low <= 0.25 <= result.high
    assert "10 questions resampled" in result.describe()


def test_a_lead_carried_by_one_big_question_is_not():
    """Nine questions tie; the tenth, with as many answers as the other nine together, decides the mean."""
    sizes = [10] * 9 + [90]
    questions = _questions(sizes)
    gold = np.ones(180, dtype=int)
    second = np.zeros(180, dtype=int)
    second[:90] = 1  # the second system is right on the nine small questions ...
    first = second.copy()
    first[90:] = 1  # ... and the first also on the big one
    first[:90:10] = 0  # but a little worse on each small one
    result = lead(questions, gold, first, second, "accuracy")
    assert result.difference > 0.4
    # by answers this would be certain; by questions, a resample without the big one reverses it
    assert result.low < 0 < result.high and not result.sure


def test_identical_systems_differ_by_nothing():
    questions = _questions([5, 5, 5])
    gold = np.array([0, 1, 1, 0, 1] * 3)
    result = lead(questions, gold, gold, gold, "accuracy")
    assert result.difference == 0 and result.low == 0 and result.high == 0


def test_one_question_has_no_interval():
    assert question_interval(["q"] * 5, lambda idx: float(len(idx))) is None
    result = lead(["q"] * 4, np.array([0, 1, 0, 1]), np.array([0, 1, 0, 1]), np.array([1, 1, 0, 1]), "accuracy")
    assert result.difference == 0.25 and result.low is None and "no interval" in result.describe()


def test_pearson_lead_and_seeding():
    rng = np.random.default_rng(1)
    questions = _questions([30] * 8)
    gold = rng.uniform(0, 2, 240)
    close = gold + rng.normal(0, 0.2, 240)
    far = gold + rng.normal(0, 1.5, 240)
    a = lead(questions, gold, close, far, "pearson", seed=3)
    b = lead(questions, gold, close, far, "pearson", seed=3)
    assert a == b and a.sure and a.metric == "pearson"
    with pytest.raises(ValueError, match="no lead for metric"):
        lead(questions, gold, close, far, "qwk")


def _write(path: Path, rows: list[tuple[str, str, int, int]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "split", "question_id", "gold", "grader_points", "grader_decision"])
        for row, q, gold, decision in rows:
            writer.writerow([row, "test", q, gold, decision, decision])


def test_compare_runs_reports_the_change_per_file(tmp_path: Path):
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    rows = [(str(i), f"q{i % 6}", i % 2, 0) for i in range(60)]
    _write(before / "set_test_0.csv", rows)
    _write(after / "set_test_0.csv", [(r, q, g, g) for r, q, g, _ in rows][:-2])  # right on every row; 2 rows fewer
    _write(before / "only_before.csv", rows)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_runs.py"), str(before), str(after)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("| set_test_0")]
    assert len(lines) == 1 and "only_before" not in done.stdout
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[1] == "58 (6 q, 2 unmatched)" and cells[2] == "accuracy"
    before_acc, after_acc = float(cells[3]), float(cells[4])
    assert after_acc == 1.0 and before_acc == pytest.approx(29 / 58, abs=1e-3)
    assert float(cells[5]) == pytest.approx(after_acc - before_acc, abs=1e-3)
    assert cells[6].startswith("[+")  # right everywhere against half right: sure, by questions too
