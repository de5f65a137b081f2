"""How sure is a difference between two systems? A bootstrap over questions, not answers.

Answers to one question are not independent draws: a system that misreads a question misreads
most of its answers. A split of 15 questions and 733 answers therefore moves by question (one
question of 110 answers can carry most of a difference), and an interval from resampling answers
would be far too narrow. Here whole questions are resampled, with all their answers, and the
statistic (the grader's lead over the baseline, or one run's over another) is recomputed on each
resample; the interval is the resamples' percentiles. It is seeded, so a rerun gives the same one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from grader.evaluation.metrics import pearson

RESAMPLES = 1000
LEVEL = 0.95


class Lead(BaseModel):
    """One system's lead over another on a headline metric, with its interval over questions."""

    metric: str = Field(description="accuracy (2-way data) or pearson (points).")
    difference: float | None = Field(description="The first system's metric minus the second's, on all rows.")
    low: float | None = Field(description="Lower end of the interval (None with fewer than two questions).")
    high: float | None = None
    level: float = LEVEL
    questions: int
    resamples: int = RESAMPLES

    @property
    def sure(self) -> bool:
        """The interval lies wholly above zero: the lead holds beyond what the choice of questions explains."""
        return self.low is not None and self.low > 0

    def describe(self) -> str:
        if self.difference is None:
            return f"{self.metric}: no difference measurable"
        span = (
            f" [{self.low:+.3f}, {self.high:+.3f}] ({self.level:.0%}, {self.questions} questions resampled)"
            if self.low is not None and self.high is not None
            else " (one question: no interval)"
        )
        return f"{self.metric} {self.difference:+.3f}{span}"


def question_interval(
    questions: Sequence[str],
    statistic: Callable[[np.ndarray], float | None],
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile interval of `statistic(row indices)` over resamples of whole questions (None: < 2 questions)."""
    by_q: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        by_q[q].append(i)
    groups = [np.array(v) for _, v in sorted(by_q.items())]
    if len(groups) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        picked = rng.integers(0, len(groups), len(groups))
        value = statistic(np.concatenate([groups[g] for g in picked]))
        if value is not None:
            values.append(value)
    if not values:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return round(float(low), 4), round(float(high), 4)


def lead(
    questions: Sequence[str],
    gold: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    metric: str,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Lead:
    """`first`'s lead over `second` on the same rows: 0/1 decisions for accuracy, points for pearson."""
    if metric == "accuracy":
        right_1, right_2 = (first == gold).astype(float), (second == gold).astype(float)

        def statistic(idx: np.ndarray) -> float | None:
            return float(right_1[idx].mean() - right_2[idx].mean())
    elif metric == "pearson":

        def statistic(idx: np.ndarray) -> float | None:
            a, b = pearson(first[idx], gold[idx]), pearson(second[idx], gold[idx])
            return None if a is None or b is None else a - b
    else:
        raise ValueError(f"no lead for metric {metric!r} (accuracy or pearson)")
    everything = statistic(np.arange(len(gold)))
    interval = question_interval(questions, statistic, resamples, seed=seed)
    return Lead(
        metric=metric,
        difference=None if everything is None else round(everything, 4),
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
        questions=len(set(questions)),
        resamples=resamples,
    )
