"""Pairs of near-identical answers to one part from different students: possible collusion.

Only a person can judge a pair, so this only finds them. Similar meaning is expected (correct
answers say the same things); near-identical wording over a non-trivial answer is not. Each
answer becomes a set of word 5-gram shingles, shingles that many answers share (the question
restated, a formula everyone writes) are ignored, candidates come from an inverted index of
the rest (no all-pairs loop), and a pair is reported when the Jaccard overlap of its shingles
is at least `threshold`. Code answers are compared the same way, comments and blank lines
aside.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

from pydantic import BaseModel, Field

from grader.report import StudentReport

SHINGLE = 5
MIN_WORDS = 25
"""Shorter answers can match by chance (or because there is one way to say it): not reported."""
COMMON_SHARE = 0.3
"""A shingle in more than this share of a part's answers is the question's, not a student's."""
THRESHOLD = 0.6

_TOKEN = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")
_COMMENT = re.compile(r"#[^\n]*")


class CollusionPair(BaseModel):
    part_id: str
    students: tuple[str, str]
    overlap: float = Field(description="Jaccard overlap of the two answers' word 5-grams (1 = identical).")
    words: int = Field(description="Length of the shorter answer, in tokens.")


def tokens(text: str, code: bool) -> list[str]:
    if code:
        text = _COMMENT.sub(" ", text)
    return [t.lower() for t in _TOKEN.findall(text)]


def shingles(words: Sequence[str]) -> set[int]:
    return {hash(tuple(words[i : i + SHINGLE])) for i in range(len(words) - SHINGLE + 1)}


def similar_pairs(
    answers: dict[str, str],
    part_id: str,
    *,
    code: bool = False,
    threshold: float = THRESHOLD,
    min_words: int = MIN_WORDS,
) -> list[CollusionPair]:
    """Near-identical pairs among one part's answers (student id -> text), most similar first."""
    words = {sid: tokens(text, code) for sid, text in answers.items()}
    sets = {sid: shingles(w) for sid, w in words.items() if len(w) >= min_words}
    if len(sets) < 2:
        return []
    index: dict[int, list[str]] = defaultdict(list)
    for sid, sh in sets.items():
        for s in sh:
            index[s].append(sid)
    limit = max(2, int(COMMON_SHARE * len(sets)))
    rare = {sid: {s for s in sh if len(index[s]) <= limit} for sid, sh in sets.items()}
    shared: dict[tuple[str, str], int] = defaultdict(int)
    for owners in index.values():
        if 2 <= len(owners) <= limit:
            for a, b in combinations(sorted(owners), 2):
                shared[(a, b)] += 1
    pairs = []
    for (a, b), n in shared.items():
        union = len(rare[a] | rare[b])
        overlap = n / union if union else 0.0
        if overlap >= threshold:
            pairs.append(
                CollusionPair(
                    part_id=part_id,
                    students=(a, b),
                    overlap=round(overlap, 3),
                    words=min(len(words[a]), len(words[b])),
                )
            )
    return sorted(pairs, key=lambda p: (-p.overlap, p.students))


def class_pairs(reports: Sequence[StudentReport], threshold: float = THRESHOLD) -> list[CollusionPair]:
    """Possible collusion in a class: near-identical answers, part by part."""
    by_part: dict[str, dict[str, str]] = defaultdict(dict)
    kinds: dict[str, bool] = {}
    for r in reports:
        for p in r.parts:
            if p.answer:
                by_part[p.part_id][r.student_id] = p.answer
                kinds[p.part_id] = p.kind == "code"
    out: list[CollusionPair] = []
    for part_id, answers in by_part.items():
        out.extend(similar_pairs(answers, part_id, code=kinds[part_id], threshold=threshold))
    return out
