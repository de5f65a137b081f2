"""--code-workers N runs code answers on N sandbox servers at the same time."""

from __future__ import annotations

import shutil
import threading

import pytest

from grader.code.sandbox import SandboxServer
from grader.intake import discover
from grader.pipeline import GradeOptions, Grader

from .conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="code answers need bubblewrap")

ANSWERS = ("correct_vectorized", "wrong_no_factor2", "wrong_shape", "correct_vectorized")


def test_code_workers_run_that_many_sandbox_servers_at_once(tmp_path, monkeypatch, rubrics, encoder, judge):
    """Each server's first job waits at a barrier for the other's: with one server at a time it never opens."""
    barrier = threading.Barrier(2, timeout=120)
    first_jobs: dict[int, bool] = {}
    run = SandboxServer.run

    def meeting(server: SandboxServer, job):  # noqa: ANN001, ANN202
        if id(server) not in first_jobs:
            first_jobs[id(server)] = True
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                first_jobs[id(server)] = False
        return run(server, job)

    monkeypatch.setattr(SandboxServer, "run", meeting)
    batch = tmp_path / "class"
    batch.mkdir()
    for i, name in enumerate(ANSWERS):
        shutil.copy(ROOT / "tests" / "data" / "code_answers" / "q5.b" / f"{name}.py", batch / f"s{i}_{name}_q5b.py")
    sources, _ = discover([batch])
    with Grader(rubrics, GradeOptions(code_workers=2), encoder=encoder, judge=judge) as grader:
        reports = grader.grade_sources(sources)
        servers = grader.code._code_grader()._servers._servers  # the pool's servers, one per worker thread
        assert len(servers) == 2 and len({s.pid for s in servers}) == 2, "two server processes, both alive"
    assert list(first_jobs.values()) == [True, True], "both servers ran a job at the same time"
    points = {r.student_id: r.part("q5.b").points for r in reports}
    assert points["s0_correct_vectorized"] == points["s3_correct_vectorized"] == 6
    assert points["s1_wrong_no_factor2"] < 6 and points["s2_wrong_shape"] < 6
