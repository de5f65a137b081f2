"""Agreement metrics between a system's points and the human scores (see grader.evaluation)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

Floats = Sequence[float] | np.ndarray
"""Numbers per answer: a list, or the array the evaluation builds."""
Ints = Sequence[int] | np.ndarray
"""Integer ratings or 0/1 decisions per answer: a list, or an array."""


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def pearson(x: Floats, y: Floats) -> float | None:
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return None
    from scipy.stats import pearsonr

    return _finite(pearsonr(xs, ys)[0])


def spearman(x: Floats, y: Floats) -> float | None:
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return None
    from scipy.stats import spearmanr

    return _finite(spearmanr(xs, ys)[0])


def rmse(pred: Floats, gold: Floats) -> float | None:
    p, g = np.asarray(pred, float), np.asarray(gold, float)
    return float(np.sqrt(np.mean((p - g) ** 2))) if len(p) else None


def quadratic_weighted_kappa(a: Ints, b: Ints) -> float | None:
    """Cohen's kappa with quadratic weights over the integer ratings min(a, b)..max(a, b)."""
    ra, rb = np.asarray(a, int), np.asarray(b, int)
    if len(ra) == 0:
        return None
    lo, hi = int(min(ra.min(), rb.min())), int(max(ra.max(), rb.max()))
    n = hi - lo + 1
    if n == 1:
        return 1.0  # every rating identical in both: perfect agreement
    observed = np.zeros((n, n))
    np.add.at(observed, (ra - lo, rb - lo), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(ra)
    i, j = np.indices((n, n))
    weights = (i - j) ** 2 / (n - 1) ** 2
    denominator = (weights * expected).sum()
    if denominator == 0:
        return None
    return float(1 - (weights * observed).sum() / denominator)


def round_to_step(values: Floats, step: float) -> np.ndarray:
    """Integer ratings: values rounded to the nearest multiple of `step` (halves up), in units of `step`."""
    return np.floor(np.asarray(values, float) / step + 0.5 + 1e-9).astype(int)


def accuracy(pred: Ints, gold: Ints) -> float | None:
    p, g = np.asarray(pred), np.asarray(gold)
    return float(np.mean(p == g)) if len(p) else None


def macro_f1(pred: Ints, gold: Ints) -> float | None:
    p, g = np.asarray(pred, int), np.asarray(gold, int)
    if not len(p):
        return None
    scores = []
    for c in (0, 1):
        tp = np.sum((p == c) & (g == c))
        fp = np.sum((p == c) & (g != c))
        fn = np.sum((p != c) & (g == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def fit_threshold(scores: Floats, labels: Ints) -> float:
    """The t maximising accuracy of `score > t` (ties: the middle of the best candidates)."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    values = np.unique(s)
    if len(values) == 0:
        return 0.5
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    accs = np.array([np.mean((s > t) == (y == 1)) for t in candidates])
    best = np.flatnonzero(accs >= accs.max() - 1e-12)
    return float(candidates[best[len(best) // 2]])


def fit_line(x: Floats, y: Floats) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x (slope 0 at the mean when x is constant)."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) < 2 or np.ptp(xs) == 0:
        return 0.0, float(np.mean(ys)) if len(ys) else 0.0
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(slope), float(intercept)


def mae(pred: Floats, gold: Floats) -> float | None:
    p, g = np.asarray(pred, float), np.asarray(gold, float)
    return float(np.mean(np.abs(p - g))) if len(p) else None


def auroc(scores: Floats, positives: Sequence[bool] | np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` for the positives (ties count half); None without both classes."""
    s, y = np.asarray(scores, float), np.asarray(positives, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


LARGE_ERROR = 0.25
"""An error of at least this fraction of the maximum is one a TA must find (confidence AUROC)."""


def confidence_auroc(confidence: Floats, pred: Floats, gold: Floats, maxima: Floats) -> float | None:
    """How well low confidence finds large errors: AUROC of (1 - confidence) for |pred - gold| >= 25% of max."""
    error = np.abs(np.asarray(pred, float) - np.asarray(gold, float)) / np.asarray(maxima, float)
    return auroc(1.0 - np.asarray(confidence, float), error >= LARGE_ERROR - 1e-9)


class Metrics(BaseModel):
    """Agreement of one system with the human scores on the evaluated rows."""

    pearson: float | None = None
    spearman: float | None = None
    rmse: float | None = Field(default=None, description="In the dataset's units (points).")
    mae: float | None = Field(default=None, description="Mean absolute error, in points.")
    qwk: float | None = Field(
        default=None, description="Quadratic weighted kappa on rounded points (2-way: on the decisions)."
    )
    exact: float | None = Field(
        default=None, description="Share of answers whose rounded points equal the human score (2-way: the accuracy)."
    )
    pearson_fraction: float | None = Field(
        default=None,
        description=(
            "Points data whose questions have different maxima: Pearson on points / max, which a system "
            "cannot raise by knowing each question's maximum."
        ),
    )
    accuracy: float | None = Field(default=None, description="2-way data only.")
    macro_f1: float | None = Field(default=None, description="2-way data only.")
    threshold: float | None = Field(
        default=None,
        description="2-way: fitted threshold (grader: on the fraction of points; baseline: on the cosine).",
    )
    confidence_auroc: float | None = Field(
        default=None,
        description=(
            "Grader only: AUROC of (1 - confidence) for answers off by >= 25% of the maximum (review-queue quality)."
        ),
    )


class QuestionMetrics(BaseModel):
    """One question's agreement: what a course sees per exam question."""

    question_id: str
    n: int
    exact: float | None
    mae: float | None
    qwk: float | None
