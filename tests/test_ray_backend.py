"""The Ray backend on a real Ray cluster started here: the reports of a local run, the cache a local
run would write, no student lost or graded twice when an actor dies, and a driver killed with
kill -9 resumes as a local run does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.batch import run_batch
from grader.cache import Cache
from grader.intake import discover
from grader.options import ClusterOptions
from grader.pipeline import GradeOptions, Grader
from grader.report import StudentReport

from .conftest import ROOT, seed_model_outputs
from .test_batch import SUBMISSIONS, _class_of

ray = pytest.importorskip("ray", reason="the Ray backend's tests need the ray extra: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow


def _reports(out: Path) -> dict[str, dict]:
    """Every report in OUT, by file name, without its timing fields (the report's and code runs' times)."""
    found = {}
    for path in sorted((out / "reports").glob("*.json")):
        data = StudentReport.model_validate_json(path.read_text()).model_dump()
        data.pop("timing")
        for part in data["parts"]:
            if part.get("code"):
                part["code"]["wall_s"] = None
                for case in part["code"].get("cases", []):
                    case["time_s"] = None
        found[path.name] = data
    return found


RUN_CODE = shutil.which("bwrap") is not None
"""Code parts run in each actor's sandbox where bubblewrap is installed (CI installs it)."""
CHUNK = 2


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster on this machine's loopback, started as on a head node (`ray start --head`).

    Three logical CPUs: the two actors of `ray_grader`, and one for a driver of the command line.
    """
    from grader.ray_backend import ClusterError, local_cluster

    try:
        head = local_cluster(num_cpus=3, timeout_s=600, attempts=5)
        address = head.__enter__()
    except ClusterError as exc:  # Ray's own start (its agents' start-up window), not grader
        pytest.skip(f"Ray could not start a head on this machine: {exc}")
    try:
        ray.init(address=address, log_to_driver=False)
        yield address
        ray.shutdown()
    finally:
        head.__exit__(None, None, None)


@pytest.fixture(scope="module")
def local_grader(rubrics, encoder, judge):
    """The same options, graded in this process (the session's models, no cache)."""
    with Grader(rubrics, GradeOptions(run_code=RUN_CODE, chunk_size=CHUNK), encoder=encoder, judge=judge) as grader:
        yield grader


@pytest.fixture(scope="module")
def ray_grader(cluster, rubrics, local_grader, tmp_path_factory):
    """Two actors, each with the models and a sandbox; the driver's cache in a fresh directory.

    The cache starts with the judge's probabilities this session has computed, the rubrics' exemplars
    among them: each actor reads those through the driver instead of judging every exemplar again
    while it builds its indexes. No vector and no part result is in it, so the actors still encode
    and score every answer, and the driver writes all of that.
    """
    from grader.ray_backend import RayGrader

    cache_dir = seed_model_outputs(tmp_path_factory.mktemp("ray-cache"), local_grader.judge, vectors=False)
    options = GradeOptions(run_code=RUN_CODE, chunk_size=CHUNK, cache_dir=cache_dir)
    grader = RayGrader(rubrics, options, ClusterOptions(backend="ray", workers=2))
    yield grader
    grader.close()


def test_a_ray_run_gives_the_reports_of_a_local_run(tmp_path, ray_grader, local_grader):
    sources, _ = discover([SUBMISSIONS])
    local = run_batch(local_grader, sources, tmp_path / "local")
    # the judge's probabilities for these texts, as the local run computed them, in the driver's cache: the
    # actors read them through the driver as they would a regrade's; they still encode and score every part
    seed_model_outputs(ray_grader.options.cache_dir, local_grader.judge, vectors=False)
    on_ray = run_batch(ray_grader, sources, tmp_path / "ray")
    assert on_ray.summary.n_graded == len(sources) == local.summary.n_graded
    assert _reports(tmp_path / "ray") == _reports(tmp_path / "local")  # timing fields aside
    assert (tmp_path / "ray" / "gradebook.csv").read_text() == (tmp_path / "local" / "gradebook.csv").read_text()
    assert len(ray_grader.remote.peak_rss_mb) == 2, "both actors graded chunks"
    if RUN_CODE:
        code = [p for r in on_ray.reports for p in r.parts if p.kind == "code" and p.code is not None]
        assert code and all(p.code.sandbox for p in code), "code parts ran in the actors' sandboxes"


def test_the_driver_writes_the_cache_a_local_run_reads(tmp_path, ray_grader, rubrics, encoder, judge):
    sources, _ = discover([SUBMISSIONS])
    before = (ray_grader.stats.n_parts_scored, ray_grader.stats.n_parts_from_cache, ray_grader.remote.n_texts_encoded)
    again = run_batch(ray_grader, sources, tmp_path / "again", resume=False)
    scored, from_cache, encoded = (
        ray_grader.stats.n_parts_scored - before[0],
        ray_grader.stats.n_parts_from_cache - before[1],
        ray_grader.remote.n_texts_encoded - before[2],
    )
    assert again.summary.n_graded == len(sources)
    assert (scored, encoded) == (0, 0) and from_cache > 0, "a second Ray run reads everything from the driver's cache"

    cache_dir = ray_grader.options.cache_dir
    assert Cache(cache_dir).stats()["embeddings"] > 0
    options = GradeOptions(run_code=RUN_CODE, chunk_size=CHUNK, cache_dir=cache_dir)
    with Grader(rubrics, options, encoder=encoder, judge=judge) as grader:
        local = run_batch(grader, sources, tmp_path / "local", resume=False)
        assert grader.stats.n_parts_scored == 0 and grader.stats.n_parts_from_cache == from_cache
    assert _reports(tmp_path / "local") == _reports(tmp_path / "again")
    assert local.summary.n_graded == len(sources)


def test_an_actor_killed_mid_run_loses_no_student(tmp_path, ray_grader, local_grader):
    batch = _class_of(tmp_path, 3)
    sources, _ = discover([batch])
    reference = run_batch(local_grader, sources, tmp_path / "reference")
    victim = ray_grader.remote.workers[0].handle
    finished: list[str] = []

    def progress(student_id: str) -> None:
        finished.append(student_id)
        if len(finished) == 2:  # both actors hold chunks now: one dies for good, its chunks go to the other
            ray.kill(victim, no_restart=True)

    outcome = run_batch(ray_grader, sources, tmp_path / "ray", progress=progress)
    assert ray_grader.remote.resent >= 1, "the kill must land while the actor held a chunk"
    # a report's id may come from the file's content (a notebook's front matter), not its name
    assert sorted(finished) == sorted(r.student_id for r in reference.reports), "every student reported exactly once"
    assert outcome.summary.n_graded == len(sources)
    assert _reports(tmp_path / "ray") == _reports(tmp_path / "reference")
    assert reference.summary.n_graded == len(sources)


def test_a_driver_killed_with_kill_9_resumes(tmp_path, cluster, local_grader):
    batch = _class_of(tmp_path, 2)
    n = len(list(batch.iterdir()))
    run_batch(local_grader, discover([batch])[0], tmp_path / "reference")
    seed_model_outputs(tmp_path / "cache", local_grader.judge)  # model outputs only: every part is still scored
    env = {**os.environ, "GRADER_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "grader.cli",
        "grade",
        str(batch),
        "--chunk-size",
        "1",
        "--out",
        str(out),
        "--backend",
        "ray",
        "--address",
        cluster,
        "--workers",
        "1",
        *([] if RUN_CODE else ["--no-code"]),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list((out / "reports").glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = len(list((out / "reports").glob("*.json")))
    assert 2 <= done_before < n, "the kill must land mid-run"
    for report in (out / "reports").glob("*.json"):
        StudentReport.model_validate_json(report.read_text())  # whole reports only

    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{done_before} report(s) were still current" in result.stdout
    assert _reports(out) == _reports(tmp_path / "reference")
    assert (out / "gradebook.csv").read_text() == (tmp_path / "reference" / "gradebook.csv").read_text()
