"""A grading run into an output directory: resumable, written as it goes, summarised at the end.

Each student's report is written atomically the moment it is complete, so a run
killed at any point (even kill -9) leaves only whole reports. Started again on the
same directory, it keeps every report that still applies (same files, rubrics,
models, grader version and grading code: see Grader.is_current; and no code outcome that
depends on the machine's state, such as a time-out) and grades the rest; the
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
from grader.code.outcomes import repeatable
from grader.export import atomic_write, safe_name, write_student, write_summary
from grader.export.class_report import write_class_report
from grader.intake import claimed_student
from grader.options import GradeOptions
from grader.pipeline import Grader, source_sha256, summarize
from grader.report import ClassSummary, StudentReport, encodable
from grader.review.corrections import Movement, movement, with_corrections
from grader.review.overrides import OverrideStore, apply_overrides, review_progress
from grader.rubric import RubricSet
from grader.submission import SubmissionSource

if TYPE_CHECKING:
    from grader.written import Encoder, Judge

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


def _settled(report: StudentReport) -> bool:
    """No code part whose outcome depends on the sandbox's or the machine's state: those are graded again."""
    return all(repeatable(p) for p in report.parts if p.code is not None and p.status != "missing")


def id_conflicts(sources: Sequence[SubmissionSource], max_bytes: int) -> dict[str, str]:
    """Submissions whose student id another one also claims (or whose reports would share a file): why, by found id.

    A file may name its student (front matter ``student: alice``, notebook metadata); two
    submissions ending up with one id would overwrite each other's report and share a
    gradebook row. Neither is graded; both say why, so a TA can decide whose is whose.
    """
    final = {s.student_id: claimed_student(s, max_bytes) or s.student_id for s in sources}
    groups: dict[str, list[SubmissionSource]] = {}
    for s in sources:
        groups.setdefault(safe_name(final[s.student_id]), []).append(s)
    out: dict[str, str] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        claims = [f"{', '.join(p.name for p in s.paths)} ({_claim(s.student_id, final[s.student_id])})" for s in group]
        for s in group:
            out[s.student_id] = (
                f"student id '{final[s.student_id]}' is claimed by {len(group)} submissions: {'; '.join(claims)}. "
                "None of them was graded, so that no report overwrites another: fix the student id in the file "
                "(front matter `student:` or notebook metadata) or rename a file, then grade again"
            )
    return out


def _write(grader: Grader, out: Path, report: StudentReport) -> StudentReport:
    """Write a student's report, and return what was written: one unwritable report must not stop the batch.

    A string no UTF-8 writer accepts (a file name that is not UTF-8) is escaped; a report that still
    cannot be written becomes a failed one saying so, for a TA to grade by hand.
    """
    try:
        write_student(out, report)
        return report
    except (UnicodeError, ValueError):
        report = encodable(report)
    try:
        write_student(out, report)
        return report
    except Exception as exc:  # noqa: BLE001 - as above: this student fails, the batch goes on
        error = f"the report could not be written ({type(exc).__name__}); a TA must grade this submission"
        failed = encodable(grader.failed(report.student_id, report.files, error))
        write_student(out, failed)
        return failed


def _claim(found: str, final: str) -> str:
    return f"its file names it '{final}'" if final != found else f"found as '{found}'"


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
    conflicts = id_conflicts(sources, grader.options.max_bytes)
    reports: dict[int, StudentReport] = {}
    todo: list[tuple[int, SubmissionSource]] = []
    for i, source in enumerate(sources):
        if source.student_id in conflicts:
            failed = grader.failed(source.student_id, [str(p) for p in source.paths], conflicts[source.student_id])
            reports[i] = _write(grader, out, failed)
            if progress:
                progress(source.student_id)
            continue
        report = previous.get(source_sha256(source))
        if report is not None and grader.is_current(report, source) and _settled(report):
            reports[i] = review(report)
            if reports[i] != report:  # a TA decided since it was written
                reports[i] = _write(grader, out, reports[i])
            if progress:
                progress(report.student_id)
        else:
            todo.append((i, source))
    reused = len(reports)
    positions = iter(i for i, _ in todo)
    for report in grader.grade_stream([s for _, s in todo], progress):
        t0 = time.perf_counter()
        report = _write(grader, out, review(report))
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
