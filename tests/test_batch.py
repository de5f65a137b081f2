"""Batch runs: resumable after kill -9, atomic reports, and a regrade that rescored only what changed."""

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
from grader.intake import discover
from grader.pipeline import GradeOptions, Grader
from grader.report import StudentReport
from grader.rubric import load_rubric_dir

from .conftest import ROOT, RUBRICS, seed_model_outputs

SUBMISSIONS = ROOT / "submissions"


def _without_timing(path: Path) -> dict:
    data = StudentReport.model_validate_json(path.read_text()).model_dump()
    data.pop("timing")
    return data


def _reports(out: Path) -> dict[str, dict]:
    return {p.name: _without_timing(p) for p in sorted((out / "reports").glob("*.json"))}


def _class_of(tmp_path: Path, copies: int) -> Path:
    """`copies` copies of every sample student (written files only), for a run long enough to interrupt.

    Each copy is its own student: a notebook that names its student (ng.ipynb) names the copy's id,
    since several files claiming one id are refused (grader.batch.id_conflicts).
    """
    batch = tmp_path / "class"
    batch.mkdir()
    for path in sorted(SUBMISSIONS.iterdir()):
        if path.is_file():
            for k in range(copies):
                copy = batch / f"{path.stem}{k}{path.suffix}"
                if path.suffix == ".ipynb":
                    claim = f'"student": "{path.stem}"'
                    assert claim in path.read_text()
                    copy.write_text(path.read_text().replace(claim, f'"student": "{copy.stem}"'))
                else:
                    shutil.copy(path, copy)
    return batch


def test_kill_9_then_resume_gives_the_same_reports(tmp_path, rubrics, written_grader):
    batch = _class_of(tmp_path, 5)
    n = len(list(batch.iterdir()))
    reference = tmp_path / "reference"
    run_batch(written_grader, discover([batch])[0], reference)

    # the models' outputs for these texts, as the reference run computed them: the subprocess still grades
    # every part (no part result is in that cache), without paying for the forward passes again
    seed_model_outputs(tmp_path / "cache", written_grader.judge)
    env = {**os.environ, "GRADER_CACHE_DIR": str(tmp_path / "cache")}
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "grader.cli", "grade", str(batch), "--no-code", "--chunk-size", "1", "--out", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((killed / "reports").glob("*.json"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = len(list((killed / "reports").glob("*.json")))
    assert 3 <= done_before < n, "the kill must land mid-run"
    assert not (killed / "gradebook.csv").exists()
    for report in (killed / "reports").glob("*.json"):
        StudentReport.model_validate_json(report.read_text())  # whole reports only

    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{done_before} report(s) were still current" in result.stdout
    assert _reports(killed) == _reports(reference)
    assert (killed / "gradebook.csv").read_text() == (reference / "gradebook.csv").read_text()
    assert not list(killed.rglob("*.tmp"))


def test_a_report_is_reused_only_while_it_still_applies(tmp_path, rubrics, encoder, judge):
    sources, _ = discover([SUBMISSIONS])
    out = tmp_path / "out"
    with Grader(rubrics, GradeOptions(run_code=False), encoder=encoder, judge=judge) as grader:
        first = run_batch(grader, sources, out)
        assert first.reused == 0
        again = run_batch(grader, sources, out)
        assert again.reused == len(sources)
    lee = tmp_path / "subs" / "lee.md"
    lee.parent.mkdir()
    shutil.copy(SUBMISSIONS / "lee.md", lee)
    with Grader(rubrics, GradeOptions(run_code=False), encoder=encoder, judge=judge) as grader:
        run_batch(grader, discover([lee])[0], tmp_path / "one")
        lee.write_text(lee.read_text() + "\n\nQuestion 6\n- a) Yes, add them to the token embeddings.\n")
        changed = run_batch(grader, discover([lee])[0], tmp_path / "one")
        assert changed.reused == 0  # the file changed: its old report no longer applies


def test_regrade_after_a_one_part_edit_rescores_only_that_part(tmp_path, encoder, judge):
    rubric_dir = tmp_path / "rubrics"
    shutil.copytree(RUBRICS, rubric_dir)
    sources, _ = discover([SUBMISSIONS])
    options = GradeOptions(run_code=False, cache_dir=tmp_path / "cache")
    with Grader(load_rubric_dir(rubric_dir), options, judge=judge) as grader:
        run_batch(grader, sources, tmp_path / "first")
        first = grader.stats
    assert first.n_parts_from_cache == 0 and first.n_parts_scored > 100

    q3 = rubric_dir / "q3.yaml"
    q3.write_text(q3.read_text().replace("penalty: 2.0", "penalty: 2.5", 1))
    with Grader(load_rubric_dir(rubric_dir), options, judge=judge) as grader:
        second = run_batch(grader, sources, tmp_path / "second")
        stats = grader.stats
        answered_q3a = sum(1 for s in sources if grader.parse(s).answer("q3.a") is not None)
    assert second.reused == 0  # the rubric hash changed: every report is rebuilt ...
    assert stats.n_parts_scored == answered_q3a  # ... but only q3.a answers were scored again
    assert stats.n_parts_from_cache == first.n_parts_scored - answered_q3a
    assert grader.encoder.n_encoded == 0  # nothing new to embed


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="code answers need bubblewrap (apt-get install bubblewrap)")
def test_code_results_are_cached_unless_load_dependent(tmp_path, rubrics, encoder, judge):
    batch = tmp_path / "code"
    batch.mkdir()
    for name in ("correct_vectorized", "wrong_no_factor2", "wrong_shape", "hostile_infinite_loop"):
        shutil.copy(ROOT / "tests" / "data" / "code_answers" / "q5.b" / f"{name}.py", batch / f"{name}_q5b.py")
    sources, _ = discover([batch])
    options = GradeOptions(cache_dir=tmp_path / "cache")
    with Grader(rubrics, options, encoder=encoder, judge=judge) as grader:
        first = run_batch(grader, sources, tmp_path / "a")
    with Grader(rubrics, options, encoder=encoder, judge=judge) as grader:
        second = run_batch(grader, sources, tmp_path / "b", resume=False)
        from_cache = grader.stats.n_parts_from_cache
    points = {r.student_id: r.part("q5.b").points for r in first.reports}
    assert points == {r.student_id: r.part("q5.b").points for r in second.reports}
    assert points["correct_vectorized"] == 6 and points["hostile_infinite_loop"] == 0
    timeout = next(r for r in second.reports if r.student_id == "hostile_infinite_loop").part("q5.b")
    assert timeout.code.outcome == "timeout"
    assert from_cache == 3  # the timeout depends on machine load: it ran again


def _package_copy(tmp_path: Path) -> Path:
    from grader.fingerprint import package_dir

    copy = tmp_path / "grader"
    shutil.copytree(package_dir(), copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def test_the_fingerprint_covers_the_grading_code_only(tmp_path):
    import grader.written.scoring
    from grader.fingerprint import code_fingerprint, package_dir

    copy = _package_copy(tmp_path)
    assert code_fingerprint(copy) == code_fingerprint()  # a fingerprint of content, not of where it lies
    (copy / "cli" / "grade.py").write_text((copy / "cli" / "grade.py").read_text() + "\n# presentation only\n")
    assert code_fingerprint(copy) == code_fingerprint()
    scoring = copy / Path(grader.written.scoring.__file__).relative_to(package_dir())
    scoring.write_text(scoring.read_text() + "\n# a scorer change\n")
    assert code_fingerprint(copy) != code_fingerprint()


def test_a_change_to_the_scorer_regrades_instead_of_serving_cached_results(tmp_path, rubrics, encoder, judge, monkeypatch):
    """An updated grader must not hand out the old scorer's grades from the cache or a resumed run."""
    from grader import fingerprint
    from grader.written import scoring

    sources = [s for s in discover([SUBMISSIONS])[0] if s.student_id in {"kim", "lee"}]
    options = GradeOptions(run_code=False, cache_dir=tmp_path / "cache")
    out = tmp_path / "out"
    with Grader(rubrics, options, encoder=encoder, judge=judge) as grader:
        first = run_batch(grader, sources, out, resume=False)
        scored = grader.stats.n_parts_scored
    assert scored > 0
    with Grader(rubrics, options, encoder=encoder, judge=judge) as grader:
        assert run_batch(grader, sources, out).reused == len(sources)  # same code: reports still current
        run_batch(grader, sources, tmp_path / "again", resume=False)
        assert grader.stats.n_parts_from_cache == scored and grader.stats.n_parts_scored == 0  # and cached

    copy = _package_copy(tmp_path)
    edited = copy / Path(scoring.__file__).relative_to(fingerprint.package_dir())
    edited.write_text(edited.read_text() + "\n# the scorer changed\n")
    monkeypatch.setattr(fingerprint, "package_dir", lambda: copy)
    with Grader(rubrics, options, encoder=encoder, judge=judge) as grader:
        second = run_batch(grader, sources, out)
        assert second.reused == 0  # no report of the old code is kept ...
        assert grader.stats.n_parts_from_cache == 0 and grader.stats.n_parts_scored == scored  # ... nor a cached part
    assert {r.code_fingerprint for r in second.reports} == {grader.fingerprint}
    assert grader.fingerprint != first.reports[0].code_fingerprint
