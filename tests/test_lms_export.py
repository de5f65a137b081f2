"""LMS import (long CSV, Canvas Student Analysis, Moodle Responses) and exports checked against the
documented columns of Canvas's gradebook CSV, Moodle's grade import CSV and Gradescope's results.json."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from grader.batch import run_batch
from grader.export.lms import (
    CANVAS_IDENTITY,
    MOODLE_IDENTITY,
    canvas_csv,
    export,
    moodle_csv,
    read_roster_csv,
)
from grader.intake.lms import ColumnMap, LmsError, gather_sources, read_lms_csv
from grader.report import PartResult, PartReview, StudentReport

PARTS = ["q3.a", "q1.a", "q1.b"]
MOMENTUM = "Yes, momentum still helps: on an ill-conditioned convex valley it damps the zig-zag and converges faster."

# Canvas classic quiz "Student Analysis": identity columns, then per question "<id>: <text>" and its score column.
CANVAS = (
    "name,id,sis_id,root_account,section,section_id,section_sis_id,submitted,attempt,"
    '"4101: The loss surface is convex. Is momentum expected to help?",2.0,'
    '"4102: Does the UAT mean an MLP reaches the best accuracy?",2.0,n correct,n incorrect,score\n'
    f'"Kim, Jiwoo",1001,S1,acct,Sec A,11,SA,2026-11-01 10:00:00 UTC,1,"<p>No, it does not help.</p>",0,"<p>Not really.</p>",0,0,0,0\n'
    f'"Kim, Jiwoo",1001,S1,acct,Sec A,11,SA,2026-11-01 11:00:00 UTC,2,"<p>{MOMENTUM}</p><p>Too much <b>momentum</b> overshoots.</p>",0,"",0,0,0,0\n'
    '"Lee, Ana",1002,S2,acct,Sec B,12,SB,2026-11-01 10:30:00 UTC,1,"Momentum makes training faster.",0,"It only says a network exists, not that training finds it.",0,0,0,0\n'
)
# Moodle quiz "Responses" report: identity columns, state and timing, the grade, then "Response N".
MOODLE = (
    "Surname,First name,Email address,ID number,State,Started on,Completed,Time taken,Grade/10.00,Response 1,Response 2\n"
    f'Kim,Jiwoo,kim@example.edu,S1,Finished,1 November 2026  10:00 AM,1 November 2026  10:40 AM,40 mins,-,"{MOMENTUM}",-\n'
    'Lee,Ana,lee@example.edu,S2,Finished,1 November 2026  10:00 AM,1 November 2026  10:30 AM,30 mins,-,"Momentum makes training faster.","It only says a network exists."\n'
    "Overall average,,,,,,,,-,,\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_long_csv_one_row_per_student_and_part(tmp_path):
    path = _write(
        tmp_path, "answers.csv", f'student_id,part_id,answer\nkim,q3.a,"{MOMENTUM}"\nkim,q1.a,\nlee,q3.a,Faster.\n'
    )
    imported = read_lms_csv(path, ColumnMap.parse(None), PARTS)
    by_id = {s.student_id: s for s in imported.sources}
    assert [a.part_id for a in by_id["kim"].answers] == ["q3.a"] and by_id["kim"].answers[0].text == MOMENTUM
    assert by_id["lee"].answers[0].origin == "answers.csv row 4"
    renamed = _write(tmp_path, "renamed.csv", "Who;Which;Text\nkim;q3.a;Yes\n")
    assert (
        read_lms_csv(renamed, ColumnMap.parse("student=Who,part=Which,answer=Text"), PARTS).sources[0].answers[0].text
        == "Yes"
    )


def test_canvas_student_analysis_latest_attempt_html_to_text(tmp_path):
    path = _write(tmp_path, "canvas.csv", CANVAS)
    imported = read_lms_csv(path, ColumnMap.parse("layout=canvas,4101=q3.a,#2=q1.a"), PARTS)
    by_id = {s.student_id: s for s in imported.sources}
    kim = {a.part_id: a.text for a in by_id["S1"].answers}
    assert kim == {"q3.a": f"{MOMENTUM}\n\nToo much momentum overshoots."}  # attempt 2, its empty q1.a missing
    assert {a.part_id for a in by_id["S2"].answers} == {"q3.a", "q1.a"}
    roster = {r.student_id: r for r in imported.roster}
    assert roster["S1"].lms_id == "1001" and roster["S1"].section == "Sec A" and roster["S1"].name == "Kim, Jiwoo"


def test_moodle_responses_report(tmp_path):
    path = _write(tmp_path, "moodle.csv", MOODLE)
    imported = read_lms_csv(path, ColumnMap.parse("layout=moodle,1=q3.a,2=q1.a"), PARTS)
    by_id = {s.student_id: s for s in imported.sources}
    assert set(by_id) == {"S1", "S2"}  # the "Overall average" row is not a student
    assert [a.part_id for a in by_id["S1"].answers] == ["q3.a"]  # "-" is no answer
    assert {r.student_id: r.email for r in imported.roster}["S2"] == "lee@example.edu"


def test_column_map_problems_are_named(tmp_path):
    canvas = _write(tmp_path, "canvas.csv", CANVAS)
    with pytest.raises(LmsError, match="4101 .*4102"):
        read_lms_csv(canvas, ColumnMap.parse("layout=canvas"), PARTS)
    with pytest.raises(LmsError, match="q9.z is not a rubric part"):
        read_lms_csv(canvas, ColumnMap.parse("layout=canvas,4101=q9.z"), PARTS)
    long = _write(tmp_path, "bad.csv", "student_id,part_id,answer\nkim,q7.x,hi\n")
    with pytest.raises(LmsError, match=r"row 2: part_id: unknown part 'q7.x'"):
        read_lms_csv(long, ColumnMap(), PARTS)
    with pytest.raises(LmsError, match="not key=value"):
        ColumnMap.parse("canvas,oops")


def test_an_lms_export_is_graded_like_files(tmp_path, written_grader):
    path = _write(tmp_path, "moodle.csv", MOODLE)
    sources, roster, _ = gather_sources([path], "layout=moodle,1=q3.a,2=q1.a", written_grader.rubrics.part_ids())
    outcome = run_batch(written_grader, sources, tmp_path / "out")
    kim = next(r for r in outcome.reports if r.student_id == "S1")
    assert kim.status == "graded" and kim.part("q3.a").points > kim.part("q1.a").points == 0
    assert kim.part("q3.a").answer == MOMENTUM and kim.part("q3.a").answer_sha256
    again = run_batch(written_grader, sources, tmp_path / "out")
    assert again.reused == 2  # each student's rows are hashed, not the whole file


def _report(sid: str, points: tuple[float, float], review: PartReview | None = None) -> StudentReport:
    parts = [
        PartResult(
            part_id="q1.a",
            kind="written",
            status="graded",
            points=points[0],
            max_points=5,
            confidence=0.5,
            feedback=["You explained: the answer to the question."],
            review=review,
            answer="x",
            answer_sha256="h",
        ),
        PartResult(part_id="q5.b", kind="code", status="graded", points=points[1], max_points=6, confidence=1.0),
    ]
    return StudentReport(
        student_id=sid,
        files=[],
        status="graded",
        parts=parts,
        total=sum(points),
        max_total=11,
        grader_version="t",
        rubric_sha256="r",
        model="m",
    )


REVIEW = PartReview(
    status="overridden",
    points=4.0,
    grader_points=2.5,
    comment="Good argument.",
    reviewed_at="2026-11-30T00:00:00+00:00",
    answer_sha256="h",
)


def test_canvas_gradebook_has_identity_columns_and_points_possible():
    reports = [
        _report("S1", (4.0, 6.0), REVIEW),
        StudentReport(
            student_id="S9",
            files=[],
            status="failed",
            error="empty",
            max_total=11,
            grader_version="t",
            rubric_sha256="r",
            model="m",
        ),
    ]
    rows = list(csv.reader(io.StringIO(canvas_csv(reports, {}, "Exam 1", 11))))
    assert tuple(rows[0][:5]) == CANVAS_IDENTITY == ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
    assert rows[0][5] == "Exam 1" and rows[1][0] == "Points Possible" and rows[1][5] == "11"
    assert rows[2][2] == "S1" and rows[2][5] == "10" and rows[3][5] == ""  # not graded: left empty, never 0


def test_moodle_import_csv_has_an_identifier_grade_and_feedback():
    rows = list(csv.DictReader(io.StringIO(moodle_csv([_report("S1", (4.0, 6.0), REVIEW)], {}, "Exam 1"))))
    assert tuple(list(rows[0])[:4]) == MOODLE_IDENTITY
    assert rows[0]["ID number"] == "S1" and rows[0]["Exam 1"] == "10"
    assert "q1.a 4/5 (TA: Good argument.)" in rows[0]["Exam 1 (feedback)"]


def test_gradescope_results_json_follows_the_autograder_format(tmp_path):
    written = export([_report("S1", (4.0, 6.0), REVIEW)], "gradescope", tmp_path, {}, "x")
    data = json.loads(written[0].read_text())
    assert written[0].name == "results.json" and written[0].parent.name == "S1"
    assert set(data) <= {
        "score",
        "execution_time",
        "output",
        "output_format",
        "visibility",
        "stdout_visibility",
        "tests",
        "leaderboard",
    }
    assert data["score"] == 10 and data["visibility"] in ("hidden", "after_due_date", "after_published", "visible")
    for test in data["tests"]:
        assert {"name", "score", "max_score", "output"} <= set(test) and test["status"] in ("passed", "failed")
    q1 = data["tests"][0]
    assert (
        q1["score"] == 4.0
        and q1["max_score"] == 5
        and "Points set by a TA: 4" in q1["output"]
        and "Good argument." in q1["output"]
    )


def test_roster_from_a_canvas_gradebook_export(tmp_path):
    path = _write(
        tmp_path,
        "roster.csv",
        'Student,ID,SIS User ID,SIS Login ID,Section\n"Points Possible",,,,\n"Kim, Jiwoo",1001,S1,kim,Sec A\n',
    )
    roster = read_roster_csv(path)
    rows = list(csv.reader(io.StringIO(canvas_csv([_report("S1", (4.0, 6.0))], roster, "Exam", 11))))
    assert rows[2][:5] == ["Kim, Jiwoo", "1001", "S1", "", "Sec A"]
