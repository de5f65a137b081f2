"""How likely a written grade is right: a logistic model over the scorer's own signals.

The review queue sorts by confidence, so confidence must rank the grades a TA would change
first. A hand-made product of certainties ranked them poorly where the judge meets an unseen
domain. This model reads the same signals (how decisive the judge was on each key point, whether
its reading of the whole answer agrees with the grade, how far the bi-encoder's similarity is
from it, how far up the scale the grade sits, what the nearest graded exemplars say) and gives
the probability that a human grade is within a quarter of the maximum of ours. That probability
is blended with the hand-made confidence (the judge's certainty, lowered half-way up the scale):
the model was fitted on three datasets at once and trades one's ranking for another's, the blend
keeps what each ranks well (the share was chosen on held-out questions, see the fit script).

It was fitted on answers the judge never saw (the held-out fifth of the public datasets' train
questions, see training/fit_confidence.py); the weights and how they were made ship in
grader/models/grader-confidence-v1/. It applies to grades the judge read: without a judge the
bi-encoder's certainty, lowered half-way up the scale, stays the confidence.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from grader.report import PartResult
    from grader.written.scoring import Assessment

SIGNALS = (
    "certainty",
    "midrange",
    "grade",
    "whole_disagrees",
    "holistic",
    "holistic_disagrees",
    "key_point_certainty",
    "agreement",
    "flags",
    "gate",
    "neighbours_disagree",
)
"""The logistic model's inputs, each in [0, 1] except `flags` (a count); see `signals`."""

HAND_MADE = "hand_made"
"""The confidence without the model (ScoringConfig.midrange_doubt), the other side of the blend."""

SHIPPED = "grader-confidence-v1"


class ConfidenceModel(BaseModel):
    """blend * sigmoid(intercept + sum of weight * signal) + (1 - blend) * hand-made confidence.

    The sigmoid is P(right), `right` meaning within 25% of the maximum of a human grade.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Which fit this is (the directory under grader/models/ it ships in).")
    intercept: float
    weights: dict[str, float] = Field(description="Signal name (see grader.written.confidence.SIGNALS) -> weight.")
    blend: float = Field(default=1.0, ge=0, le=1, description="The model's share; the rest is the hand-made one.")

    def probability(self, signals: dict[str, float]) -> float:
        """The logistic model's probability that the grade is right, given the signals of one answer."""
        unknown = set(self.weights) - set(signals)
        if unknown:
            raise ValueError(f"confidence model {self.name}: unknown signal(s) {sorted(unknown)}")
        z = self.intercept + sum(w * signals[k] for k, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-z))

    def confidence(self, signals: dict[str, float]) -> float:
        """The probability blended with the hand-made confidence (signals[HAND_MADE])."""
        return self.blend * self.probability(signals) + (1.0 - self.blend) * signals[HAND_MADE]


def signals(assessment: Assessment, fraction: float, hand_made: float) -> dict[str, float]:
    """What the model reads of one judged answer; `fraction` is the grade the student gets (0..1)."""
    whole = assessment.whole_entailment if assessment.whole_entailment is not None else fraction
    disagreement = 0.0
    if assessment.neighbours is not None:
        disagreement = abs(assessment.neighbours - assessment.raw_score) * assessment.neighbour_weight
    return {
        "certainty": assessment.confidence,
        "midrange": 4.0 * fraction * (1.0 - fraction),
        "grade": fraction,
        "whole_disagrees": abs(whole - fraction),
        "holistic": assessment.holistic,
        "holistic_disagrees": abs(assessment.holistic - fraction),
        "key_point_certainty": assessment.key_point_certainty,
        "agreement": 1.0 - abs(whole - min(1.0, assessment.raw_score)),
        "flags": float(len(assessment.flags - {"no_answer"})),
        "gate": assessment.gate,
        "neighbours_disagree": disagreement,
        HAND_MADE: hand_made,
    }


DOUBTS: dict[str, tuple[float, str]] = {
    "midrange": (0.0, "the grade is neither a clear pass nor a clear fail"),
    "whole_disagrees": (0.0, "the judge's reading of the whole answer disagrees with the grade"),
    "holistic_disagrees": (0.0, "the answer's similarity to the reference answer disagrees with the grade"),
    "certainty": (1.0, "the judge was undecided on the key points"),
    "neighbours_disagree": (0.0, "the most similar graded answers got another grade"),
}
"""Signals a TA can act on: the value that costs nothing, and what a costly value means."""

DOUBT_FLOOR = 0.5
"""A signal is a reason for doubt when it lowers the model's log-odds by at least this much."""


def doubts(model: ConfidenceModel, read: dict[str, float]) -> list[str]:
    """Why a grade is unsure, in words, most telling first: the signals that cost the most log-odds."""
    costs = []
    for name, (best, words) in DOUBTS.items():
        if name in read and name in model.weights:
            cost = model.weights[name] * (read[name] - best)
            if cost <= -DOUBT_FLOOR:
                costs.append((cost, words))
    return [words for _, words in sorted(costs)]


LOW_CONFIDENCE = 0.5
"""Below this a judged grade is more likely wrong than right: the review app and queue say why."""


def why_unsure(part: PartResult) -> list[str]:
    """Why a written grade below LOW_CONFIDENCE is unsure, in words (none for a surer one or one not judged)."""
    if part.confidence_signals is None or part.confidence >= LOW_CONFIDENCE:
        return []
    return doubts(shipped_model(), part.confidence_signals)


@cache
def shipped_model() -> ConfidenceModel:
    """The model that ships with the package (its weights; provenance sits beside them in the same file)."""
    text = (
        resources.files("grader")
        .joinpath("models")
        .joinpath(SHIPPED)
        .joinpath("confidence.json")
        .read_text(encoding="utf-8")
    )
    data = json.loads(text)
    return ConfidenceModel(name=SHIPPED, intercept=data["intercept"], weights=data["weights"], blend=data["blend"])
