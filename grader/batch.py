"""A grading run into an output directory: resumable, written as it goes, summarised at the end.

Each student's report is written atomically the moment it is complete, so a run
killed at any point (even kill -9) leaves only whole reports. Started again on the
same directory, it keeps every report that still applies (same files, rubrics,
model and grader version: see Grader.is_current) and grades the rest; the
gradebook and summary are then rebuilt from all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from grader.export import gradebook_csv, write_student, write_summary
from grader.pipeline import Grader, source_sha256, summarize
from grader.report import ClassSummary, StudentReport
from grader.submission import SubmissionSource


@dataclass
class BatchOutcome:
    reports: list[StudentReport]
    summary: ClassSummary
    reused: int
    """Reports kept from an earlier run of the same directory."""


def existing_reports(out: Path) -> dict[str, StudentReport]:
    """Reports already in OUT/reports, by the hash of the files they graded (unreadable ones are ignored)."""
    found: dict[str, StudentReport] = {}
    for path in sorted((out / "reports").glob("*.json")):
        try:
            report = StudentReport.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, ValidationError):
            continue  # a report from an incompatible version is regraded, not trusted
        if report.input_sha256:
            found[report.input_sha256] = report
    return found


def remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files of writes a killed run never finished (see export.atomic_write)."""
    for sub in ("reports", "feedback", "."):
        for path in (out / sub).glob(".*.tmp"):
            path.unlink(missing_ok=True)


def _unwritable(report: StudentReport, exc: Exception) -> StudentReport:
    """A failed report in place of one that cannot be written, saying why (never resumed: no input hash)."""
    return StudentReport(
        student_id=report.student_id,
        files=report.files,
        status="failed",
        error=f"the report could not be written ({type(exc).__name__}); a TA must grade this submission",
        max_total=report.max_total,
        grader_version=report.grader_version,
        rubric_sha256=report.rubric_sha256,
        model=report.model,
    )


def run_batch(
    grader: Grader,
    sources: Sequence[SubmissionSource],
    out: Path,
    *,
    resume: bool = True,
    progress: Callable[[str], None] | None = None,
) -> BatchOutcome:
    """Grade sources into OUT (reports/, feedback/, gradebook.csv, summary.json), reusing current reports."""
    started = time.perf_counter()
    remove_stale_temporaries(out)
    previous = existing_reports(out) if resume else {}
    reports: dict[int, StudentReport] = {}
    todo: list[tuple[int, SubmissionSource]] = []
    for i, source in enumerate(sources):
        report = previous.get(source_sha256(source))
        if report is not None and grader.is_current(report, source):
            reports[i] = report
            if progress:
                progress(report.student_id)
        else:
            todo.append((i, source))
    reused = len(reports)
    positions = iter(i for i, _ in todo)
    for report in grader.grade_stream([s for _, s in todo], progress):
        t0 = time.perf_counter()
        try:
            write_student(out, report)
        except Exception as exc:  # noqa: BLE001 - one unwritable report must not stop the batch
            report = _unwritable(report, exc)
            write_student(out, report)
        grader.stats.report_s += time.perf_counter() - t0
        reports[next(positions)] = report
    t0 = time.perf_counter()
    ordered = [reports[i] for i in sorted(reports)]
    summary = summarize(ordered, grader.rubrics, grader.model_identity, time.perf_counter() - started)
    write_summary(out, ordered, summary, grader.rubrics)
    grader.stats.report_s += time.perf_counter() - t0
    return BatchOutcome(ordered, summary, reused)
