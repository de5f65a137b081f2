"""Which language an answer is written in, and whether it is an untouched placeholder.

The scorer's models read English. An answer in another language would be scored as a bag of
unknown words (once, a correct German answer came out as a "list of terms" worth 0.05), so it is
detected and held for a TA's review instead of being scored.

Detection counts function words ("the", "is", "because"; "der", "ist", "weil"): every language
writes its grammar with a small closed set of them, while technical terms (ReLU, softmax,
gradient) are shared across languages and say nothing. An answer is in another language only when
that language's function words clearly outnumber the course language's; a short answer of bare
technical terms has no grammar to count and stays in the course language. Answers in a
non-Latin script are recognised by their letters.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the a an is are was were be been being of to in on for with by from at as that this these those which "
        "who what when where why how it its they them their there we our you your he she his her and or but not "
        "no if then than so because can could will would should may might must do does did has have had into "
        "also only more most less very each all any both such".split()
    ),
    "de": frozenset(
        "der die das den dem des ein eine einen einem einer eines ist sind war waren wird werden wurde wurden "
        "und oder aber nicht kein keine keinen mit von zu zum zur bei aus auf für über unter durch weil dass "
        "wenn dann als auch nur noch sehr wir ihr sie er es ich man sich dies diese dieser dieses hat haben "
        "kann können muss müssen soll sollte wie was wo warum".split()
    ),
    "fr": frozenset(
        "le la les un une des du de est sont était être et ou mais ne pas non avec pour par dans sur sous "
        "parce que qui quoi quand où comment ce cette ces il elle ils elles nous vous on se sa son ses leur "
        "leurs peut peuvent doit aussi plus moins très au aux".split()
    ),
    "es": frozenset(
        "el la los las un una unos unas es son era ser está están y o pero no con para por en sobre porque "
        "que quien cuando donde como este esta estos estas ese esa lo le les se su sus nosotros puede pueden "
        "debe también más menos muy del al".split()
    ),
    "it": frozenset(
        "il lo la i gli le un uno una è sono era essere e o ma non con per da in su perché che chi quando "
        "dove come questo questa questi queste quello quella si suo sua loro può possono deve anche più "
        "meno molto del della dei delle al alla".split()
    ),
    "nl": frozenset(
        "de het een is zijn was waren wordt worden en of maar niet geen met van voor door in op bij uit "
        "omdat dat die dit deze wanneer waar hoe wat wij we jij je hij zij ze ook meer minder zeer kan "
        "kunnen moet moeten".split()
    ),
    "pt": frozenset(
        "o a os as um uma uns umas é são era ser está estão e ou mas não com para por em sobre porque que "
        "quem quando onde como este esta estes estas esse essa se seu sua seus suas pode podem deve também "
        "mais menos muito do da dos das ao".split()
    ),
}
NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "nl": "Dutch",
    "pt": "Portuguese",
}
MIN_FUNCTION_WORDS = 3
"""Fewer function words than this (of any language) decide nothing: the answer stays in the course language."""

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_PLACEHOLDERS = re.compile(
    r"^\s*(?:#+\s*)?(?:\*\*|__|\*|_)?\s*(?:your answer here|your answer|type your answer here|write your answer here|"
    r"answer here|enter your answer here|double[- ]click (?:here )?to edit|todo|tbd|to do|insert answer here|"
    r"\.\.\.|…|n/?a|none|-+)\s*[.:!]?\s*(?:\*\*|__|\*|_)?\s*$",
    re.I,
)
_RAISE_PLACEHOLDER = re.compile(r"^\s*raise\s+NotImplementedError\(\s*\)\s*$")


_EDGE_PUNCTUATION = ".,;:!?\"'()[]{}«»“”‘’"


def _prose_words(text: str) -> list[str]:
    """Words of the prose: math and code tokens (y_hat, W_ij, x=1, dL/dW) and single letters say nothing
    about the language ("y" is Spanish for "and", "hat" German for "has")."""
    out = []
    for token in text.split():
        token = token.strip(_EDGE_PUNCTUATION)
        if len(token) >= 2 and _WORD.fullmatch(token) and not any(c in token for c in "_^=/\\"):
            out.append(token)
    return out


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    share: float
    """Share of the answer's function words that belong to this language."""


def strip_placeholders(text: str) -> str:
    """The answer without the lines a notebook or an LMS put there for the student to replace.

    "YOUR ANSWER HERE" and its kin are not the student's words: a line holding only such a
    marker is removed, so an untouched answer cell becomes empty (no answer), and a cell whose
    marker the student left above their answer keeps just the answer.
    """
    lines = [line for line in text.splitlines() if not (_PLACEHOLDERS.match(line) or _RAISE_PLACEHOLDER.match(line))]
    return "\n".join(lines).strip()


def _non_latin_script(text: str) -> str | None:
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 12:
        return None
    counts: dict[str, int] = {}
    for c in letters:
        name = unicodedata.name(c, "")
        script = name.split(" ")[0] if name else ""
        if script and script != "LATIN":
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None
    script, n = max(counts.items(), key=lambda kv: kv[1])
    return script.title() if n / len(letters) > 0.5 else None


@lru_cache(maxsize=1 << 14)
def detect(text: str, expected: str = "en") -> Language | None:
    """The language the answer is written in, when it is clearly not `expected`; else None.

    None means: written in the expected language, or too short or too technical to tell.
    """
    script = _non_latin_script(text)
    if script is not None:
        return Language(code=script.lower(), name=f"a language in {script} script", share=1.0)
    words = [w.lower() for w in _prose_words(text)]
    counts = {code: sum(1 for w in words if w in vocab) for code, vocab in FUNCTION_WORDS.items()}
    total = sum(counts.values())
    if total < MIN_FUNCTION_WORDS:
        return None
    best = max(counts, key=lambda c: (counts[c], c == expected))
    own = counts.get(expected, 0)
    # words shared by two languages ("in", "die", "de") count for both; demand a clear margin
    if best == expected or counts[best] < MIN_FUNCTION_WORDS or counts[best] < 2 * own + 2:
        return None
    return Language(code=best, name=NAMES.get(best, best), share=round(counts[best] / total, 3))
