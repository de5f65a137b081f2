"""Grade a batch: parse every submission, encode all written text at once, score, run code, report.

The stages meet through the pydantic models (Submission -> PartResult ->
StudentReport). One broken submission becomes a failed report that says why;
it never stops the batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from grader import __version__
from grader.cache import Cache, digest
from grader.code.outcomes import repeatable
from grader.embedding import DEFAULT_MODEL, Encoder
from grader.judge import DEFAULT_NAME as DEFAULT_JUDGE
from grader.feedback import MISSING, written_feedback
from grader.parsing import discover, parse_source
from grader.report import ClassSummary, Failure, PartResult, PartSummary, StudentReport, Timing
from grader.rubric import Part, Rubric, RubricSet
from grader.scoring import (
    Assessment,
    PartIndex,
    judge_pairs,
    judged,
    ScoringConfig,
    all_answer_texts,
    assess,
    background_sentences,
    build_indexes,
    final_points,
)
from grader.submission import Layout, Submission, SubmissionError, SubmissionSource

if TYPE_CHECKING:
    from grader.judge import Judge

Progress = Callable[[str], None]
"""Called once per student as they finish (for a progress bar)."""


class GradeOptions(BaseModel):
    model: str = Field(default=DEFAULT_MODEL, description="Embedding model: the bundled default or a path.")
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    max_bytes: int = Field(default=2_000_000, gt=0, description="Largest submission file accepted.")
    run_code: bool = Field(default=True, description="Run code parts in the sandbox (else report them ungraded).")
    allow_unsandboxed: bool = Field(default=False, description="Run student code even where isolation is missing.")
    code_workers: int = Field(default=1, ge=1)
    cache_dir: Path | None = Field(default=None, description="Embedding and result cache (SQLite); None: memory only.")
    int8: bool = Field(default=False, description="Quantise the encoder's Linear layers to int8 (CPU only).")
    judge: str | None = Field(
        default=DEFAULT_JUDGE,
        description="Cross-encoder that re-weighs the evidence (a name under models/ or a path); None: similarity only.",
    )
    chunk_size: int = Field(default=64, ge=1, description="Students parsed, encoded and reported together.")
    memo_limit: int = Field(default=50_000, ge=0, description="Student-text vectors kept in memory between chunks.")


def layout_of(rubrics: RubricSet) -> Layout:
    return {r.id: [p.id for p in r.parts] for r in rubrics.rubrics}


def source_sha256(source: SubmissionSource) -> str:
    """Hash of a submission's files (names and bytes), to tell whether an earlier report still applies."""
    h = hashlib.sha256()
    for path in sorted(source.paths):
        h.update(path.name.encode())
        h.update(b"\0")
        try:
            h.update(path.read_bytes())
        except OSError as exc:  # unreadable: the parser reports it; the hash just must not match a good run
            h.update(f"unreadable: {exc}".encode())
        h.update(b"\0")
    return h.hexdigest()


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


def written_result(index: PartIndex, text: str, encoder: Encoder, judge: "Judge | None" = None) -> PartResult:
    """Score one written answer and phrase its feedback."""
    return part_result(index, judged(index, assess(index, text, encoder), judge))


def part_result(index: PartIndex, assessment: Assessment) -> PartResult:
    """The report entry for an assessed written answer: points, evidence and feedback."""
    points, calibrated = final_points(index, assessment)
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


def model_identity(encoder: Encoder, judge: "Judge | None") -> str:
    """What produced a grade (reports, caches, resumability): the encoder, plus the judge when one is used."""
    return encoder.identity + (f"+judge:{judge.identity}" if judge else "")


def load_judge(name: str) -> "Judge":
    from grader.judge import Judge

    return Judge.load(name)


def _savable(part_id: str, part: Part, result: PartResult) -> PartResult:
    """The result itself if it can be written out; else this part fails with the reason (the rest goes on)."""
    try:
        result.model_dump_json()
        return result
    except Exception as exc:  # noqa: BLE001 - one unwritable result must not stop the batch
        reason = f"the result could not be saved ({type(exc).__name__}: {str(exc)[:200]!r})"
        return PartResult(
            part_id=part_id, kind=part.kind, status="error", points=0.0, max_points=part.max_points, confidence=0.0,
            feedback=[f"This part could not be graded automatically: {reason}; a TA will grade it."], warnings=[reason],
        )


def part_key(index: PartIndex, rubrics: RubricSet, model_identity: str) -> bytes:
    """Everything a written part's result depends on, except the answer: a rubric edit elsewhere keeps it.

    The part's own definition, its question stem, the other questions' reference sentences
    (the off-topic contrast), the scoring settings, the model and the grader version.
    """
    background = [
        t for r, p in rubrics.parts() if p.kind == "written" and r.id != index.rubric.id for t in background_sentences(p)
    ]
    return digest(
        __version__, model_identity, index.config.model_dump_json(), index.rubric.question or "",
        index.part.model_dump_json(), "\n".join(background),
    )


@dataclass
class _Pending:
    """A student between scoring and reporting: written parts done, code parts possibly still running."""

    source: SubmissionSource
    submission: Submission
    parts: dict[str, PartResult | Future]
    timing: Timing
    started: float
    input_sha256: str
    code_keys: dict[str, bytes] = field(default_factory=dict)


@dataclass
class RunStats:
    """Where a run's time went, for benchmarks and the end-of-run summary."""

    parse_s: float = 0.0
    encode_s: float = 0.0
    judge_s: float = 0.0
    score_s: float = 0.0
    code_wait_s: float = 0.0
    report_s: float = 0.0
    n_students: int = 0
    n_parts_scored: int = 0
    n_parts_from_cache: int = 0


class Grader:
    """A grading session: rubrics, one encoder, prepared part indexes and (lazily) the code sandbox.

    Build one per process and reuse it: the model loads once and rubric texts are embedded once.
    """

    def __init__(
        self, rubrics: RubricSet, options: GradeOptions | None = None, encoder: Encoder | None = None,
        judge: "Judge | None" = None,
    ):
        self.rubrics = rubrics
        self.options = options or GradeOptions()
        self.cache = Cache(self.options.cache_dir) if self.options.cache_dir else None
        self.encoder = encoder or Encoder(self.options.model, cache=self.cache, int8=self.options.int8)
        self.judge = judge or (load_judge(self.options.judge) if self.options.judge else None)
        if self.judge is not None and self.cache is not None:
            self.judge.store = self.cache
        self.indexes = build_indexes(rubrics, self.encoder, self.options.scoring, self.judge)
        self.model_identity = model_identity(self.encoder, self.judge)
        self.part_keys = {pid: part_key(ix, rubrics, self.model_identity) for pid, ix in self.indexes.items()}
        self.layout = layout_of(rubrics)
        self.stats = RunStats()
        self._code = None

    # -- code parts -------------------------------------------------------------------------------
    def _code_grader(self):  # noqa: ANN202 - imported lazily: written-only grading never loads the sandbox
        if self._code is None:
            from grader.code import CodeGrader

            self._code = CodeGrader(
                self.rubrics, allow_unsandboxed=self.options.allow_unsandboxed, workers=self.options.code_workers
            )
        return self._code

    def close(self) -> None:
        if self._code is not None:
            self._code.close()
            self._code = None
        if self.cache is not None:
            if self.judge is not None and self.judge.store is self.cache:
                self.judge.store = None
            self.cache.close()
            self.cache = None

    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _code_key(self, rubric: Rubric, part: Part, answer_code: list[str], answer_text: str) -> bytes:
        reference = self.rubrics.reference_path(rubric, part).read_bytes()
        return digest(__version__, "code", part.model_dump_json(), reference, "\0".join(answer_code), answer_text)

    def _submit_codes(self, pending: Sequence[_Pending]) -> None:
        """Start every code answer of a chunk in the sandbox, except those whose result is cached."""
        jobs: list[tuple[_Pending, Rubric, Part, bytes | None]] = []
        for item in pending:
            for rubric, part in self.rubrics.parts():
                if part.kind != "code":
                    continue
                answer = item.submission.answer(rubric.qualified(part))
                key = self._code_key(rubric, part, answer.code, answer.text) if answer and self.cache else None
                jobs.append((item, rubric, part, key))
        cached = self.cache.get_results([k for *_, k in jobs if k]) if self.cache else {}
        for item, rubric, part, key in jobs:
            if key is not None and key in cached:
                item.parts[rubric.qualified(part)] = PartResult.model_validate_json(cached[key])
                self.stats.n_parts_from_cache += 1
            else:
                item.parts[rubric.qualified(part)] = self._submit_code(rubric, part, item.submission)
                if key is not None:
                    item.code_keys[rubric.qualified(part)] = key

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

    def _failed(self, source: SubmissionSource, error: str, started: float, input_sha256: str) -> StudentReport:
        return StudentReport(
            student_id=source.student_id,
            files=[str(p) for p in source.paths],
            status="failed",
            error=error,
            max_total=self.rubrics.max_points,
            timing=Timing(total_s=round(time.perf_counter() - started, 4)),
            grader_version=__version__,
            rubric_sha256=self.rubrics.sha256,
            model=self.model_identity,
            input_sha256=input_sha256,
        )

    def _parse_one(self, source: SubmissionSource) -> _Pending | StudentReport:
        started = time.perf_counter()
        input_sha256 = source_sha256(source)
        try:
            submission = self.parse(source)
        except SubmissionError as exc:
            return self._failed(source, str(exc), started, input_sha256)
        except Exception as exc:  # a parser bug must not cost the batch: report it for this student
            return self._failed(source, f"internal parser error: {type(exc).__name__}: {exc}", started, input_sha256)
        timing = Timing(parse_s=round(time.perf_counter() - started, 4))
        return _Pending(source, submission, {}, timing, started, input_sha256)

    def _parse_chunk(self, sources: Sequence[SubmissionSource]) -> list[_Pending | StudentReport]:
        started = time.perf_counter()
        parsed = [self._parse_one(s) for s in sources]
        self.stats.parse_s += time.perf_counter() - started
        return parsed

    def _score_written(self, pending: Sequence[_Pending]) -> None:
        """Score every written answer of a chunk: cached results first, then one encode for the rest."""
        started = time.perf_counter()
        jobs: list[tuple[_Pending, str, str, bytes]] = []
        for item in pending:
            for answer in item.submission.answers:
                if answer.part_id in self.indexes:
                    key = digest(self.part_keys[answer.part_id], answer.text)
                    jobs.append((item, answer.part_id, answer.text, key))
        cached = self.cache.get_results([j[3] for j in jobs]) if self.cache else {}
        todo = [j for j in jobs if j[3] not in cached]
        encode_before, judge_before = self.encoder.encode_s, self.stats.judge_s
        scored = self.score_answers([(part_id, text) for _, part_id, text, _ in todo])
        fresh_by_key = {key: result for (_, _, _, key), result in zip(todo, scored)}
        fresh: list[tuple[bytes, str]] = []
        for item, part_id, text, key in jobs:
            if key in cached:
                result = PartResult.model_validate_json(cached[key])
                self.stats.n_parts_from_cache += 1
            else:
                result = fresh_by_key[key]
                fresh.append((key, result.model_dump_json()))
                self.stats.n_parts_scored += 1
            item.parts[part_id] = result
        if self.cache and fresh:
            self.cache.put_results(fresh)
        encoded = self.encoder.encode_s - encode_before
        self.stats.encode_s += encoded
        elapsed = time.perf_counter() - started
        self.stats.score_s += elapsed - encoded - (self.stats.judge_s - judge_before)
        for item in pending:
            item.timing.score_s = round(elapsed / max(len(pending), 1), 4)

    def score_answers(self, answers: Sequence[tuple[str, str]]) -> list[PartResult]:
        """Score (part id, answer text) pairs: one encode, one batched judge call, then per-answer results."""
        self.encoder.prime(all_answer_texts((text for _, text in answers), self.options.scoring.window))
        assessments = [assess(self.indexes[pid], text, self.encoder) for pid, text in answers]
        if self.judge is not None:  # one batched judge call; apply_judge then reads the judge's memo
            t0 = time.perf_counter()
            self.judge.score([p for (pid, _), a in zip(answers, assessments) for p in judge_pairs(self.indexes[pid], a)])
            self.stats.judge_s += time.perf_counter() - t0
        return [part_result(self.indexes[pid], judged(self.indexes[pid], a, self.judge)) for (pid, _), a in zip(answers, assessments)]

    def grade_stream(
        self, sources: Sequence[SubmissionSource], progress: Progress | None = None
    ) -> Iterator[StudentReport]:
        """Grade students chunk by chunk, yielding each report as soon as it is complete.

        While one chunk is encoded, the next is parsed on a second thread and the chunk's code
        answers run in the sandbox; memory holds one chunk (plus the rubrics), however many students.
        """
        size = self.options.chunk_size
        chunks = [list(sources[i : i + size]) for i in range(0, len(sources), size)]
        if not chunks:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-parse") as parser:
            upcoming = parser.submit(self._parse_chunk, chunks[0])
            for k in range(len(chunks)):
                parsed = upcoming.result()
                if k + 1 < len(chunks):
                    upcoming = parser.submit(self._parse_chunk, chunks[k + 1])
                pending = [p for p in parsed if isinstance(p, _Pending)]
                self._submit_codes(pending)  # code first: the sandbox works while the encoder does
                self._score_written(pending)
                for entry in parsed:
                    report = entry if isinstance(entry, StudentReport) else self._finish(entry)
                    self.stats.n_students += 1
                    if progress:
                        progress(report.student_id)
                    yield report
                self.encoder.trim(self.options.memo_limit)

    def grade_sources(self, sources: Sequence[SubmissionSource], progress: Progress | None = None) -> list[StudentReport]:
        """Grade many students and return all reports (see grade_stream to handle them as they come)."""
        return list(self.grade_stream(sources, progress))

    def _finish(self, item: _Pending) -> StudentReport:
        t0 = time.perf_counter()
        results: list[PartResult] = []
        for rubric, part in self.rubrics.parts():
            part_id = rubric.qualified(part)
            value = item.parts.get(part_id) or _missing(part_id, part)
            if isinstance(value, Future):
                try:
                    value = value.result()
                except Exception as exc:  # the code grader failed on this answer: say so, keep the rest
                    value = _code_not_run(part_id, part, f"code grader error: {type(exc).__name__}: {exc}")
            value = _savable(part_id, part, value)
            key = item.code_keys.get(part_id)
            if key is not None and self.cache is not None and repeatable(value):
                self.cache.put_results([(key, value.model_dump_json())])
            results.append(value)
        waited = time.perf_counter() - t0
        self.stats.code_wait_s += waited
        item.timing.code_s = round(waited, 4)
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
            model=self.model_identity,
            input_sha256=item.input_sha256,
        )

    def is_current(self, report: StudentReport, source: SubmissionSource) -> bool:
        """Would grading this source now give this report? (Same files, rubrics, model and version.)"""
        return (
            report.input_sha256 == source_sha256(source)
            and report.rubric_sha256 == self.rubrics.sha256
            and report.model == self.model_identity
            and report.grader_version == __version__
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
