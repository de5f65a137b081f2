"""A TA's decisions, kept in SQLite beside the output and applied to every report a run writes.

OUT/overrides.sqlite holds one decision per (student, part): the points, the comment, and
the hash and text of the answer the TA read. `grader grade` applies them on every run,
`--fresh` and rubric edits included, because they live outside the reports it rewrites. A
decision whose answer hash no longer matches the graded answer is never applied and never
dropped: the part keeps the grader's points and is marked stale, for the TA to look at again.
Every decision is also appended to a log, so nothing a TA did is lost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from grader.report import ClassSummary, PartResult, PartReview, StudentReport

STORE_NAME = "overrides.sqlite"

Action = Literal["accept", "set"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    student_id TEXT NOT NULL,
    part_id TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (student_id, part_id)
);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id TEXT NOT NULL,
    part_id TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS regrades (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    value TEXT NOT NULL
);
"""


class Override(BaseModel):
    """One TA decision on one student's part."""

    student_id: str
    part_id: str
    action: Action = Field(description="accept: the grader's points confirmed; set: the TA's own points.")
    points: float = Field(ge=0)
    grader_points: float = Field(description="What the grader gave when the TA decided.")
    comment: str | None = None
    answer_sha256: str = Field(description="Hash of the answer the TA read (PartResult.answer_sha256).")
    answer: str = Field(default="", description="That answer's text: it becomes an exemplar for the part.")
    reviewed_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


class OverrideError(ValueError):
    """A decision that cannot be recorded (unknown student or part, points out of range); says why."""


class OverrideStore:
    """OUT/overrides.sqlite. One short-lived connection per call: safe from any thread of a web server."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / STORE_NAME

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection | None]:
        """For reading: None while there is no store yet (nothing is created)."""
        if not self.path.exists():
            yield None
            return
        with self._write_db() as db:
            yield db

    @contextmanager
    def _write_db(self) -> Iterator[sqlite3.Connection]:
        """The store, created on first use; one transaction."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.executescript(SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def all(self) -> list[Override]:
        with self._db() as db:
            if db is None:
                return []
            rows = db.execute("SELECT value FROM decisions ORDER BY student_id, part_id").fetchall()
        return [Override.model_validate_json(v) for (v,) in rows]

    def by_student(self) -> dict[str, dict[str, Override]]:
        out: dict[str, dict[str, Override]] = {}
        for o in self.all():
            out.setdefault(o.student_id, {})[o.part_id] = o
        return out

    def put(self, overrides: Iterable[Override]) -> None:
        """Record decisions (replacing earlier ones for the same student and part), in one transaction."""
        rows = [(o.student_id, o.part_id, o.model_dump_json()) for o in overrides]
        with self._write_db() as db:
            db.executemany("INSERT OR REPLACE INTO decisions VALUES (?, ?, ?)", rows)
            db.executemany("INSERT INTO log (student_id, part_id, value) VALUES (?, ?, ?)", rows)

    def remove(self, student_id: str, part_id: str) -> None:
        with self._write_db() as db:
            db.execute("DELETE FROM decisions WHERE student_id = ? AND part_id = ?", (student_id, part_id))
            db.execute("INSERT INTO log (student_id, part_id, value) VALUES (?, ?, 'removed')", (student_id, part_id))

    def log(self) -> list[tuple[str, str, str]]:
        with self._db() as db:
            return (
                [] if db is None else db.execute("SELECT student_id, part_id, value FROM log ORDER BY seq").fetchall()
            )

    def record_regrade(self, value: str) -> None:
        with self._write_db() as db:
            db.execute("INSERT INTO regrades (value) VALUES (?)", (value,))

    def last_regrade(self) -> str | None:
        with self._db() as db:
            if db is None:
                return None
            row = db.execute("SELECT value FROM regrades ORDER BY seq DESC LIMIT 1").fetchone()
        return row[0] if row else None


def decide(
    part: PartResult, student_id: str, action: Action, points: float | None = None, comment: str | None = None
) -> Override:
    """A decision on a graded part as it stands in the report: accept its points or set new ones."""
    if part.answer_sha256 is None:
        raise OverrideError(f"{student_id} {part.part_id}: there is no answer to review (status {part.status})")
    grader = grader_points(part)
    value = grader if action == "accept" else points
    if value is None:
        raise OverrideError(f"{student_id} {part.part_id}: points are required")
    if not 0 <= value <= part.max_points:
        raise OverrideError(
            f"{student_id} {part.part_id}: points must be between 0 and {part.max_points:g} (got {value:g})"
        )
    comment = (comment or "").strip() or None
    return Override(
        student_id=student_id,
        part_id=part.part_id,
        action=action,
        points=round(float(value), 2),
        grader_points=grader,
        comment=comment,
        answer_sha256=part.answer_sha256,
        answer=part.answer or "",
    )


def grader_points(part: PartResult) -> float:
    """The grader's own points for a part, whatever a TA decided."""
    return part.review.grader_points if part.review is not None else part.points


def without_review(part: PartResult) -> PartResult:
    """The part as the grader left it (a report written earlier may carry a TA's decision)."""
    if part.review is None:
        return part
    stale_note = _stale_warning(part.review)
    warnings = [w for w in part.warnings if w != stale_note]
    return part.model_copy(update={"points": part.review.grader_points, "review": None, "warnings": warnings})


def _stale_warning(review: PartReview) -> str:
    return (
        f"a TA gave {review.points:g} points to an earlier version of this answer; the answer changed, "
        "so the grader's points stand until a TA reviews it again"
    )


def apply_decision(part: PartResult, decision: Override | None) -> PartResult:
    """The part with a TA's decision applied, or marked stale when the answer is not the one the TA read."""
    part = without_review(part)
    if decision is None:
        return part
    if part.answer_sha256 == decision.answer_sha256:
        review = PartReview(
            status="accepted" if decision.action == "accept" else "overridden",
            points=decision.points,
            grader_points=part.points,
            comment=decision.comment,
            reviewed_at=decision.reviewed_at,
            answer_sha256=decision.answer_sha256,
        )
        return part.model_copy(update={"points": decision.points, "review": review})
    review = PartReview(
        status="stale",
        points=decision.points,
        grader_points=part.points,
        comment=decision.comment,
        reviewed_at=decision.reviewed_at,
        answer_sha256=decision.answer_sha256,
    )
    return part.model_copy(update={"review": review, "warnings": [*part.warnings, _stale_warning(review)]})


def apply_overrides(report: StudentReport, decisions: dict[str, Override]) -> StudentReport:
    """A report with the TA's decisions on its parts applied, totals recomputed. Idempotent."""
    if report.status != "graded":
        note = _unapplied_note(decisions)
        warnings = [w for w in report.warnings if not w.startswith(_UNAPPLIED)] + ([note] if note else [])
        return report.model_copy(update={"warnings": warnings})
    parts = [apply_decision(p, decisions.get(p.part_id)) for p in report.parts]
    total = round(sum(p.points for p in parts), 2)
    percent = round(100 * total / report.max_total, 2) if report.max_total else 0.0
    return report.model_copy(update={"parts": parts, "total": total, "percent": percent})


_UNAPPLIED = "TA decisions not applied"


def _unapplied_note(decisions: dict[str, Override]) -> str | None:
    if not decisions:
        return None
    return f"{_UNAPPLIED} (the submission could not be graded): " + ", ".join(
        f"{pid} {d.points:g}" for pid, d in sorted(decisions.items())
    )


def review_progress(summary: ClassSummary, reports: Sequence[StudentReport]) -> ClassSummary:
    """The summary with each part's count of reviewed, overridden and stale answers."""
    parts = []
    for ps in summary.parts:
        statuses = [p.review.status for r in reports for p in r.parts if p.part_id == ps.part_id and p.review]
        parts.append(
            ps.model_copy(
                update={
                    "n_reviewed": sum(s != "stale" for s in statuses),
                    "n_overridden": sum(s == "overridden" for s in statuses),
                    "n_stale": sum(s == "stale" for s in statuses),
                }
            )
        )
    return summary.model_copy(update={"parts": parts})
