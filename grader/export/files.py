"""Write reports: per-student JSON and Markdown feedback, the CSV gradebook, the class summary.

Every file is written atomically (temporary file, then rename), so a grading run
that is killed never leaves a half-written report behind.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from grader.report import ClassSummary, PartResult, StudentReport
from grader.rubric import RubricSet


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_name(student_id: str) -> str:
    """A file name for a student id: path separators and odd characters become '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", student_id).strip("._") or "student"
    return name[:120]


def report_json(report: StudentReport) -> str:
    return StudentReport.model_validate(report.model_dump()).model_dump_json(indent=2)


def gradebook_csv(reports: Sequence[StudentReport], rubrics: RubricSet) -> str:
    """One row per student, one column per part, then total, max and percent (an LMS imports this)."""
    part_ids = rubrics.part_ids()
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        ["student_id", "status", *part_ids, "total", "max_total", "percent", "error", "ta_graded", "ta_comments"]
    )
    for r in sorted(reports, key=lambda r: r.student_id):
        by_id = {p.part_id: p for p in r.parts}
        cells = [_cell(by_id.get(pid)) for pid in part_ids]
        ta = [p for p in r.parts if ta_graded(p)]
        comments = " | ".join(f"{p.part_id}: {p.review.comment}" for p in ta if p.review and p.review.comment)
        writer.writerow(
            [
                r.student_id,
                r.status,
                *cells,
                f"{r.total:g}",
                f"{r.max_total:g}",
                f"{r.percent:.2f}",
                r.error or "",
                " ".join(p.part_id for p in ta),
                comments,
            ]
        )
    return buf.getvalue()


def ta_graded(part: PartResult) -> bool:
    """The part's points are a TA's (accepted or set), not the grader's."""
    return part.review is not None and part.review.status != "stale"


def points_label(part: PartResult) -> str:
    """The part's points as a person reads them: a TA's points are marked as such."""
    return f"{part.points:g} (TA)" if ta_graded(part) else f"{part.points:g}"


def review_lines(part: PartResult) -> list[str]:
    """What a TA decided on this part, in words for the student."""
    review = part.review
    if review is None:
        return []
    if review.status == "stale":
        return ["This answer changed after a TA reviewed it; it is waiting for the TA again."]
    lines = []
    if review.status == "overridden":
        lines.append(f"**Points set by a TA: {review.points:g}** (the automatic grade was {review.grader_points:g}).")
    else:
        lines.append("A TA checked and confirmed these points.")
    if review.comment:
        lines.append(f"**TA's comment:** {review.comment}")
    return lines


def _cell(part: PartResult | None) -> str:
    return "" if part is None else f"{part.points:g}"


def feedback_markdown(report: StudentReport) -> str:
    """Per-student feedback a person reads: totals, then each part's points, feedback and warnings."""
    lines = [f"# Feedback for {report.student_id}", ""]
    if report.status == "failed":
        lines += ["**This submission could not be graded.**", "", f"Reason: {report.error}", ""]
        return "\n".join(lines)
    lines += [f"**Total: {report.total:g} / {report.max_total:g} ({report.percent:.1f}%)**", ""]
    lines += ["| Part | Points | Max | Status |", "|---|---:|---:|---|"]
    for p in report.parts:
        lines.append(f"| {p.part_id} | {points_label(p)} | {p.max_points:g} | {p.status} |")
    lines.append("")
    for p in report.parts:
        lines.append(f"## {p.part_id}: {points_label(p)} / {p.max_points:g}")
        lines.append("")
        for line in review_lines(p):
            lines.append(f"- {line}")
        for line in p.feedback:
            lines.append(f"- {line}")
        if p.code is not None and p.code.cases:
            passed = ", ".join(f"`{c.name}` {'passed' if c.passed else 'failed'}" for c in p.code.cases)
            lines.append(f"- Test cases: {passed}.")
        for w in p.warnings:
            lines.append(f"- _Note: {w}_")
        lines.append("")
    if report.unassigned:
        lines += ["## Text not matched to any part", ""]
        lines += [f"- {u.origin}: {_short(u.text)}" for u in report.unassigned]
        lines.append("")
    if report.warnings:
        lines += ["## Notes", ""] + [f"- {w}" for w in report.warnings] + [""]
    return "\n".join(lines)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def write_summary(out: Path, reports: Sequence[StudentReport], summary: ClassSummary, rubrics: RubricSet) -> None:
    """The class-level files: OUT/gradebook.csv and OUT/summary.json."""
    atomic_write(out / "gradebook.csv", gradebook_csv(reports, rubrics))
    atomic_write(out / "summary.json", ClassSummary.model_validate(summary.model_dump()).model_dump_json(indent=2))


def write_student(out: Path, report: StudentReport) -> None:
    name = safe_name(report.student_id)
    atomic_write(out / "reports" / f"{name}.json", report_json(report))
    atomic_write(out / "feedback" / f"{name}.md", feedback_markdown(report))
