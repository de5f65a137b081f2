"""benchmarks/gpu_check.sh, the GPU check, run here on the CPU with a tiny class (the GPU figure is measured
where a GPU is: docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from grader.report import PartResult, StudentReport

from .conftest import ROOT, seed_model_outputs

sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_check import largest_difference  # noqa: E402


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_on_the_cpu(tmp_path, written_grader):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_WHEELS": str(tmp_path / "no-wheels")}
    # the models' outputs for the rubrics and their exemplars (and whatever else this session computed): the
    # device run reads them instead of computing them again at start-up; it still scores every part
    cache = seed_model_outputs(tmp_path / "cache", written_grader.judge)
    command = [
        "bash",
        str(ROOT / "benchmarks" / "gpu_check.sh"),
        "1",
        "--compare",
        "1",
        "--device",
        "cpu",
        "--no-code",
        "--work",
        str(tmp_path / "work"),
        "--cache",
        str(cache),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["students"], summary["graded"], summary["compared_students"]) == (1, 1, 1)
    assert summary["worst_parts_compared"] == 25  # every part of the student compared
    assert summary["worst_points"] == 0.0, "the CPU against itself: the same grades"
    assert "students/s" in result.stdout and "largest difference 0 points" in result.stdout
    assert f"started from the cache in {cache}" in result.stdout


def _report(student: str, points: dict[str, float]) -> StudentReport:
    parts = [
        PartResult(part_id=p, kind="written", status="graded", points=v, max_points=4.0, confidence=1.0)
        for p, v in points.items()
    ]
    return StudentReport(
        student_id=student,
        files=[],
        status="graded",
        parts=parts,
        max_total=8.0,
        grader_version="test",
        rubric_sha256="test",
        model="test",
    )


def test_the_largest_difference_is_found_and_measured_against_the_part():
    device = {"reports": {"a": _report("a", {"q1.a": 2.0, "q1.b": 3.0}), "b": _report("b", {"q1.a": 1.0, "q1.b": 4.0})}}
    cpu = {"reports": {"a": _report("a", {"q1.a": 2.0, "q1.b": 3.02}), "b": _report("b", {"q1.a": 1.0, "q1.b": 3.9})}}
    worst = largest_difference(device, cpu)
    assert (worst["student"], worst["part"], worst["parts_compared"]) == ("b", "q1.b", 4)
    assert worst["points"] == pytest.approx(0.1) and worst["fraction"] == pytest.approx(0.025)
