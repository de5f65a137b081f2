"""The TA's loop on a graded class: decisions in every output, surviving regrades and rubric edits,
stale when the answer changes, corrections that move the unreviewed answers, groups, collusion, language."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from grader.batch import grade_class, read_run_record
from grader.intake.lms import gather_sources
from grader.report import StudentReport
from grader.review.overrides import OverrideError, OverrideStore
from grader.review.workspace import Workspace
from grader.rubric import load_rubric_dir


def _report(out: Path, student: str) -> StudentReport:
    return StudentReport.model_validate_json((out / "reports" / f"{student}.json").read_text())


def _regrade(base: Path, encoder, judge, fresh: bool = True):  # noqa: ANN001
    record = read_run_record(base / "out")
    rubrics = load_rubric_dir(record.rubrics)
    sources, _, _ = gather_sources(record.inputs, None, rubrics.part_ids())
    return grade_class(record, rubrics, sources, base / "out", resume=not fresh, encoder=encoder, judge=judge)


def _assert_override_everywhere(out: Path, student: str, part: str, points: float, comment: str) -> None:
    report = _report(out, student)
    p = report.part(part)
    assert p.points == points and p.review.status == "overridden" and p.review.comment == comment
    assert report.total == pytest.approx(sum(q.points for q in report.parts), abs=0.011)
    feedback = (out / "feedback" / f"{student}.md").read_text()
    assert f"## {part}: {points:g} (TA)" in feedback and comment in feedback
    row = next(r for r in csv.DictReader((out / "gradebook.csv").open()) if r["student_id"] == student)
    assert float(row[part]) == points and part in row["ta_graded"].split() and comment in row["ta_comments"]
    summary = json.loads((out / "summary.json").read_text())
    assert next(s for s in summary["parts"] if s["part_id"] == part)["n_overridden"] >= 1


def test_an_override_is_in_every_output_and_survives_a_fresh_regrade_after_a_rubric_edit(class_copy, encoder, judge):
    out = class_copy / "out"
    ws = Workspace(out)
    ws.decide([("kim", "q3.a")], "set", 2.5, "Too short on the valley argument.")
    _assert_override_everywhere(out, "kim", "q3.a", 2.5, "Too short on the valley argument.")

    q3 = class_copy / "rubrics" / "q3.yaml"
    q3.write_text(q3.read_text().replace("hint: ", "hint: Think again. ", 1))  # a rubric edit
    run = _regrade(class_copy, encoder, judge, fresh=True)
    assert run.outcome.reused == 0
    _assert_override_everywhere(out, "kim", "q3.a", 2.5, "Too short on the valley argument.")
    assert run.movement.n_exemplars == 1


def test_an_override_on_a_changed_answer_is_flagged_not_applied_nor_dropped(class_copy, encoder, judge):
    out = class_copy / "out"
    Workspace(out).decide([("lee", "q1.a")], "set", 5.0, "ok")
    path = class_copy / "submissions" / "lee.md"
    path.write_text(
        path.read_text().replace(
            "Question 1", "Question 1\n\n- a) A new answer: no, the theorem is about existence only.", 1
        )
    )
    _regrade(class_copy, encoder, judge, fresh=False)
    part = _report(out, "lee").part("q1.a")
    assert part.review.status == "stale" and part.review.points == 5.0 and part.points == part.review.grader_points
    assert any("earlier version" in w for w in part.warnings)
    assert len(OverrideStore(out).all()) == 1  # kept
    ws = Workspace(out)
    assert ws.queue()[0].student_id == "lee" and ws.queue()[0].part.part_id == "q1.a"  # first in the queue


def test_grading_a_group_accepts_and_sets_points_for_every_member(class_copy):
    ws = Workspace(class_copy / "out")
    groups = ws.groups("q3.a")
    twins = next(g for g in groups if {i.student_id for i in g.items} >= {"kim", "kimcopy"})
    ws.decide([(i.student_id, "q3.a") for i in twins.items], "set", 4.0, "group grade")
    for sid in ("kim", "kimcopy"):
        assert _report(class_copy / "out", sid).part("q3.a").points == 4.0
    with pytest.raises(OverrideError, match="between 0 and 5"):
        ws.decide([("kim", "q3.a")], "set", 7.0)
    with pytest.raises(OverrideError, match="no part"):
        ws.decide([("nobody", "q3.a")], "accept")


def test_queue_orders_least_sure_first_and_filters(class_copy):
    ws = Workspace(class_copy / "out")
    items = ws.queue(part_id="q1.a", below=0.9)
    assert items and all(i.part.part_id == "q1.a" and i.part.confidence < 0.9 for i in items)
    assert [i.part.confidence for i in items] == sorted(i.part.confidence for i in items)
    ws.decide([(items[0].student_id, "q1.a")], "accept")
    assert items[0].student_id not in {i.student_id for i in ws.queue(part_id="q1.a", below=0.9)}


def test_flags_collusion_and_another_language(class_copy):
    ws = Workspace(class_copy / "out")
    pairs = {(p.part_id, p.students) for p in ws.pairs()}
    assert ("q1.a", ("kim", "kimcopy")) in pairs
    assert not any("kim" in s and "lee" in s for _, s in pairs)
    sofia = _report(class_copy / "out", "sofia").part("q3.a")
    assert sofia.language == "es"
    assert not any(p.language for sid in ("kim", "lee", "rossi") for p in _report(class_copy / "out", sid).parts)
    html = (class_copy / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 1 + len(ws.part_ids)
    assert "kimcopy" in html and "sofia" in html and "http" not in html.split("<body>", 1)[1].replace("http-equiv", "")


def test_a_histogram_is_drawn_once_and_redrawn_when_its_bars_move():
    import base64
    import io

    from PIL import Image

    from grader.export.class_report import _histogram_png, histogram_png

    edges = [0.0, 1.0, 2.0, 3.0, 4.0]
    first = histogram_png([1, 0, 2, 3], edges, "q1.a", "points (of 4)")
    hits = _histogram_png.cache_info().hits
    assert histogram_png([1, 0, 2, 3], edges, "q1.a", "points (of 4)") == first
    assert _histogram_png.cache_info().hits == hits + 1, "the same bars are not drawn again"
    moved = histogram_png([1, 1, 2, 2], edges, "q1.a", "points (of 4)")
    assert moved != first and histogram_png([1, 0, 2, 3], edges, "q1.b", "points (of 4)") != first
    assert Image.open(io.BytesIO(base64.b64decode(first))).size == (340, 220)  # 3.4 x 2.2 in at 100 dpi


def test_corrections_move_the_unreviewed_answers(class_copy, encoder, judge):
    ws = Workspace(class_copy / "out")
    before = {sid: _report(class_copy / "out", sid).part("q1.a").points for sid in ws.reports}
    ws.decide([("rossi", "q1.a"), ("quinn", "q1.a")], "set", 0.0, "no")
    ws.decide([("kim", "q1.a"), ("lee", "q1.a")], "set", 5.0)
    run = _regrade(class_copy, encoder, judge, fresh=False)
    moved = next(p for p in run.movement.parts if p.part_id == "q1.a")
    assert run.movement.n_exemplars == 4 and moved.n_compared == 1  # kimcopy (sofia did not answer q1.a)
    after = _report(class_copy / "out", "kimcopy").part("q1.a").points
    assert moved.n_moved == 1 and after > before["kimcopy"]  # towards kim's 5 points: the same answer
    assert _report(class_copy / "out", "kim").part("q1.a").points == 5.0
    assert Workspace(class_copy / "out").last_regrade().n_exemplars == 4


def test_the_app_escapes_student_text_and_refuses_foreign_requests(class_copy):
    from fastapi.testclient import TestClient

    from grader.review.app import create_app

    path = class_copy / "out" / "reports" / "rossi.json"
    report = StudentReport.model_validate_json(path.read_text())
    hostile = "<script>alert(1)</script> Momentum helps. <img src=x onerror=alert(2)>"
    parts = [p.model_copy(update={"answer": hostile}) if p.part_id == "q3.a" else p for p in report.parts]
    path.write_text(report.model_copy(update={"parts": parts}).model_dump_json())
    client = TestClient(create_app(Workspace(class_copy / "out")), base_url="http://127.0.0.1")
    page = client.get("/part/q3.a")
    assert page.status_code == 200 and "script-src" not in page.headers["content-security-policy"]
    assert (
        "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text and "<img src=x" not in page.text
    )
    assert client.get("/", headers={"host": "evil.example"}).status_code == 403
    refused = client.post("/decide", data={"token": "guess", "student": "kim", "part_id": "q3.a", "action": "accept"})
    assert refused.status_code == 403 and not OverrideStore(class_copy / "out").all()


def test_terminal_path_lists_the_queue_overrides_and_exports(class_copy):
    from typer.testing import CliRunner

    from grader.cli import app

    out = class_copy / "out"
    runner = CliRunner()
    listed = runner.invoke(app, ["review", str(out), "--list", "--part", "q3.a", "--below", "0.9"])
    assert listed.exit_code == 0, listed.output
    assert "waiting for review" in " ".join(listed.output.split()) and "q3.a" in listed.output
    done = runner.invoke(app, ["override", str(out), "rossi", "q3.a", "3.5", "--comment", "Half the argument."])
    assert done.exit_code == 0, done.output
    _assert_override_everywhere(out, "rossi", "q3.a", 3.5, "Half the argument.")
    assert "rossi" not in runner.invoke(app, ["review", str(out), "--list", "--part", "q3.a"]).output
    bad = runner.invoke(app, ["override", str(out), "rossi", "q3.a", "9"])
    assert bad.exit_code == 2 and "between 0 and 5" in " ".join(bad.output.split())
    for fmt in ("canvas", "moodle", "gradescope", "csv"):
        assert runner.invoke(app, ["export", str(out), "--format", fmt]).exit_code == 0
    rows = list(csv.DictReader((out / "export" / "grades.csv").open()))
    row = next(r for r in rows if r["student_id"] == "rossi" and r["part_id"] == "q3.a")
    assert row["points"] == "3.5" and row["graded_by"] == "TA" and row["ta_comment"] == "Half the argument."
    assert (
        json.loads((out / "export" / "gradescope" / "rossi" / "results.json").read_text())["score"]
        == _report(out, "rossi").total
    )


def test_a_grade_more_likely_wrong_than_right_says_why(class_copy):
    """On its review page and in the terminal queue."""
    from fastapi.testclient import TestClient
    from markupsafe import escape
    from typer.testing import CliRunner

    from grader.cli import app
    from grader.review.app import create_app
    from grader.written.confidence import doubts, shipped_model, why_unsure

    workspace = Workspace(class_copy / "out")
    low = [
        p
        for r in workspace.reports.values()
        for p in r.parts
        if p.confidence_signals and p.confidence < 0.5 and doubts(shipped_model(), p.confidence_signals)
    ]
    sure = [p for r in workspace.reports.values() for p in r.parts if p.confidence_signals and p.confidence >= 0.8]
    assert low and sure
    client = TestClient(create_app(workspace), base_url="http://127.0.0.1")
    page = client.get(f"/part/{low[0].part_id}").text
    assert "unsure: " + str(escape("; ".join(doubts(shipped_model(), low[0].confidence_signals)))) in page
    assert why_unsure(low[0]) and not why_unsure(sure[0])  # a grade more likely right than wrong is not explained away
    listed = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["review", str(class_copy / "out"), "--list"])
    assert listed.exit_code == 0 and why_unsure(low[0])[0] in listed.output, listed.output
