"""Map a part's raw score to points using the TA-graded exemplars in its rubric.

The scorer's raw score (fraction of key-point credit, penalties applied) is on
the encoder's scale, not the TA's: a full-credit answer in a student's own words
may reach only 0.6 raw. Each exemplar gives one (raw, TA fraction) pair; with
the fixed ends (0, 0) and (1, 1) these are fitted by isotonic regression (pool
adjacent violators) and interpolated linearly, so the mapping is monotone (a
better raw score never earns fewer points) and passes through the TA's grades
as closely as monotonicity allows. The map is then applied only partly: by a
trust weight that grows with the number of exemplars and with how well the
scorer already ranks them (Kendall tau), so a few exemplars the scorer misreads
cannot flatten a part's scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field
from scipy.stats import kendalltau


class Calibration(BaseModel):
    """A monotone piecewise-linear map from raw score to fraction of max points, applied with a trust weight."""

    xs: list[float]
    ys: list[float]
    n_exemplars: int
    trust: float = Field(
        ge=0,
        le=1,
        description="How far the map moves a raw score: n/(n+2) times the rank agreement (Kendall tau, "
        "floored at 0) between the scorer's raw scores and the TA's grades on the exemplars.",
    )

    def __call__(self, raw: float) -> float:
        mapped = float(np.interp(raw, self.xs, self.ys))
        return float(np.clip(raw + self.trust * (mapped - raw), 0.0, 1.0))


def _pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) fit of y, in the order given."""
    blocks: list[list[float]] = []  # [weighted mean, weight, count]
    for yi, wi in zip(y, w):
        blocks.append([float(yi), float(wi), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks])


MIN_RAW = 0.05
"""Exemplars the scorer reads as (almost) empty cannot inform the mapping: (0, 0) is fixed."""


def fit_calibration(raw: Sequence[float], target: Sequence[float]) -> Calibration | None:
    """Fit raw scores of exemplars to the TA's fractions; None unless usable exemplars carry two grades or more.

    The map is pinned at (0, 0) and (1, 1): an answer the scorer finds nothing in
    earns nothing, and a perfect raw score earns full marks, whatever the exemplars.
    """
    pairs = [(float(r), float(t)) for r, t in zip(raw, target) if MIN_RAW <= r < 1.0]
    if len({round(t, 6) for _, t in pairs}) < 2:
        return None  # exemplars that all got one grade say nothing about the scale
    pairs.sort()
    x = np.array([p[0] for p in pairs])
    y = _pool_adjacent_violators(np.clip([p[1] for p in pairs], 0, 1), np.ones(len(pairs)))
    xs, ys = [0.0], [0.0]
    for value in np.unique(x):
        xs.append(float(value))
        ys.append(float(y[x == value].mean()))
    xs.append(1.0)
    ys.append(1.0)
    return Calibration(xs=xs, ys=ys, n_exemplars=len(pairs), trust=_trust([p[0] for p in pairs], [p[1] for p in pairs]))


def _trust(raw: Sequence[float], target: Sequence[float]) -> float:
    """Trust the exemplars only as far as the scorer already ranks them in the TA's order.

    If the scorer reads a 0-point exemplar as its best answer, a monotone map cannot fix
    that: it would flatten the part. Few exemplars are trusted less than many.
    """
    n = len(raw)
    if n < 2:
        return n / (n + 2)
    tau = kendalltau(raw, target).statistic
    agreement = 0.0 if tau is None or np.isnan(tau) else max(0.0, float(tau))
    return round(n / (n + 2) * agreement, 4)
