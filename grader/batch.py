"""A grading run into an output directory: resumable, written as it goes, summarised at the end.

Each student's report is written atomically the moment it is complete, so a run
killed at any point (even kill -9) leaves only whole reports. Started again on the
same directory, it keeps every report that still applies (same files, rubrics,
models, grader version and grading code: see Grader.is_current) and grades the rest; the
gradebook and summary are then rebuilt from all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from grader import __version__
from grader.export import atomic_write, write_student, write_summary
from grader.export.class_report import write_class_report
from grader.options import GradeOptions
from grader.pipeline import Grader, source_sha256, summarize
from grader.report import ClassSummary, StudentReport
from grader.review.corrections import Movement, movement, with_corrections
from grader.review.overrides import OverrideStore, apply_overrides, review_progress
from grader.rubric import RubricSet
from grader.submission import SubmissionSource

if TYPE_CHECKING:
    from grader.embedding import Encoder
    from grader.judge import Judge

RUN_RECORD = "run.json"


class RunRecord(BaseModel):
    """How OUT was graded (OUT/run.json), so a regrade from `grader review` grades the same way."""

    inputs: list[Path] = Field(description="Submission files, folders and LMS CSVs, as absolute paths.")
    rubrics: Path
    columns: str | None = Field(default=None, description="The LMS column map (--columns), if any.")
    options: GradeOptions
    grader_version: str = __version__


def write_run_record(out: Path, record: RunRecord) -> None:
    atomic_write(out / RUN_RECORD, record.model_dump_json(indent=2))


def read_run_record(out: Path) -> RunRecord | None:
    path = out / RUN_RECORD
    try:
        return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class ReviewStep:
    """What a run adds to each report after grading: the TA's decisions.

    A separate step from grading, so a TA's decision applies to a freshly graded report and to
    one kept from an earlier run alike, whatever changed in between.
    """

    def __init__(self, out: Path, grader: Grader) -> None:
        self.decisions = OverrideStore(out).by_student()

    def __call__(self, report: StudentReport) -> StudentReport:
        return apply_overrides(report, self.decisions.get(report.student_id, {}))


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
    review = ReviewStep(out, grader)
    reports: dict[int, StudentReport] = {}
    todo: list[tuple[int, SubmissionSource]] = []
    for i, source in enumerate(sources):
        report = previous.get(source_sha256(source))
        if report is not None and grader.is_current(report, source):
            reports[i] = review(report)
            if reports[i] != report:  # a TA decided since it was written
                write_student(out, reports[i])
            if progress:
                progress(report.student_id)
        else:
            todo.append((i, source))
    reused = len(reports)
    positions = iter(i for i, _ in todo)
    for report in grader.grade_stream([s for _, s in todo], progress):
        t0 = time.perf_counter()
        report = review(report)
        write_student(out, report)
        grader.stats.report_s += time.perf_counter() - t0
        reports[next(positions)] = report
    t0 = time.perf_counter()
    ordered = [reports[i] for i in sorted(reports)]
    summary = summarize(ordered, grader.rubrics, grader.model_identity, time.perf_counter() - started)
    summary = review_progress(summary, ordered)
    write_summary(out, ordered, summary, grader.rubrics)
    write_class_report(out, ordered, summary)
    grader.stats.report_s += time.perf_counter() - t0
    return BatchOutcome(ordered, summary, reused)


@dataclass
class ClassRun:
    outcome: BatchOutcome
    movement: Movement
    """How the grader's points on answers no TA decided moved against the reports OUT held before."""


def grade_class(
    record: RunRecord,
    rubrics: RubricSet,
    sources: Sequence[SubmissionSource],
    out: Path,
    *,
    resume: bool = True,
    progress: Callable[[str], None] | None = None,
    encoder: Encoder | None = None,
    judge: Judge | None = None,
    open_grader: Callable[[RubricSet, GradeOptions], Grader] | None = None,
) -> ClassRun:
    """Grade a class into OUT the way `grader grade` does: the TA's decisions so far become exemplars of
    their parts (grader.review.corrections), every report gets the decisions applied, and the run is
    recorded in OUT/run.json so the review app can grade the class again the same way.

    The Grader is built by `open_grader` when given (the command line's says why code parts will not
    run), else from the options with the `encoder` and `judge` passed in."""
    store = OverrideStore(out)
    rubrics, n_exemplars = with_corrections(rubrics, store.all())
    before = list(existing_reports(out).values())
    out.mkdir(parents=True, exist_ok=True)
    write_run_record(out, record)
    if open_grader is None:
        grader = Grader(rubrics, record.options, encoder=encoder, judge=judge)
    else:
        grader = open_grader(rubrics, record.options)
    with grader:
        outcome = run_batch(grader, sources, out, resume=resume, progress=progress)
    moved = movement(before, outcome.reports, n_exemplars)
    if before and n_exemplars:
        store.record_regrade(moved.model_dump_json())
    return ClassRun(outcome, moved)
