"""End to end through the CLI: what a TA and a student see, including broken input."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from grader.cli import app
from grader.report import ClassSummary, StudentReport

from .conftest import DATA, ROOT, RUBRICS

runner = CliRunner()
SUBMISSIONS = ROOT / "submissions"


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def graded_samples(tmp_path_factory, written_grader):
    out = tmp_path_factory.mktemp("out")
    result = _run("grade", str(SUBMISSIONS), "--out", str(out), "--no-code")
    return result, out


def test_grade_writes_every_output_and_they_validate(graded_samples, rubrics):
    result, out = graded_samples
    assert result.exit_code == 0, result.output
    students = {p.stem for p in (out / "reports").glob("*.json")}
    assert len(students) >= 7
    assert students == {p.stem for p in (out / "feedback").glob("*.md")}
    for path in (out / "reports").glob("*.json"):
        report = StudentReport.model_validate_json(path.read_text())
        assert report.status == "graded"
        assert report.rubric_sha256 == rubrics.sha256
        assert [p.part_id for p in report.parts] == rubrics.part_ids()
        assert 0 <= report.total <= report.max_total
    summary = ClassSummary.model_validate_json((out / "summary.json").read_text())
    assert summary.n_graded == len(students) and summary.n_failed == 0
    with (out / "gradebook.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(students)
    assert set(rubrics.part_ids()) | {"student_id", "total", "percent"} <= set(rows[0])
    assert "graded" in result.output  # the summary table


def test_student_feedback_never_reveals_the_reference_answer(graded_samples, rubrics):
    _, out = graded_samples
    references = [p.reference_answer for _, p in rubrics.parts()]
    key_point_texts = [kp.text for _, p in rubrics.parts() for kp in p.key_points]
    for path in (out / "feedback").glob("*.md"):
        text = " ".join(path.read_text().split())
        for secret in references + key_point_texts:
            assert " ".join(secret.split()) not in text, (path.name, secret[:60])


def test_weak_and_strong_students_are_ordered(graded_samples):
    _, out = graded_samples
    totals = {p.stem: StudentReport.model_validate_json(p.read_text()).total for p in (out / "reports").glob("*.json")}
    assert totals["kim"] > totals["ortiz"] > totals["quinn"]
    assert totals["patel"] > totals["quinn"]


def _parts(out) -> dict[tuple[str, str], object]:
    reports = [StudentReport.model_validate_json(p.read_text()) for p in (out / "reports").glob("*.json")]
    return {(r.student_id, p.part_id): p for r in reports for p in r.parts}


DENYING_FLAGS = {"contradicts", "negated", "off_topic"}


def test_no_correct_sample_answer_is_flagged_as_denying_or_off_topic(graded_samples):
    """The answers a TA marked correct (tests/data/sample_class_verdicts.yaml) are graded and carry no flag
    that tells the student they said the opposite or wrote about something else; the wrong ones earn little."""
    _, out = graded_samples
    verdicts = yaml.safe_load((DATA / "sample_class_verdicts.yaml").read_text())
    parts = _parts(out)
    correct = [(student, pid) for student, pids in verdicts["correct"].items() for pid in pids]
    assert len(correct) >= 50
    flagged = {key: parts[key].flags for key in correct if DENYING_FLAGS & set(parts[key].flags)}
    assert not flagged, flagged
    assert all(parts[key].status == "graded" for key in correct)
    wrong = [(student, pid) for student, pids in verdicts["wrong"].items() for pid in pids]
    fraction = {key: parts[key].points / parts[key].max_points for key in correct + wrong}
    assert all(fraction[key] <= 0.3 for key in wrong), {key: fraction[key] for key in wrong}
    assert sum(fraction[key] for key in correct) / len(correct) >= 0.75


def test_missing_parts_and_unassigned_text_are_reported(graded_samples):
    _, out = graded_samples
    quinn = StudentReport.model_validate_json((out / "reports" / "quinn.json").read_text())
    missing = [p for p in quinn.parts if p.status == "missing"]
    assert missing and all(p.points == 0 and "No answer" in p.feedback[0] for p in missing)
    assert quinn.unassigned, "quinn's preamble and unknown question must be kept"
    md = (out / "feedback" / "quinn.md").read_text()
    assert "Text not matched to any part" in md


def test_a_broken_batch_grades_everyone_it_can(tmp_path, written_grader):
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(SUBMISSIONS / "kim.txt", batch / "good.txt")
    (batch / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (batch / "empty.md").write_text("  \n\n")
    (batch / "latin1.txt").write_bytes("Question 6\n- a) Oui, on peut ajouter des embeddings \u00e0 l'entr\u00e9e.\n".encode("latin-1"))
    (batch / "huge.txt").write_text("Question 1\n- a) " + "word " * 1_100_000)
    out = tmp_path / "out"
    result = _run("grade", str(batch), "--out", str(out), "--no-code")
    assert result.exit_code == 0, result.output
    summary = ClassSummary.model_validate_json((out / "summary.json").read_text())
    reasons = {f.student_id: f.error for f in summary.failures}
    assert set(reasons) == {"binary", "empty", "huge"}
    assert "binary" in reasons["binary"].lower()
    assert "empty" in reasons["empty"].lower()
    assert "MB" in reasons["huge"] and "--max-bytes" in reasons["huge"]
    latin1 = StudentReport.model_validate_json((out / "reports" / "latin1.json").read_text())
    assert latin1.status == "graded" and latin1.warnings
    good = StudentReport.model_validate_json((out / "reports" / "good.json").read_text())
    assert good.status == "graded" and good.total > 0
    failed_md = (out / "feedback" / "binary.md").read_text()
    assert "could not be graded" in failed_md


def test_nothing_gradable_exits_nonzero(tmp_path, written_grader):
    (tmp_path / "empty.txt").write_text("")
    result = _run("grade", str(tmp_path), "--out", str(tmp_path / "out"), "--no-code")
    assert result.exit_code == 1
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_graded"] == 0


def test_invalid_rubrics_stop_before_grading_with_a_clear_message(tmp_path):
    rubrics = tmp_path / "rubrics"
    shutil.copytree(RUBRICS, rubrics)
    path = rubrics / "q3.yaml"
    path.write_text(path.read_text().replace("max_points: 5", "max_points: -5", 1))
    result = runner.invoke(app, ["grade", str(SUBMISSIONS), "--rubrics", str(rubrics), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "q3.yaml: parts[0].max_points: input should be greater than 0" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
    result = runner.invoke(app, ["validate", str(rubrics)])
    assert result.exit_code == 2 and "q3.yaml: parts[0].max_points" in result.output


def test_validate_and_schema():
    result = _run("validate", str(RUBRICS))
    assert result.exit_code == 0 and result.output.startswith("OK: 10 rubrics")
    schema = json.loads(_run("schema").output)
    assert schema["title"].startswith("grader rubric")


def test_check_json_prints_one_report(written_grader):
    result = _run("check", str(SUBMISSIONS / "lee.md"), "--json", "--no-code")
    assert result.exit_code == 0
    report = StudentReport.model_validate_json(result.stdout)
    assert report.student_id == "lee" and report.status == "graded"


def test_the_judge_is_on_by_default_and_no_judge_turns_it_off(written_grader):
    with_judge = StudentReport.model_validate_json(
        _run("check", str(SUBMISSIONS / "lee.md"), "--json", "--no-code").stdout)
    plain = StudentReport.model_validate_json(
        _run("check", str(SUBMISSIONS / "lee.md"), "--json", "--no-code", "--no-judge").stdout)
    assert "+judge:grader-judge-v2@" in with_judge.model  # the report says what graded it
    assert "judge" not in plain.model
    assert with_judge.total != plain.total  # the judge's probabilities change the points
    judged = {p.part_id: p for p in with_judge.parts if p.kind == "written" and p.status == "graded"}
    assert any(k.entailment is not None for p in judged.values() for k in p.key_points)  # it read the key points
    assert all(k.entailment is None for p in plain.parts for k in p.key_points)


def test_a_missing_judge_model_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["check", str(SUBMISSIONS / "lee.md"), "--no-code", "--judge", str(tmp_path / "nope")])
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "no judge model" in said and "--no-judge" in said


def test_check_prints_per_part_points_and_feedback(written_grader):
    result = _run("check", str(SUBMISSIONS / "lee.md"), "--no-code")
    assert result.exit_code == 0
    assert "q3.a" in result.output and "feedback" in result.output
    assert "Check this claim" in result.output  # lee's Q3 misconception is called out


def test_check_on_a_broken_file_says_why(tmp_path):
    bad = tmp_path / "me.txt"
    bad.write_bytes(b"\x00\x01\x02binary")
    result = runner.invoke(app, ["check", str(bad), "--no-code"])
    assert result.exit_code == 1
    assert "Could not grade me" in result.output


# ---------------------------------------------------------------------------- options declared once


def _defaults(verb: str) -> dict[str, object]:
    import typer.main

    command = typer.main.get_command(app).commands[verb]  # type: ignore[attr-defined]
    return {p.name: p.default for p in command.params}


@pytest.mark.parametrize("verb", ["grade", "check", "eval"])
def test_flag_defaults_are_the_library_defaults(verb):
    """Every flag named like a GradeOptions field defaults to that field's default, and the
    flags that negate one (--no-code, --no-judge) to its opposite: CLI and API cannot drift."""
    from grader.options import GradeOptions

    library = GradeOptions()
    flags = _defaults(verb)
    same = {name: value for name, value in flags.items() if name in GradeOptions.model_fields}
    assert same, verb
    for name, value in same.items():
        assert value == getattr(library, name), (verb, name)
    if "no_code" in flags:
        assert flags["no_code"] is not library.run_code
    assert flags["no_judge"] is (library.judge is None)


def test_code_workers_flag_reaches_the_options():
    from grader.cli.options import grade_options

    options = grade_options({"code_workers": 3, "no_code": False, "no_cache": True, "cache_dir": None})
    assert options.code_workers == 3 and options.run_code and options.cache_dir is None
    assert "--code-workers" in " ".join(_run("grade", "--help").output.split())
    bad = runner.invoke(app, ["grade", str(SUBMISSIONS), "--code-workers", "0"])
    assert bad.exit_code == 2


def test_rubrics_are_required_outside_a_checkout(tmp_path, monkeypatch):
    import grader.cli.rubrics as cli_rubrics

    monkeypatch.setattr(cli_rubrics, "SOURCE_TREE", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", str(RUBRICS), "--no-references"])
    assert result.exit_code == 0  # an explicit directory works anywhere
    result = runner.invoke(app, ["check", str(SUBMISSIONS / "lee.md"), "--no-code"])
    assert result.exit_code == 2
    assert "No rubrics: pass --rubrics DIR" in " ".join(result.output.split())
    assert cli_rubrics.example_rubrics(cwd=ROOT) == RUBRICS  # run from a checkout: found


def test_new_rubric_writes_a_valid_rubric_and_never_overwrites(tmp_path):
    result = _run("new-rubric", "q11", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    from grader.rubric import load_rubric_dir

    rubric_set = load_rubric_dir(tmp_path)
    (rubric,) = rubric_set.rubrics
    assert rubric.id == "q11" and rubric.parts[0].key_points and rubric.parts[0].exemplars
    again = runner.invoke(app, ["new-rubric", "q11", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "exists already" in again.output
    assert runner.invoke(app, ["new-rubric", "-bad", "--dir", str(tmp_path)]).exit_code == 2


def test_validate_runs_every_code_reference(tmp_path):
    rubrics = tmp_path / "rubrics"
    shutil.copytree(RUBRICS, rubrics)
    result = _run("validate", str(rubrics))
    assert result.exit_code == 0 and "code references ran on every case" in " ".join(result.output.split())
    reference = rubrics / "reference" / "q3.py"
    reference.write_text(reference.read_text() + "\nraise RuntimeError('broken reference')\n")
    result = runner.invoke(app, ["validate", str(rubrics)])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "Reference problems" in said and "q3.b" in said


def test_a_machine_without_the_sandbox_is_told_once_and_loudly(monkeypatch, written_grader):
    """No bubblewrap: one prominent line before grading says code parts are not graded and why."""
    from grader.code.sandbox import capabilities

    monkeypatch.setattr(capabilities, "_find_bwrap", lambda: None)
    capabilities.detect(refresh=True)
    try:
        result = runner.invoke(app, ["check", str(SUBMISSIONS / "lee.md"), "--json", "--no-judge"])
    finally:
        monkeypatch.undo()
        capabilities.detect(refresh=True)
    assert result.exit_code == 0
    said = " ".join(result.stderr.split())
    assert said.count("Code parts will not be graded:") == 1 and "bubblewrap" in said
    report = StudentReport.model_validate_json(result.stdout)
    q3b = report.part("q3.b")
    assert q3b.status == "error" and "bubblewrap" in q3b.feedback[0]
    quiet = runner.invoke(app, ["check", str(SUBMISSIONS / "lee.md"), "--json", "--no-judge", "--no-code"])
    assert "Code parts will not be graded" not in quiet.stderr  # --no-code: the user asked for it
