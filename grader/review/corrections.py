"""A TA's grades teach the grader: each decision on a written answer becomes an exemplar of its part.

The rubric's exemplars are what calibrates a part (grader.written.calibration: the raw-score map and
the nearest graded answers), so the decisions are appended to the parts' exemplars in memory
(the YAML is never touched) and the class is graded again: the answers nobody reviewed move
towards the TA's judgement, the reviewed ones keep the TA's points. `movement` says how many
moved and by how much.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from grader.report import StudentReport
from grader.review.overrides import Override, grader_points
from grader.rubric import Exemplar, RubricSet

MOVED = 0.01
"""A change smaller than this (points) is rounding, not a move."""


def with_corrections(rubrics: RubricSet, decisions: Iterable[Override]) -> tuple[RubricSet, int]:
    """The rubric set with every decision on a written answer added to its part's exemplars.

    Returns the set and the number of exemplars added. The set's hash covers the additions,
    so reports graded before a new decision are not reused as if nothing had changed.
    """
    by_part: dict[str, list[Exemplar]] = defaultdict(list)
    for d in sorted(decisions, key=lambda d: (d.part_id, d.student_id)):
        if d.answer.strip():
            by_part[d.part_id].append(Exemplar(answer=d.answer, points=d.points, note=f"TA review of {d.student_id}"))
    added = 0
    rubrics_out = []
    for rubric in rubrics.rubrics:
        parts = []
        for part in rubric.parts:
            extra = by_part.get(rubric.qualified(part), []) if part.kind == "written" else []
            extra = [e for e in extra if e.points <= part.max_points]
            added += len(extra)
            parts.append(part.model_copy(update={"exemplars": [*part.exemplars, *extra]}) if extra else part)
        rubrics_out.append(rubric.model_copy(update={"parts": parts}))
    if not added:
        return rubrics, 0
    digest = hashlib.sha256(rubrics.sha256.encode())
    for rubric in rubrics_out:
        digest.update(rubric.model_dump_json().encode())
    return rubrics.model_copy(update={"rubrics": rubrics_out, "sha256": digest.hexdigest()}), added


class PartMovement(BaseModel):
    part_id: str
    n_compared: int
    n_moved: int
    mean_abs_change: float = Field(description="Mean |change| in points over the answers that moved.")
    max_abs_change: float


class Movement(BaseModel):
    """How the grader's points on answers no TA decided changed between two gradings of a class."""

    n_exemplars: int = Field(default=0, description="TA decisions used as exemplars.")
    n_compared: int = 0
    n_moved: int = 0
    n_up: int = 0
    n_down: int = 0
    mean_abs_change: float = 0.0
    max_abs_change: float = 0.0
    parts: list[PartMovement] = Field(default_factory=list)

    def sentence(self) -> str:
        if not self.n_compared:
            return "No unreviewed answers to compare."
        regraded = f"Regraded with {self.n_exemplars} TA grade(s) as exemplars:"
        if not self.n_moved:
            return f"{regraded} none of {self.n_compared} unreviewed answers moved."
        return (
            f"{regraded} {self.n_moved} of {self.n_compared} unreviewed answers moved"
            f" ({self.n_up} up, {self.n_down} down), by {self.mean_abs_change:.2f} points on average, "
            f"{self.max_abs_change:.2f} at most."
        )


def movement(before: Sequence[StudentReport], after: Sequence[StudentReport], n_exemplars: int = 0) -> Movement:
    """Compare the grader's points on the answers without a TA decision, same answer text on both sides."""
    old = {(r.student_id, p.part_id): p for r in before for p in r.parts}
    changes: dict[str, list[float]] = defaultdict(list)
    for r in after:
        for p in r.parts:
            prev = old.get((r.student_id, p.part_id))
            if prev is None or p.status != "graded" or prev.answer_sha256 != p.answer_sha256:
                continue
            if (p.review is not None and p.review.status != "stale") or (
                prev.review is not None and prev.review.status != "stale"
            ):
                continue
            changes[p.part_id].append(round(grader_points(p) - grader_points(prev), 4))
    parts = [PartMovement(part_id=part_id, **_moves(deltas)) for part_id, deltas in sorted(changes.items())]
    all_deltas = [d for ds in changes.values() for d in ds]
    return Movement(
        n_exemplars=n_exemplars,
        n_up=sum(d >= MOVED for d in all_deltas),
        n_down=sum(d <= -MOVED for d in all_deltas),
        parts=parts,
        **_moves(all_deltas),
    )


def _moves(deltas: Sequence[float]) -> dict[str, Any]:
    """The fields PartMovement and Movement share: how many compared, how many moved, by how much."""
    moved = [abs(d) for d in deltas if abs(d) >= MOVED]
    return {
        "n_compared": len(deltas),
        "n_moved": len(moved),
        "mean_abs_change": round(sum(moved) / len(moved), 3) if moved else 0.0,
        "max_abs_change": round(max(moved, default=0.0), 3),
    }
