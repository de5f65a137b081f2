"""Split a written answer into the sentence units the scorer aligns with key points.

Answers arrive as Markdown with LaTeX and bullets; the encoder wants plain
sentences. Code blocks are not prose: they are dropped here (code parts are
graded by running them). Display math becomes one unit of its own, with the
LaTeX markup rewritten into words the encoder has seen (``\\frac{a}{b}`` -> ``a / b``).
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_UNIT_WORDS = 60
"""Longer sentences are cut at ';' or ':' so one run-on sentence cannot align with every key point."""

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)
_ABBREVIATIONS = (
    "e.g.",
    "i.e.",
    "etc.",
    "vs.",
    "cf.",
    "fig.",
    "eq.",
    "approx.",
    "resp.",
    "al.",
    "a.k.a.",
    "w.r.t.",
    "no.",
)
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,2}[.)])(?:\s+|$)")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9$\\]|[a-z][(_^])")
_GREEK = (
    "alpha|beta|gamma|delta|epsilon|zeta|eta|theta|iota|kappa|lambda|mu|nu|xi|pi|rho|sigma|tau|upsilon|phi|chi|"
    "psi|omega|Gamma|Delta|Theta|Lambda|Xi|Pi|Sigma|Phi|Psi|Omega"
)
"""Greek letters (and their \\var forms) keep their names: "\\kappa" is the condition number, not markup."""
_FUNCTIONS = "log|ln|exp|max|min|argmax|argmin|sin|cos|tanh|det|lim|sup|inf|softmax"
_LATEX_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\\(?:begin|end)\{[a-z*]+\}"), " "),
    (re.compile(r"\\text(?:rm|bf|it)?\{([^{}]*)\}"), r" \1 "),
    (re.compile(r"\\(?:mathbb|mathcal|mathbf|mathrm|operatorname)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}"), r"(\1) / (\2)"),
    (re.compile(r"\\hat\{([^{}]*)\}"), r"\1_hat"),
    (re.compile(r"\\(?:tilde|bar)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\partial"), "d"),
    (re.compile(r"\\nabla"), "grad "),
    (re.compile(r"\\cdot|\\times|\\odot"), "*"),
    (re.compile(r"\\(?:sim|propto)(?![a-zA-Z])"), "~"),
    (re.compile(r"\\(?:ldots|cdots|dots)(?![a-zA-Z])"), "..."),
    (re.compile(r"\\top(?![a-zA-Z])"), "T"),
    (re.compile(r"\\int(?![a-zA-Z])"), "integral "),
    (re.compile(r"\\forall(?![a-zA-Z])"), "for all "),
    (re.compile(r"\\sum"), "sum "),
    (re.compile(r"\\prod"), "product "),
    (re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)"), ""),
    (re.compile(r"\\parallel|\\\|"), "||"),
    (re.compile(r"\\(?:leq|le)(?![a-zA-Z])"), "<="),
    (re.compile(r"\\(?:geq|ge)(?![a-zA-Z])"), ">="),
    (re.compile(r"\\approx"), "~"),
    (re.compile(r"\\infty"), "infinity"),
    (re.compile(r"\\sqrt\{([^{}]*)\}"), r"sqrt(\1)"),
    (re.compile(r"\\(?:to|rightarrow|Rightarrow|mapsto)(?![a-zA-Z])"), "->"),
    (re.compile(r"\\(?:neq|ne)(?![a-zA-Z])"), "!="),
    (re.compile(r"\\in(?![a-zA-Z])"), " in "),
    (re.compile(r"\\(?:var)?(" + _GREEK + r")(?![a-zA-Z])"), r"\1"),
    (re.compile(r"\\(" + _FUNCTIONS + r")(?![a-zA-Z])"), r"\1"),
    (re.compile(r"\\\\|&"), " "),
]
_LATEX_LEFTOVERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\\[a-zA-Z]+"), " "),
    (re.compile(r"[{}]"), ""),
]


def latex_to_words(math: str) -> str:
    """Rewrite LaTeX markup into plain tokens an encoder trained on prose can compare."""
    out = math
    for _ in range(4):  # nested \frac{\partial L}{\partial \hat{y}} needs more than one pass
        for pattern, repl in _LATEX_REWRITES:
            out = pattern.sub(repl, out)
    for pattern, repl in _LATEX_LEFTOVERS:
        out = pattern.sub(repl, out)
    return re.sub(r"\s+", " ", out).strip()


def _inline_math(text: str) -> str:
    return re.sub(r"\$([^$\n]{1,400})\$", lambda m: latex_to_words(m.group(1)), text)


def _protect_abbreviations(text: str) -> str:
    for abbr in _ABBREVIATIONS:
        text = re.sub(re.escape(abbr), abbr.replace(".", "\u2024"), text, flags=re.I)
    # decimals and versions (0.25, 3.5e-4) are not sentence ends
    return re.sub(r"(?<=\d)\.(?=\d)", "\u2024", text)


def _restore(text: str) -> str:
    return text.replace("\u2024", ".")


def _split_long(sentence: str) -> list[str]:
    if len(sentence.split()) <= MAX_UNIT_WORDS:
        return [sentence]
    parts = [p.strip() for p in re.split(r"(?<=[;:])\s+", sentence) if p.strip()]
    out: list[str] = []
    for part in parts:
        words = part.split()
        while len(words) > MAX_UNIT_WORDS:
            out.append(" ".join(words[:MAX_UNIT_WORDS]))
            words = words[MAX_UNIT_WORDS:]
        if words:
            out.append(" ".join(words))
    return out


def _clean(unit: str) -> str:
    unit = re.sub(r"\*\*|__|`", "", unit)  # markdown emphasis and inline code ticks
    unit = re.sub(r"^#+\s*", "", unit)
    return re.sub(r"\s+", " ", unit).strip(" -\t")


def split_sentences(text: str) -> list[str]:
    """Sentence units of an answer, in order: prose sentences, bullet items and display equations.

    Units with no letters or digits (a stray "-", a page number) are dropped.
    """
    return list(_split_cached(text))


@lru_cache(maxsize=1 << 14)
def _split_cached(text: str) -> tuple[str, ...]:
    text = _FENCE.sub("\n\n", text.replace("\f", "\n"))
    units: list[str] = []
    pos = 0
    for match in _DISPLAY_MATH.finditer(text):
        units.extend(_prose_units(text[pos : match.start()]))
        for line in re.split(r"\\\\", match.group(1) or match.group(2) or ""):
            math = latex_to_words(line)
            if math:
                units.append(math)
        pos = match.end()
    units.extend(_prose_units(text[pos:]))
    return tuple(u for u in (_clean(u) for u in units) if re.search(r"[A-Za-z0-9]", u))


def _prose_units(text: str) -> list[str]:
    """Blocks are paragraphs or bullet items; lines of a wrapped paragraph (or a page break) are joined."""
    blocks: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if _BULLET.match(line) or not line.strip():
            if current:
                blocks.append(" ".join(current))
                current = []
            line = _BULLET.sub("", line)
        if line.strip():
            current.append(line.strip())
    if current:
        blocks.append(" ".join(current))
    blocks = _join_broken(blocks)
    units: list[str] = []
    for block in blocks:
        block = _protect_abbreviations(_inline_math(block))
        for sentence in _SENTENCE_END.split(block):
            units.extend(_split_long(_restore(sentence.strip())))
    return units


def _join_broken(blocks: list[str]) -> list[str]:
    """A block that ends mid-sentence and a next one starting lowercase are one sentence split by a page break."""
    out: list[str] = []
    for block in blocks:
        if out and not re.search(r"[.!?:;)\]]\s*$", out[-1]) and re.match(r"^[a-z]", block):
            out[-1] = f"{out[-1]} {block}"
        else:
            out.append(block)
    return out


def sentence_windows(sentences: list[str], size: int = 2) -> list[str]:
    """Consecutive pairs: a key point stated across two sentences still aligns with one unit."""
    if size < 2 or len(sentences) < 2:
        return []
    return [" ".join(sentences[i : i + size]) for i in range(len(sentences) - size + 1)]


_CLAUSE = re.compile(
    r";\s*|,\s*(?:and|but|so|while|whereas|because|since|hence|thus)\s+|\s+(?:but|whereas|because|since)\s+"
    r"|\s+and\s+(?=(?:[\w'-]+\s+){0,3}(?:is|are|was|were|does|do|did|has|have|had|can|cannot|will|would|should|must)\b)",
    re.I,
)
MIN_CLAUSE_WORDS = 3


def sentence_clauses(sentence: str) -> list[str]:
    """The clauses of a compound sentence ("X does not A, and its B is not C" -> two claims), when it has
    two or more of at least three words; else nothing. A cross-encoder reads one claim far more reliably
    than several joined: a denial in one clause is not drowned by the words of the next."""
    parts = [p.strip(" ,.") for p in _CLAUSE.split(sentence)]
    parts = [p for p in parts if len(p.split()) >= MIN_CLAUSE_WORDS]
    return parts if len(parts) >= 2 else []
