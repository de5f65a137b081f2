"""Grade a batch: stream chunks of students through the two scorers and build their reports.

The stages meet through the pydantic models (SubmissionSource -> Submission -> PartResult ->
StudentReport). Parsing runs one chunk ahead on a second thread; each chunk goes to the code
scorer first (the sandbox works in the background) and then to the written scorer (one encode
for the whole chunk); reports are yielded as students complete. One broken submission becomes
a failed report that says why; it never stops the batch.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from grader import __version__
from grader.accelerate import use_cores
from grader.cache import Cache
from grader.code.scorer import CodeScorer
from grader.fingerprint import code_fingerprint
from grader.intake import parse_source
from grader.options import GradeOptions
from grader.report import ClassSummary, Failure, PartResult, PartSummary, StudentReport, Timing, UnassignedText
from grader.rubric import RubricSet
from grader.scorer import RunStats, Scorer, missing_result, savable
from grader.submission import Layout, Submission, SubmissionError, SubmissionSource
from grader.written import WrittenScorer, load_judge, model_identity

if TYPE_CHECKING:
    from grader.written import Encoder, Judge, PartIndex

__all__ = [
    "GradeOptions",
    "Grader",
    "Progress",
    "RunStats",
    "layout_of",
    "load_judge",
    "model_identity",
    "source_sha256",
    "summarize",
]

Progress = Callable[[str], None]
"""Called once per student as they finish (for a progress bar)."""


def layout_of(rubrics: RubricSet) -> Layout:
    return {r.id: [p.id for p in r.parts] for r in rubrics.rubrics}


def source_sha256(source: SubmissionSource) -> str:
    """Hash of a submission's files (names and bytes), to tell whether an earlier report still applies."""
    h = hashlib.sha256()
    if source.answers is not None:  # an LMS export: this student's rows, not the whole file
        for answer in source.answers:
            h.update(answer.model_dump_json().encode())
        return h.hexdigest()
    for path in sorted(source.paths):
        h.update(os.fsencode(path.name))  # a name that is not UTF-8 still hashes (as its bytes)
        h.update(b"\0")
        try:
            h.update(path.read_bytes())
        except OSError as exc:  # unreadable: the parser reports it; the hash just must not match a good run
            h.update(f"unreadable: {exc}".encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class _Pending:
    """A student between scoring and reporting: part results, some possibly still running."""

    source: SubmissionSource
    submission: Submission
    parts: dict[str, Future[PartResult]]
    timing: Timing
    started: float
    input_sha256: str


class Grader:
    """A grading session: rubrics, a written scorer (its models loaded once) and a code scorer.

    Build one per process and reuse it: the models load once and rubric texts are embedded once.
    `encoder` and `judge` may be passed in to share loaded models between Graders.
    """

    def __init__(
        self,
        rubrics: RubricSet,
        options: GradeOptions | None = None,
        encoder: Encoder | None = None,
        judge: Judge | None = None,
    ) -> None:
        self._setup(rubrics, options)
        use_cores()  # torch threads follow the cores this process may use, once
        self.written = WrittenScorer(rubrics, self.options, self.cache, self.stats, encoder=encoder, judge=judge)
        self.code = CodeScorer(rubrics, self.options, self.cache, self.stats)
        self.scorers: tuple[Scorer, ...] = (self.code, self.written)
        """In submission order: code first, so the sandbox works while the encoder does."""
        self.model_identity = self.written.identity

    def _setup(self, rubrics: RubricSet, options: GradeOptions | None) -> None:
        """What a Grader holds besides its scorers (grader.ray_backend.RayGrader has other scorers)."""
        self.rubrics = rubrics
        self.options = options or GradeOptions()
        self.cache = Cache(self.options.cache_dir) if self.options.cache_dir else None
        self.stats = RunStats()
        self.fingerprint = code_fingerprint()
        self.layout = layout_of(rubrics)
        self.chunks_in_flight = 1
        """Chunks submitted before the oldest one's reports are awaited: 1 for scorers that score
        as they are submitted, more for scorers that work elsewhere (a pool of Ray actors)."""

    # the written scorer's models, for callers that score answers directly (evaluation, tests)
    @property
    def encoder(self) -> Encoder:
        return self.written.encoder

    @property
    def judge(self) -> Judge | None:
        return self.written.judge

    @property
    def indexes(self) -> dict[str, PartIndex]:
        return self.written.indexes

    def score_answers(self, answers: Sequence[tuple[str, str]]) -> list[PartResult]:
        """Score (part id, answer text) pairs without the cache (see WrittenScorer.score_answers)."""
        return self.written.score_answers(answers)

    def code_unavailable(self) -> str | None:
        """Why code parts will not be run on this machine (e.g. no bubblewrap), or None."""
        return self.code.unavailable()

    def close(self) -> None:
        for scorer in self.scorers:
            scorer.close()
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stages -----------------------------------------------------------------------------------
    def parse(self, source: SubmissionSource) -> Submission:
        return parse_source(source, self.layout, max_bytes=self.options.max_bytes)

    def failed(
        self,
        student_id: str,
        files: list[str],
        error: str,
        started: float | None = None,
        input_sha256: str | None = None,
    ) -> StudentReport:
        """A report of a submission that was not graded, saying why; a resumed run reuses it only by input_sha256."""
        return StudentReport(
            student_id=student_id,
            files=files,
            status="failed",
            error=error,
            max_total=self.rubrics.max_points,
            timing=Timing(total_s=round(time.perf_counter() - started, 4) if started is not None else 0.0),
            grader_version=__version__,
            code_fingerprint=self.fingerprint,
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
            return self.failed(source.student_id, [str(p) for p in source.paths], str(exc), started, input_sha256)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not cost the batch: report it for this student
            error = f"internal parser error: {type(exc).__name__}: {exc}"
            return self.failed(source.student_id, [str(p) for p in source.paths], error, started, input_sha256)
        timing = Timing(parse_s=round(time.perf_counter() - started, 4))
        return _Pending(source, submission, {}, timing, started, input_sha256)

    def _parse_chunk(self, sources: Sequence[SubmissionSource]) -> list[_Pending | StudentReport]:
        started = time.perf_counter()
        parsed = [self._parse_one(s) for s in sources]
        self.stats.parse_s += time.perf_counter() - started
        return parsed

    def _score_chunk(self, pending: Sequence[_Pending]) -> None:
        """Hand the chunk to each scorer in turn; the written scorer's time is shared out as score time."""
        chunk = [item.submission for item in pending]
        for scorer in self.scorers:
            started = time.perf_counter()
            for item, parts in zip(pending, scorer.submit(chunk)):
                item.parts.update(parts)
            if scorer is self.written:
                for item in pending:
                    item.timing.score_s = round((time.perf_counter() - started) / max(len(pending), 1), 4)

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
        submitted: deque[list[_Pending | StudentReport]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-parse") as parser:
            upcoming = parser.submit(self._parse_chunk, chunks[0])
            for k in range(len(chunks)):
                parsed = upcoming.result()
                if k + 1 < len(chunks):
                    upcoming = parser.submit(self._parse_chunk, chunks[k + 1])
                self._score_chunk([p for p in parsed if isinstance(p, _Pending)])
                submitted.append(parsed)
                while submitted and (len(submitted) >= self.chunks_in_flight or k + 1 == len(chunks)):
                    for entry in submitted.popleft():
                        report = entry if isinstance(entry, StudentReport) else self._finish(entry)
                        self.stats.n_students += 1
                        if progress:
                            progress(report.student_id)
                        yield report

    def grade_sources(
        self, sources: Sequence[SubmissionSource], progress: Progress | None = None
    ) -> list[StudentReport]:
        """Grade many students and return all reports (see grade_stream to handle them as they come)."""
        return list(self.grade_stream(sources, progress))

    def _finish(self, item: _Pending) -> StudentReport:
        t0 = time.perf_counter()
        results: list[PartResult] = []
        for rubric, part in self.rubrics.parts():
            part_id = rubric.qualified(part)
            future = item.parts.get(part_id)
            value = savable(part_id, part, future.result()) if future is not None else missing_result(part_id, part)
            answer = item.submission.answer(part_id)
            if answer is not None:  # the text a TA reviews and an override is keyed on
                value = value.model_copy(update={"answer": answer.text, "answer_sha256": answer.sha256()})
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
            unassigned=[UnassignedText(text=u.text, origin=u.origin) for u in item.submission.unassigned],
            warnings=item.submission.warnings,
            total=total,
            max_total=max_total,
            percent=round(100 * total / max_total, 2) if max_total else 0.0,
            timing=item.timing,
            grader_version=__version__,
            code_fingerprint=self.fingerprint,
            rubric_sha256=self.rubrics.sha256,
            model=self.model_identity,
            input_sha256=item.input_sha256,
        )

    def is_current(self, report: StudentReport, source: SubmissionSource) -> bool:
        """Would grading this source now give this report? (Same files, rubrics, models, version and code.)"""
        return (
            report.input_sha256 == source_sha256(source)
            and report.rubric_sha256 == self.rubrics.sha256
            and report.model == self.model_identity
            and report.grader_version == __version__
            and report.code_fingerprint == self.fingerprint
        )


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
        failures=[
            Failure(student_id=r.student_id, files=r.files, error=r.error or "")
            for r in reports
            if r.status == "failed"
        ],
        grader_version=__version__,
        rubric_sha256=rubrics.sha256,
        model=model,
        wall_time_s=round(wall_time_s, 3),
    )
