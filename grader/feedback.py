"""Feedback a student can act on, built from the scorer's evidence.

Key points are named by their rubric `label` and missed ones get the rubric's
`hint`; the reference answer and the key-point statements are never printed,
so a student self-checking before the deadline learns what to think about, not
what to copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grader.report import KeyPointResult, MisconceptionResult
from grader.rubric import Part

if TYPE_CHECKING:
    from grader.written import Assessment  # only a type: the room imports this module

MISSING = "No answer was found for this part."

_FLAG_TEXT = {
    "keyword_list": "{label} appears only as a listed term; say what it does and why",
    "copies_question": "restating the question earns no credit for {label}",
    "off_topic": "the sentence closest to {label} answers a different question",
}


def _quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return f"\u201c{text}\u201d"


def _join(labels: list[str]) -> str:
    return "; ".join(labels)


def written_feedback(part: Part, assessment: Assessment) -> list[str]:
    """Lines in the order a student should read them: what worked, what is missing, what is wrong."""
    if assessment.n_sentences == 0:
        return ["The answer has no sentences to grade."]
    if assessment.held_for_review:
        return [f"A TA will grade this answer: {assessment.held_for_review}."]
    hints = {kp.id: kp.hint for kp in part.key_points}
    explanations = {m.id: m.explanation for m in part.misconceptions}
    lines: list[str] = []
    matched = [kp for kp in assessment.key_points if kp.matched]
    partial = [kp for kp in assessment.key_points if not kp.matched and kp.points > 0]
    missed = [kp for kp in assessment.key_points if kp.points == 0]
    if matched:
        lines.append(f"You explained: {_join([kp.label for kp in matched])}.")
    for kp in matched:
        if "hedged" in kp.flags and kp.evidence:
            lines.append(
                f"Re-read {_quote(kp.evidence)}: it may be read as saying the opposite about {kp.label}; "
                "make your position unambiguous."
            )
    for kp in partial:
        lines.append(f"Partly addressed: {kp.label}. Make the claim explicit and say why it holds.")
    for kp in missed:
        lines.append(_missed_line(kp, hints.get(kp.id)))
    for mis in assessment.misconceptions:
        lines.append(_misconception_line(mis, explanations.get(mis.id)))
    if assessment.off_topic_question:
        lines.append(
            f"Much of this answer reads like an answer to {assessment.off_topic_question}; re-read what this part asks."
        )
    if "padding" in assessment.flags:
        lines.append("Much of the answer does not address this part; a focused answer scores better.")
    return lines


def _missed_line(kp: KeyPointResult, hint: str | None) -> str:
    if "contradicts" in kp.flags and kp.evidence:
        line = f"Check this claim: {_quote(kp.evidence)} says the opposite of what is expected about {kp.label}."
    elif "hedged" in kp.flags and kp.evidence:
        line = f"You state {kp.label}, but also {_quote(kp.evidence)}, which says the opposite; commit to one."
    else:
        line = f"Not addressed: {kp.label}."
    if kp.flags and not {"contradicts", "hedged"} & set(kp.flags):
        line += " (" + "; ".join(_FLAG_TEXT[f].format(label=kp.label) for f in kp.flags if f in _FLAG_TEXT) + ".)"
    if hint:
        line += f" Hint: {hint}"
    return line


def _misconception_line(mis: MisconceptionResult, explanation: str | None) -> str:
    line = f"Check this claim: {_quote(mis.evidence)} ({mis.label}, -{mis.penalty:g} points)."
    if explanation:
        line += f" {explanation}"
    return line
