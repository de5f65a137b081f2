"""Code answers -> PartResults: the CodeGrader's sandbox behind the Grader's chunk protocol, with a cache.

Code answers are submitted to the warm sandbox and come back as Futures, so student code runs
while the written answers are encoded. A result a rerun would reproduce exactly is cached under
a key of the grading code, the part, its reference and the answer; outcomes that depend on the
sandbox's or the machine's state (time-outs, memory, a killed or crashed process, a sandbox
failure) are never cached (grader.code.outcomes).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from grader import __version__
from grader.cache import Cache, digest
from grader.code.outcomes import repeatable
from grader.fingerprint import code_fingerprint
from grader.options import GradeOptions
from grader.report import PartResult
from grader.rubric import Part, Rubric, RubricSet
from grader.scorer import PartResults, RunStats, done, error_result, missing_result, savable
from grader.submission import Answer, Submission

if TYPE_CHECKING:
    from grader.code import CodeGrader


def code_not_run(part_id: str, part: Part, reason: str) -> PartResult:
    """A code part that could not be run: no points, and the student and the TA read why."""
    return error_result(part_id, part, f"This code answer was not run: {reason}", reason)


class CodeScorer:
    """Scores the code parts of a chunk of submissions (the Scorer protocol of grader.scorer).

    The sandbox (grader.code, whose grader imports torch) starts on the first code answer, so
    written-only grading never loads it.
    """

    def __init__(
        self, rubrics: RubricSet, options: GradeOptions, cache: Cache | None = None, stats: RunStats | None = None
    ) -> None:
        self.rubrics = rubrics
        self.options = options
        self.cache = cache
        self.stats = stats or RunStats()
        self.parts = [(rubric, part) for rubric, part in rubrics.parts() if part.kind == "code"]
        self.fingerprint = code_fingerprint()
        self._grader: CodeGrader | None = None

    def _code_grader(self) -> CodeGrader:
        if self._grader is None:
            from grader.code import CodeGrader

            self._grader = CodeGrader(
                self.rubrics, allow_unsandboxed=self.options.allow_unsandboxed, workers=self.options.code_workers
            )
        return self._grader

    def unavailable(self) -> str | None:
        """Why the code parts cannot run on this machine (None when they can, or when none are to run).

        Starts the code grader, so the answer is the one every code part would get.
        """
        if not self.parts or not self.options.run_code:
            return None
        try:
            self._code_grader()
        except Exception as exc:  # noqa: BLE001 - as in _submit: the reason each code part would carry
            return str(exc)
        return None

    def key(self, rubric: Rubric, part: Part, answer: Answer) -> bytes:
        """Everything a code result depends on: the grading code, the part, its reference's bytes and the answer."""
        reference = self.rubrics.reference_path(rubric, part).read_bytes()
        return digest(
            __version__,
            self.fingerprint,
            "code",
            part.model_dump_json(),
            reference,
            "\0".join(answer.code),
            answer.text,
        )

    def submit(self, chunk: Sequence[Submission]) -> list[PartResults]:
        """Start every code answer of a chunk in the sandbox, except those whose result is cached."""
        jobs: list[tuple[int, Rubric, Part, bytes | None]] = []
        for i, submission in enumerate(chunk):
            for rubric, part in self.parts:
                answer = submission.answer(rubric.qualified(part))
                key = self.key(rubric, part, answer) if answer and self.cache else None
                jobs.append((i, rubric, part, key))
        cached = self.cache.get_results([k for *_, k in jobs if k]) if self.cache else {}
        results: list[PartResults] = [{} for _ in chunk]
        for i, rubric, part, key in jobs:
            part_id = rubric.qualified(part)
            if key is not None and key in cached:
                results[i][part_id] = done(PartResult.model_validate_json(cached[key]))
                self.stats.n_parts_from_cache += 1
            else:
                results[i][part_id] = self._submit(rubric, part, chunk[i], key)
        return results

    def _submit(self, rubric: Rubric, part: Part, submission: Submission, key: bytes | None) -> Future[PartResult]:
        part_id = rubric.qualified(part)
        answer = submission.answer(part_id)
        if answer is None:
            return done(missing_result(part_id, part))
        if not self.options.run_code:
            return done(code_not_run(part_id, part, "code grading is switched off (--no-code)"))
        try:
            running = self._code_grader().submit(rubric, part, answer, submission.student_id)
        except Exception as exc:  # noqa: BLE001 - sandbox unavailable: one clear reason on every code part
            return done(code_not_run(part_id, part, str(exc)))
        return self._settled(part_id, part, running, key)

    def _settled(self, part_id: str, part: Part, running: Future[PartResult], key: bytes | None) -> Future[PartResult]:
        """A Future of the sandbox's result that never raises, caching the result once it is known."""
        result: Future[PartResult] = Future()
        cache = self.cache

        def finish(future: Future[PartResult]) -> None:
            try:
                value = future.result()
            except Exception as exc:  # noqa: BLE001 - the code grader failed on this answer: say so, keep the rest
                value = code_not_run(part_id, part, f"code grader error: {type(exc).__name__}: {exc}")
            value = savable(part_id, part, value)
            try:
                if key is not None and cache is not None and repeatable(value):
                    cache.put_results([(key, value.model_dump_json())])
            finally:  # a failed cache write must not keep the student's report waiting
                result.set_result(value)

        running.add_done_callback(finish)
        return result

    def close(self) -> None:
        """Stop the sandbox servers; results still running settle as not run (their callbacks still fire)."""
        if self._grader is not None:
            self._grader.close()
            self._grader = None
        self.cache = None
