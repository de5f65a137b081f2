"""Grade a batch: parse every submission, encode all written text at once, score, run code, report.

The stages meet through the pydantic models (Submission -> PartResult ->
StudentReport). One broken submission becomes a failed report that says why;
it never stops the batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from grader import __version__
from grader.embedding import DEFAULT_MODEL, Encoder
from grader.feedback import MISSING, written_feedback
from grader.parsing import discover, parse_source
from grader.report import ClassSummary, Failure, PartResult, PartSummary, StudentReport, Timing
from grader.rubric import Part, Rubric, RubricSet
from grader.scoring import PartIndex, ScoringConfig, all_answer_texts, assess, build_indexes, final_points
from grader.submission import Layout, Submission, SubmissionError, SubmissionSource

Progress = Callable[[str], None]
"""Called once per student as they finish (for a progress bar)."""


class GradeOptions(BaseModel):
    model: str = Field(default=DEFAULT_MODEL, description="Embedding model: the bundled default or a path.")
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    max_bytes: int = Field(default=2_000_000, gt=0, description="Largest submission file accepted.")
    run_code: bool = Field(default=True, description="Run code parts in the sandbox (else report them ungraded).")
    allow_unsandboxed: bool = Field(default=False, description="Run student code even where isolation is missing.")
    code_workers: int = Field(default=1, ge=1)


def layout_of(rubrics: RubricSet) -> Layout:
    return {r.id: [p.id for p in r.parts] for r in rubrics.rubrics}


def _missing(part_id: str, part: Part) -> PartResult:
    return PartResult(
        part_id=part_id, kind=part.kind, status="missing", points=0.0, max_points=part.max_points,
        confidence=1.0, feedback=[MISSING],
    )


def _code_not_run(part_id: str, part: Part, reason: str) -> PartResult:
    return PartResult(
        part_id=part_id, kind="code", status="error", points=0.0, max_points=part.max_points,
        confidence=0.0, feedback=[f"This code answer was not run: {reason}"], warnings=[reason],
    )


def written_result(index: PartIndex, text: str, encoder: Encoder) -> PartResult:
    """Score one written answer and phrase its feedback."""
    assessment = assess(index, text, encoder)
    points, calibrated = final_points(index, assessment.raw_score)
    return PartResult(
        part_id=index.part_id,
        kind="written",
        status="graded",
        points=points,
        max_points=index.part.max_points,
        raw_score=assessment.raw_score,
        calibrated=calibrated,
        confidence=assessment.confidence,
        feedback=written_feedback(index.part, assessment),
        key_points=assessment.key_points,
        misconceptions=assessment.misconceptions,
        warnings=assessment.warnings,
    )


@dataclass
class _Pending:
    """A student between scoring and reporting: written parts done, code parts possibly still running."""

    source: SubmissionSource
    submission: Submission
    parts: dict[str, PartResult | Future]
    timing: Timing
    started: float
    warnings: list[str] = field(default_factory=list)


class Grader:
    """A grading session: rubrics, one encoder, prepared part indexes and (lazily) the code sandbox.

    Build one per process and reuse it: the model loads once and rubric texts are embedded once.
    """

    def __init__(self, rubrics: RubricSet, options: GradeOptions | None = None, encoder: Encoder | None = None):
        self.rubrics = rubrics
        self.options = options or GradeOptions()
        self.encoder = encoder or Encoder(self.options.model)
        self.indexes = build_indexes(rubrics, self.encoder, self.options.scoring)
        self.layout = layout_of(rubrics)
        self._code = None

    # -- code parts -------------------------------------------------------------------------------
    def _code_grader(self):  # noqa: ANN202 - imported lazily: written-only grading never loads the sandbox
        if self._code is None:
            from grader.codegrade import CodeGrader

            self._code = CodeGrader(
                self.rubrics, allow_unsandboxed=self.options.allow_unsandboxed, workers=self.options.code_workers
            )
        return self._code

    def close(self) -> None:
        if self._code is not None:
            self._code.close()
            self._code = None

    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit_code(self, rubric: Rubric, part: Part, submission: Submission) -> PartResult | Future:
        part_id = rubric.qualified(part)
        answer = submission.answer(part_id)
        if answer is None:
            return _missing(part_id, part)
        if not self.options.run_code:
            return _code_not_run(part_id, part, "code grading is switched off (--no-code)")
        try:
            return self._code_grader().submit(rubric, part, answer, submission.student_id)
        except Exception as exc:  # sandbox unavailable: one clear reason on every code part
            return _code_not_run(part_id, part, str(exc))

    # -- stages -----------------------------------------------------------------------------------
    def parse(self, source: SubmissionSource) -> Submission:
        return parse_source(source, self.layout, max_bytes=self.options.max_bytes)

    def _failed(self, source: SubmissionSource, error: str, started: float) -> StudentReport:
        return StudentReport(
            student_id=source.student_id,
            files=[str(p) for p in source.paths],
            status="failed",
            error=error,
            max_total=self.rubrics.max_points,
            timing=Timing(total_s=round(time.perf_counter() - started, 4)),
            grader_version=__version__,
            rubric_sha256=self.rubrics.sha256,
            model=self.encoder.identity,
        )

    def grade_sources(self, sources: Sequence[SubmissionSource], progress: Progress | None = None) -> list[StudentReport]:
        """Grade many students; written text of the whole batch is encoded in one pass."""
        parsed: list[_Pending | StudentReport] = []
        for source in sources:
            started = time.perf_counter()
            try:
                submission = self.parse(source)
            except SubmissionError as exc:
                parsed.append(self._failed(source, str(exc), started))
                continue
            except Exception as exc:  # a parser bug must not cost the batch: report it for this student
                parsed.append(self._failed(source, f"internal parser error: {type(exc).__name__}: {exc}", started))
                continue
            timing = Timing(parse_s=round(time.perf_counter() - started, 4))
            parsed.append(_Pending(source, submission, {}, timing, started))

        pending = [p for p in parsed if isinstance(p, _Pending)]
        window = self.options.scoring.window
        self.encoder.prime(
            all_answer_texts(
                (a.text for p in pending for a in p.submission.answers if a.part_id in self.indexes), window
            )
        )
        for item in pending:
            t0 = time.perf_counter()
            for rubric, part in self.rubrics.parts():
                part_id = rubric.qualified(part)
                if part.kind == "code":
                    item.parts[part_id] = self._submit_code(rubric, part, item.submission)
                    continue
                answer = item.submission.answer(part_id)
                item.parts[part_id] = (
                    written_result(self.indexes[part_id], answer.text, self.encoder) if answer else _missing(part_id, part)
                )
            item.timing.score_s = round(time.perf_counter() - t0, 4)

        reports: list[StudentReport] = []
        for entry in parsed:
            if isinstance(entry, StudentReport):
                reports.append(entry)
            else:
                reports.append(self._finish(entry))
            if progress:
                progress(reports[-1].student_id)
        return reports

    def _finish(self, item: _Pending) -> StudentReport:
        t0 = time.perf_counter()
        results: list[PartResult] = []
        for part_id, value in item.parts.items():
            if isinstance(value, Future):
                try:
                    value = value.result()
                except Exception as exc:  # the code grader failed on this answer: say so, keep the rest
                    _, part = self.rubrics.part(part_id)
                    value = _code_not_run(part_id, part, f"code grader error: {type(exc).__name__}: {exc}")
            results.append(value)
        item.timing.code_s = round(time.perf_counter() - t0, 4)
        total = round(sum(r.points for r in results), 2)
        max_total = self.rubrics.max_points
        item.timing.total_s = round(time.perf_counter() - item.started, 4)
        return StudentReport(
            student_id=item.submission.student_id,
            files=item.submission.files,
            status="graded",
            parts=results,
            unassigned=[{"text": u.text, "origin": u.origin} for u in item.submission.unassigned],
            warnings=item.submission.warnings,
            total=total,
            max_total=max_total,
            percent=round(100 * total / max_total, 2) if max_total else 0.0,
            timing=item.timing,
            grader_version=__version__,
            rubric_sha256=self.rubrics.sha256,
            model=self.encoder.identity,
        )

    def grade_paths(self, inputs: Sequence[Path], progress: Progress | None = None) -> tuple[list[StudentReport], list[str]]:
        """Discover submissions under files/directories and grade them; also return discovery warnings."""
        sources, warnings = discover(list(inputs))
        return self.grade_sources(sources, progress), warnings


def summarize(reports: Sequence[StudentReport], rubrics: RubricSet, model: str, wall_time_s: float) -> ClassSummary:
    """Class statistics per part and the list of submissions that could not be graded."""
    graded = [r for r in reports if r.status == "graded"]
    parts: list[PartSummary] = []
    for rubric, part in rubrics.parts():
        part_id = rubric.qualified(part)
        results = [p for r in graded for p in r.parts if p.part_id == part_id]
        scored = np.array([p.points for p in results if p.status == "graded"], dtype=float)
        hist, _ = np.histogram(scored, bins=5, range=(0, part.max_points)) if scored.size else (np.zeros(5, int), None)
        parts.append(
            PartSummary(
                part_id=part_id,
                max_points=part.max_points,
                n_graded=int(scored.size),
                n_missing=sum(p.status == "missing" for p in results),
                n_error=sum(p.status == "error" for p in results),
                mean=round(float(scored.mean()), 3) if scored.size else None,
                std=round(float(scored.std()), 3) if scored.size else None,
                min=float(scored.min()) if scored.size else None,
                max=float(scored.max()) if scored.size else None,
                histogram=[int(h) for h in hist],
            )
        )
    totals = np.array([r.total for r in graded], dtype=float)
    return ClassSummary(
        n_submissions=len(reports),
        n_graded=len(graded),
        n_failed=len(reports) - len(graded),
        max_total=rubrics.max_points,
        mean_total=round(float(totals.mean()), 3) if totals.size else None,
        mean_percent=round(float(100 * totals.mean() / rubrics.max_points), 2) if totals.size else None,
        parts=parts,
        failures=[Failure(student_id=r.student_id, files=r.files, error=r.error or "") for r in reports if r.status == "failed"],
        grader_version=__version__,
        rubric_sha256=rubrics.sha256,
        model=model,
        wall_time_s=round(wall_time_s, 3),
    )
