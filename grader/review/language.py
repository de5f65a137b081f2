"""Which language an answer is written in, to flag answers not in the rubric's language.

The scorer's encoder is English-only: an answer in another language earns little and
says nothing about what the student knows, so a TA should read it. py3langid (langid.py's
model, bundled, deterministic) classifies the prose once code, math and markup are removed.
"""

from __future__ import annotations

import re
from functools import lru_cache

from grader.report import StudentReport

MIN_WORDS = 6
"""Shorter prose is too little to tell a language by (and short technical English often misreads)."""
MIN_PROBABILITY = 0.95

_CODE = re.compile(r"```.*?(```|$)|`[^`]*`", re.S)
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)", re.S)
_WORD = re.compile(r"[^\W\d_]{2,}")


@lru_cache(maxsize=1)
def _identifier():  # noqa: ANN202 - loaded once, on first use
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def prose(text: str) -> str:
    """The answer without code, math and markup: what a language can be read from."""
    return " ".join(_WORD.findall(_MATH.sub(" ", _CODE.sub(" ", text))))


@lru_cache(maxsize=50_000)
def detect(text: str) -> tuple[str, float] | None:
    """(ISO 639-1 code, probability) of the text's prose, or None when there is too little of it."""
    words = prose(text)
    if len(words.split()) < MIN_WORDS:
        return None
    lang, prob = _identifier().classify(words)
    return str(lang), float(prob)


def rubric_language(texts: list[str]) -> str:
    """The language the rubric is written in (its reference answers), English when unclear."""
    found = detect(" ".join(texts))
    return found[0] if found and found[1] >= MIN_PROBABILITY else "en"


def other_language(text: str | None, expected: str) -> str | None:
    """The answer's language when it is clearly not the expected one, else None."""
    found = detect(text or "")
    if found is None:
        return None
    lang, prob = found
    return lang if lang != expected and prob >= MIN_PROBABILITY else None


def annotate_language(report: StudentReport, expected: str) -> StudentReport:
    """Mark each written part whose answer is in another language (PartResult.language)."""
    if report.status != "graded":
        return report
    parts = [
        p.model_copy(update={"language": other_language(p.answer, expected) if p.kind == "written" else None})
        for p in report.parts
    ]
    return report.model_copy(update={"parts": parts})
