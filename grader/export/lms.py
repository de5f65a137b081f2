"""Grades in the formats LMSs import (`grader export OUT --format ...`), TA decisions included.

- canvas: Canvas's gradebook CSV. Identity columns ``Student, ID, SIS User ID, SIS Login ID,
  Section``, then one assignment column; the second row is ``Points Possible`` with the
  assignment's maximum. Canvas matches a row by ID, SIS User ID or SIS Login ID; an empty
  grade cell changes nothing, so a submission that could not be graded is left empty.
- moodle: Moodle's grade import CSV ("Import grades from CSV"): ``First name, Last name, ID
  number, Email address``, the grade item column and its feedback column; map ``ID number``
  (or ``Email address``) to the user in Moodle's import form.
- gradescope: one ``results.json`` per student in Gradescope's autograder format: ``score``,
  ``output``, ``visibility`` and ``tests``, one test per part with ``name``, ``number``,
  ``score``, ``max_score``, ``status`` and the part's feedback as ``output``.
- csv: one row per student and part (points, maximum, who graded it, the TA's comment).

Identities come from OUT/roster.json (written when the class came from an LMS export) or a
roster given with ``--roster`` (Canvas gradebook export or Moodle export); otherwise the
student id fills the SIS User ID (Canvas) or ID number (Moodle) column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

from grader.export.files import atomic_write, review_lines, safe_name, ta_graded
from grader.intake.lms import RosterEntry
from grader.report import PartResult, StudentReport

Format = Literal["canvas", "moodle", "gradescope", "csv"]
FORMATS: tuple[str, ...] = get_args(Format)
CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_IDENTITY = ("First name", "Last name", "ID number", "Email address")
GRADESCOPE_STATUS = ("passed", "failed")


def _csv(rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def _grade(report: StudentReport) -> str:
    return f"{report.total:g}" if report.status == "graded" else ""


def canvas_csv(
    reports: Sequence[StudentReport], roster: dict[str, RosterEntry], assignment: str, max_total: float
) -> str:
    rows: list[list[object]] = [[*CANVAS_IDENTITY, assignment], ["Points Possible", "", "", "", "", f"{max_total:g}"]]
    for r in sorted(reports, key=lambda r: r.student_id):
        who = roster.get(r.student_id) or RosterEntry(student_id=r.student_id)
        name = who.name or (f"{who.last_name}, {who.first_name}" if who.last_name and who.first_name else r.student_id)
        sis = who.sis_id or ("" if who.lms_id else r.student_id)
        rows.append([name, who.lms_id or "", sis, "", who.section or "", _grade(r)])
    return _csv(rows)


def _feedback_summary(report: StudentReport) -> str:
    """One line a gradebook shows: points per part, a TA's points and comments marked."""
    if report.status != "graded":
        return f"Not graded: {report.error}"
    parts = []
    for p in report.parts:
        text = f"{p.part_id} {p.points:g}/{p.max_points:g}"
        if ta_graded(p):
            text += " (TA" + (f": {p.review.comment}" if p.review and p.review.comment else "") + ")"
        parts.append(text)
    return "; ".join(parts)


def moodle_csv(reports: Sequence[StudentReport], roster: dict[str, RosterEntry], assignment: str) -> str:
    rows: list[list[object]] = [[*MOODLE_IDENTITY, assignment, f"{assignment} (feedback)"]]
    for r in sorted(reports, key=lambda r: r.student_id):
        who = roster.get(r.student_id) or RosterEntry(student_id=r.student_id)
        first = who.first_name or (who.name or "").split(" ")[0]
        last = who.last_name or " ".join((who.name or "").split(" ")[1:])
        rows.append([first, last, who.sis_id or r.student_id, who.email or "", _grade(r), _feedback_summary(r)])
    return _csv(rows)


def _test_output(part: PartResult) -> str:
    lines = [*review_lines(part), *part.feedback]
    if part.code is not None and part.code.cases:
        lines.append(
            "Test cases: " + ", ".join(f"{c.name} {'passed' if c.passed else 'failed'}" for c in part.code.cases)
        )
    return "\n".join(lines)


def gradescope_results(report: StudentReport) -> dict:
    """One student's results.json, in Gradescope's autograder format."""
    if report.status != "graded":
        return {
            "score": 0.0,
            "output": f"This submission could not be graded: {report.error}",
            "visibility": "visible",
            "tests": [],
        }
    tests = [
        {
            "name": p.part_id + (" (graded by a TA)" if ta_graded(p) else ""),
            "number": p.part_id,
            "score": p.points,
            "max_score": p.max_points,
            "status": "passed" if p.points >= p.max_points else "failed",
            "output": _test_output(p),
            "visibility": "visible",
        }
        for p in report.parts
    ]
    return {
        "score": report.total,
        "output": f"Total {report.total:g} / {report.max_total:g}",
        "visibility": "visible",
        "tests": tests,
    }


def long_csv(reports: Sequence[StudentReport]) -> str:
    rows: list[list[object]] = [
        ["student_id", "part_id", "points", "max_points", "status", "graded_by", "ta_comment", "confidence"]
    ]
    for r in sorted(reports, key=lambda r: r.student_id):
        for p in r.parts:
            rows.append(
                [
                    r.student_id,
                    p.part_id,
                    f"{p.points:g}",
                    f"{p.max_points:g}",
                    p.status,
                    "TA" if ta_graded(p) else "grader",
                    p.review.comment if p.review and ta_graded(p) else "",
                    f"{p.confidence:.3f}",
                ]
            )
    return _csv(rows)


def export(
    reports: Sequence[StudentReport], fmt: Format, dest: Path, roster: dict[str, RosterEntry], assignment: str
) -> list[Path]:
    """Write one format under dest; returns the files written."""
    max_total = max((r.max_total for r in reports), default=0.0)
    if fmt == "canvas":
        paths = [(dest / "canvas.csv", canvas_csv(reports, roster, assignment, max_total))]
    elif fmt == "moodle":
        paths = [(dest / "moodle.csv", moodle_csv(reports, roster, assignment))]
    elif fmt == "gradescope":
        paths = [
            (
                dest / "gradescope" / safe_name(r.student_id) / "results.json",
                json.dumps(gradescope_results(r), indent=2) + "\n",
            )
            for r in reports
        ]
    else:
        paths = [(dest / "grades.csv", long_csv(reports))]
    for path, text in paths:
        atomic_write(path, text)
    return [p for p, _ in paths]


def read_roster_csv(path: Path) -> dict[str, RosterEntry]:
    """Identities from an LMS roster export: Canvas's gradebook CSV or Moodle's grade export."""
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    out: dict[str, RosterEntry] = {}
    for row in rows:
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        if row.get("Student", "").lower().startswith("points possible"):
            continue
        entry = RosterEntry(
            student_id="",
            name=row.get("Student") or None,
            lms_id=row.get("ID") or None,
            sis_id=row.get("SIS User ID") or row.get("ID number") or None,
            section=row.get("Section") or None,
            first_name=row.get("First name") or None,
            last_name=row.get("Last name") or row.get("Surname") or None,
            email=row.get("Email address") or None,
        )
        for key in (entry.sis_id, row.get("SIS Login ID"), entry.lms_id, entry.email, row.get("Username")):
            if key:
                out[key] = entry.model_copy(update={"student_id": key})
    return out
