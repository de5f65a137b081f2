"""The review queue: one part's answers, grouped by meaning and ordered least sure first.

Written answers are clustered on the whole-answer vectors the grading run computed (the
encoder's SQLite cache serves them; nothing is re-encoded when the cache is the run's):
average-linkage agglomerative clustering on cosine distance, cut at `distance`, so a group
is answers that say much the same thing and a TA can grade it at once. Code answers are
grouped by what running them showed (the outcome and which cases passed). Groups are ordered
by their least confident member, members by confidence, and a stale TA decision (the answer
changed since) comes first of all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from grader.report import PartResult, StudentReport
from grader.written import Encoder, split_sentences, whole_text

DISTANCE = 0.25
"""Cosine distance at which the clustering is cut: members of a group are on average this close or closer."""


class QueueItem(BaseModel):
    """One student's answer to one part, as the review queue shows it."""

    student_id: str
    part: PartResult
    flags: list[str] = Field(default_factory=list)

    @property
    def sort_key(self) -> tuple:
        review = self.part.review
        state = 0 if review is not None and review.status == "stale" else 2 if review is not None else 1
        return state, self.part.confidence, self.student_id


class AnswerGroup(BaseModel):
    """Answers to one part that say much the same thing (or, for code, ran the same way)."""

    part_id: str
    number: int
    label: str = Field(description="The answer nearest the group's centre, shortened (or the code outcome).")
    items: list[QueueItem]

    @property
    def pending(self) -> int:
        return sum(i.part.review is None or i.part.review.status == "stale" for i in self.items)


def flags_of(part: PartResult) -> list[str]:
    """Everything a TA should notice about an answer, in a few words each."""
    flags: list[str] = []
    if part.status != "graded":
        flags.append(part.status)
    for kp in part.key_points:
        flags += [f"{f}: {kp.label}" for f in kp.flags]
    flags += [f"misconception: {m.label}" for m in part.misconceptions]
    if part.language:
        flags.append(f"other language: {part.language}")
    if part.code is not None and part.code.outcome and part.code.outcome != "passed":
        flags.append(f"code: {part.code.outcome}")
    if part.review is not None and part.review.status == "stale":
        flags.append("changed since the TA's review")
    return list(dict.fromkeys(flags))


def queue(
    reports: Sequence[StudentReport], part_id: str | None = None, below: float | None = None, pending_only: bool = True
) -> list[QueueItem]:
    """Answers waiting for a TA (all answers with pending_only=False), least sure first."""
    items = []
    for r in reports:
        for p in r.parts:
            if part_id is not None and p.part_id != part_id:
                continue
            if pending_only and p.review is not None and p.review.status != "stale":
                continue
            if below is not None and p.confidence >= below:
                continue
            items.append(QueueItem(student_id=r.student_id, part=p, flags=flags_of(p)))
    return sorted(items, key=lambda i: i.sort_key)


def answer_vectors(texts: Sequence[str], encoder: Encoder) -> np.ndarray:
    """Whole-answer vectors, as the scorer embeds them (the run's cache holds them)."""
    return encoder.encode([whole_text(split_sentences(t)) or " " for t in texts])


def _short(text: str, limit: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def cluster(vectors: np.ndarray, distance: float = DISTANCE) -> list[int]:
    """Cluster labels (0-based) for unit vectors; one answer is its own group."""
    if len(vectors) < 2:
        return [0] * len(vectors)
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(vectors.astype(np.float64), method="average", metric="cosine")
    return [int(c) - 1 for c in fcluster(z, t=distance, criterion="distance")]


def group_part(items: Sequence[QueueItem], encoder: Encoder | None, distance: float = DISTANCE) -> list[AnswerGroup]:
    """One part's answers in groups, least confident group first."""
    if not items:
        return []
    part_id = items[0].part.part_id
    buckets: dict[str, list[QueueItem]] = defaultdict(list)
    labels: dict[str, str] = {}
    answered = [i for i in items if i.part.answer and i.part.kind == "written"] if encoder is not None else []
    clustered = {id(i) for i in answered}
    if answered and encoder is not None:  # answered is empty without an encoder
        vectors = answer_vectors([i.part.answer or "" for i in answered], encoder)
        ids = cluster(vectors, distance)
        for c in set(ids):
            members = [k for k, cid in enumerate(ids) if cid == c]
            centre = vectors[members].mean(axis=0)
            medoid = members[int(np.argmax(vectors[members] @ centre))]
            labels[f"w{c}"] = _short(answered[medoid].part.answer or "")
            buckets[f"w{c}"] = [answered[k] for k in members]
    for item in items:
        if id(item) in clustered:
            continue
        key, label = _other_group(item.part)
        buckets[key].append(item)
        labels[key] = label
    groups = [sorted(members, key=lambda i: i.sort_key) for members in buckets.values()]
    order = sorted(range(len(groups)), key=lambda g: groups[g][0].sort_key)
    keys = list(buckets)
    return [
        AnswerGroup(part_id=part_id, number=n, label=labels[keys[g]], items=groups[g]) for n, g in enumerate(order, 1)
    ]


def _other_group(part: PartResult) -> tuple[str, str]:
    """Answers that are not clustered by meaning: code by how it ran, the rest by status."""
    if part.status == "missing":
        return "missing", "no answer"
    if part.code is not None:
        passed = [c.name for c in part.code.cases if c.passed]
        outcome = part.code.outcome or part.status
        detail = f" ({', '.join(passed)} passed)" if passed and outcome != "passed" else ""
        return f"code:{outcome}:{','.join(passed)}", f"code {outcome}{detail}"
    if part.kind == "code":
        return f"code:{part.status}", f"code not run ({part.status})"
    return f"text:{part.status}", part.status
