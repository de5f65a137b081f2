"""What the Grader asks of a scorer: take a chunk of parsed submissions, hand back their part results.

Written and code answers are scored by two scorers (grader.written.scorer, grader.code.scorer)
that share one protocol, ``submit(chunk) -> results``: for each submission of the chunk, in
order, a mapping from part id to a Future of its PartResult. A written scorer's futures are
done when submit returns; a code scorer's complete as the sandbox finishes, so student code
runs while the next scorer works. A Future never raises: a failure is a PartResult saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal, Protocol

from grader.feedback import MISSING
from grader.report import PartResult
from grader.rubric import Part
from grader.submission import Submission

PartResults = dict[str, "Future[PartResult]"]
"""One submission's results from one scorer, by qualified part id."""


class Scorer(Protocol):
    """Scores some kinds of parts of every submission in a chunk."""

    def submit(self, chunk: Sequence[Submission]) -> list[PartResults]:
        """Results for each submission, in order; parts the submission does not answer may be left out."""
        ...

    def close(self) -> None:
        """Release what the scorer holds (models stay loaded; processes and cache links go)."""
        ...


@dataclass
class RunStats:
    """Where a run's time went, for benchmarks and the end-of-run summary (scorers add their share)."""

    parse_s: float = 0.0
    encode_s: float = 0.0
    judge_s: float = 0.0
    score_s: float = 0.0
    code_wait_s: float = 0.0
    report_s: float = 0.0
    n_students: int = 0
    n_parts_scored: int = 0
    n_parts_from_cache: int = 0


def done(result: PartResult) -> Future[PartResult]:
    """A Future that already holds its result (a cached, missing or quickly scored part)."""
    future: Future[PartResult] = Future()
    future.set_result(result)
    return future


def missing_result(part_id: str, part: Part) -> PartResult:
    """The result of a part the submission does not answer: no points, and the feedback says so."""
    return _no_points(part_id, part, "missing", 1.0, MISSING, [])


def error_result(part_id: str, part: Part, feedback: str, reason: str) -> PartResult:
    """A part that could not be graded: no points, the student reads `feedback`, a TA the reason."""
    return _no_points(part_id, part, "error", 0.0, feedback, [reason])


def _no_points(
    part_id: str, part: Part, status: Literal["missing", "error"], confidence: float, feedback: str, warnings: list[str]
) -> PartResult:
    return PartResult(
        part_id=part_id,
        kind=part.kind,
        status=status,
        points=0.0,
        max_points=part.max_points,
        confidence=confidence,
        feedback=[feedback],
        warnings=warnings,
    )


def savable(part_id: str, part: Part, result: PartResult) -> PartResult:
    """The result itself if it can be written out; else this part fails with the reason (the rest goes on).

    A result carries text that came from a student (an exception message, a printed line); one
    that no JSON writer accepts must cost that student this part, never the batch or a resume.
    """
    try:
        result.model_dump_json()
        return result
    except Exception as exc:  # noqa: BLE001 - one unwritable result must not stop the batch
        reason = f"the result could not be saved ({type(exc).__name__}: {str(exc)[:200]!r})"
        return error_result(
            part_id, part, f"This part could not be graded automatically: {reason}; a TA will grade it.", reason
        )
