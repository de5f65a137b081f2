"""Cheap lexical checks for what sentence embeddings miss.

Embeddings of "momentum helps" and "momentum does not help" are nearly equal,
and a bag of jargon embeds close to a real explanation. These checks look at the
words themselves: negation parity on the clauses two sentences share, whether a
unit makes a claim at all, and whether it only restates the question.
"""

from __future__ import annotations

import re
from functools import lru_cache

FUNCTION_WORDS = frozenset(
    """a an the this that these those it its they them their there here we you he she i our your
    is are was were be been being am has have had do does did can could will would shall should may
    might must of to in on at by for with from into onto over under about as than then so if when
    while because since though although whereas unless until which who whom whose what where why how
    and or but nor not no yes also only just very more most less least much many each every all any
    some such both either neither other another same own too again once one two its itself
    themselves mean means meaning makes make made get gets give gives given allow allows let lets""".split()
)
"""Words that carry grammar rather than topic: an explanation has them, a keyword list does not."""

NEGATION_CUES = frozenset(
    """not no never none nothing nobody nowhere neither nor cannot cant dont doesnt didnt isnt arent
    wasnt werent wont wouldnt shouldnt couldnt hasnt havent hadnt mustnt neednt unnecessary useless
    irrelevant impossible unable fails fail failed lacks lack non""".split()
)
"""Words that flip a clause's claim (apostrophes are removed before lookup: don't -> dont). "non" is the
prefix of "non-negative" or "nonlinear" (see _FUSED_NON): as a predicate ("KL is non-negative") it denies as
"never negative" does; before a noun ("a non-zero entry") it only names a thing (see _NON_PREDICATE)."""

_FUSED_NON = re.compile(r"\bnon(?!e\b|etheless\b|sense\b|ce\b)(?=[a-z]{4,})")
"""A fused "non" prefix ("nonnegative", "nonlinear"), split off like the hyphenated one."""

_NOT_NEGATIONS = re.compile(
    r"\b(not only|not just|no matter|nothing but|no doubt|not necessarily the case that not|"
    r"nothing (?:stops|prevents|forbids|keeps|stopping|preventing))\b",
    re.I,
)
"""Phrases whose negative word asserts rather than denies ("nothing stops us from adding it" says we can)."""
_CLAUSE_BREAK = re.compile(
    r"[,;:()]|[.!?](?:\s|$)|\s[-\u2013\u2014]\s|\b(?:but|while|whereas|although|though|because|since|"
    r"so that|which|however|whereas|unlike|instead|rather than|otherwise|yet)\b",
    re.I,
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _tokens(text: str) -> list[str]:
    """Lowercase word tokens, apostrophes kept, a "non" prefix split off its word."""
    return _WORD.findall(_FUSED_NON.sub("non ", text.lower().replace("\u2019", "'")))


def words(text: str) -> list[str]:
    """Lowercase word tokens with apostrophes dropped (don't -> dont)."""
    return [w.replace("'", "") for w in _tokens(text)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude suffix stripper: enough to match 'converges'/'convergence'/'converging' or
    'convolutional'/'convolution' for overlap."""
    if word.endswith("ional") and len(word) >= 9:
        return word[:-2]
    for suffix in (
        "ational",
        "ization",
        "ations",
        "ation",
        "ments",
        "ment",
        "ences",
        "ence",
        "ances",
        "ance",
        "ities",
        "ity",
        "ings",
        "ing",
        "ness",
        "ies",
        "ied",
        "ers",
        "er",
        "ed",
        "es",
        "ly",
        "s",
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= (3 if suffix == "s" else 4):
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=1 << 16)
def content_stems(text: str) -> frozenset[str]:
    return frozenset(
        {stem(w) for w in words(text) if w not in FUNCTION_WORDS and w not in NEGATION_CUES and len(w) > 1}
    )


_NO_PREDICATE = frozenset("is are was were be been has have had there gives give makes make".split())
"""'no' negates a claim after these words ("there are no minima") or at a clause start; elsewhere
it is a modifier ("a minimum with no bad local minima") and does not deny anything."""

_NON_PREDICATE = frozenset("is are was were be been being remain remains stay stays become becomes always".split())
"""'non' denies after these words ("the KL is non-negative", "can be non-zero"); elsewhere it is part of a
name ("a non-linear activation", "with one non-zero entry")."""

MIN_ALIGNED_WORDS = 2
MIN_ALIGNED_OVERLAP = 0.6


@lru_cache(maxsize=1 << 16)
def negated(text: str) -> bool:
    """Does the text deny something? Presence, not parity: "X does not A and does not B" denies.

    A double negative of the "not useless" kind cancels out.
    """
    tokens = _tokens(_NOT_NEGATIONS.sub(" ", text.lower()))
    cues = 0
    for i in _cues(tokens):
        previous, token = tokens[i - 1] if i else "", tokens[i]
        cues += -1 if previous in ("not", "never") and token not in ("not", "no") else 1
    return cues > 0


def _cues(tokens: list[str]) -> list[int]:
    """Positions of the tokens that negate their clause ("no" and "non" only in predicate position)."""
    out = []
    for i, token in enumerate(tokens):
        previous = tokens[i - 1] if i else ""
        if token == "no":
            cue = i == 0 or previous in _NO_PREDICATE
        elif token == "non":
            cue = previous in _NON_PREDICATE
        else:
            cue = token.endswith("n't") or token.replace("'", "") in NEGATION_CUES
        if cue:
            out.append(i)
    return out


def clauses(text: str) -> list[str]:
    parts = [c.strip() for c in _CLAUSE_BREAK.split(text) if c and c.strip()]
    return parts or [text]


def _clause_stems(text: str) -> list[tuple[str, frozenset[str]]]:
    return [(c, content_stems(c)) for c in clauses(text)]


def _aligned(clause: str, others: list[tuple[str, frozenset[str]]]) -> tuple[float, int, str] | None:
    """The clause of `others` that `clause` shares the most content words with, as (coefficient, shared,
    clause): at least MIN_ALIGNED_WORDS shared, covering MIN_ALIGNED_OVERLAP of the shorter; None if none is."""
    stems = content_stems(clause)
    best: tuple[float, int, str] | None = None
    for other, other_stems in others:
        overlap = len(stems & other_stems)
        if overlap < MIN_ALIGNED_WORDS:
            continue
        coefficient = overlap / min(len(stems), len(other_stems))
        if coefficient >= MIN_ALIGNED_OVERLAP and (best is None or (coefficient, overlap) > best[:2]):
            best = (coefficient, overlap, other)
    return best


@lru_cache(maxsize=1 << 16)
def contradicts(student: str, reference: str) -> bool:
    """True when the student denies what the reference asserts, or asserts what it denies.

    Embeddings cannot see this ("momentum helps" and "momentum does not help" embed
    alike), so the words decide. The clause pair that shares the most content words
    is aligned (at least two shared, covering 60% of the shorter clause); a
    contradiction needs that pair to differ in negation AND the two sentences as a
    whole to differ too. The second condition keeps "it does not say how many
    neurons we need" from contradicting "it does not tell us how wide the layer is,
    and it could need too many neurons", where the denial sits in another clause.
    Lexical negatives count ("unnecessary" agrees with "not needed"). The negation must
    bear on what the clauses share: "a KL divergence is never negative" does not deny
    "log p(x) is the ELBO plus a KL divergence" (see _denied_stems).
    """
    if negated(student) == negated(reference):
        return False
    best: tuple[float, int, str, str] | None = None
    ref_clauses = _clause_stems(reference)
    for sc in clauses(student):
        aligned = _aligned(sc, ref_clauses)
        if aligned is not None and (best is None or aligned[:2] > best[:2]):
            best = (*aligned, sc)
    if best is None:
        return False
    reference_clause, student_clause = best[2], best[3]
    if negated(student_clause) == negated(reference_clause):
        return False
    denier, other = (
        (student_clause, reference_clause) if negated(student_clause) else (reference_clause, student_clause)
    )
    if _denies_a_universal(denier) and not _UNIVERSAL & set(_tokens(other.lower())):
        return False  # "not every FC layer is a convolution" leaves "a convolution is a special FC layer" standing
    denied = _denied_stems(denier)
    if denied and denied <= _absent_stems(other):
        return False  # "there is no bias" and "without bias" both say the bias is absent
    return not denied or bool(denied & content_stems(other))


_OPPOSITE_PAIRS = """increase decrease, increases decreases, increased decreased, increasing decreasing,
    higher lower, upper lower, larger smaller, bigger smaller, greater smaller, large small, big small, high low,
    maximum minimum, maximize minimize, maximizes minimizes, maximise minimise, maximal minimal,
    positive negative, faster slower, fast slow, stronger weaker, deeper shallower, deep shallow, wider narrower,
    wide narrow, longer shorter, long short, easier harder, more fewer, more less, most least,
    overfitting underfitting, overfit underfit, overfits underfits, vanish explode, vanishes explodes,
    vanishing exploding, shrink grow, shrinks grows, shrinking growing, local global, open closed,
    attract repel, attracts repels, gain lose, gains loses, inside outside, above below, before after,
    true false, correct incorrect, same different, sparse dense, convex concave, stable unstable"""
_OPPOSITES: dict[str, set[str]] = {}
for _pair in _OPPOSITE_PAIRS.split(","):
    _a, _b = (stem(w) for w in _pair.split())
    _OPPOSITES.setdefault(_a, set()).add(_b)
    _OPPOSITES.setdefault(_b, set()).add(_a)


def _holds_opposites(stems: set[str]) -> bool:
    return any(_OPPOSITES.get(w, set()) & stems for w in stems)


@lru_cache(maxsize=1 << 16)
def opposes(student: str, reference: str) -> bool:
    """True when a student clause says what a reference clause says with one word swapped for its opposite.

    "The ELBO is an upper bound on log p(x)" against "the ELBO is a lower bound on log p(x)": the
    judge reads such pairs as one claim (a bare antonym swap reads as entailment), and the words
    show they are not. Each student clause is compared with the reference clause it shares most
    with (aligned as in `contradicts`); the two must agree in negation ("not lower" and "higher"
    are left to the judge), and neither may hold a pair of opposites itself.
    """
    ref_clauses = _clause_stems(reference)
    for sc in clauses(student):
        best = _aligned(sc, ref_clauses)
        if best is None or negated(sc) != negated(best[2]):
            continue
        s_all, r_all = {stem(w) for w in words(sc)}, {stem(w) for w in words(best[2])}
        if _holds_opposites(s_all) or _holds_opposites(r_all):
            continue  # "small gradients, large updates": which word is swapped is not for words to say
        if any(_OPPOSITES.get(w, set()) & (r_all - s_all) for w in s_all - r_all):
            return True
    return False


_SCOPE_END = frozenset({"and", "or"})
"""A coordinator closes a negation's scope: "the critic has no sigmoid and must be Lipschitz" denies a sigmoid, not
the Lipschitz constraint."""


_UNIVERSAL = frozenset({"every", "all", "always", "each"})


def _denies_a_universal(clause: str) -> bool:
    """Does the clause's negation deny only that something holds for all ("not every", "not always")?"""
    tokens = _tokens(_NOT_NEGATIONS.sub(" ", clause.lower()))
    cues = _cues(tokens)
    return bool(cues) and cues[0] + 1 < len(tokens) and tokens[cues[0] + 1] in _UNIVERSAL


_PRIVATIVE = frozenset({"no", "without", "lacks", "lacking"})


def _absent_stems(clause: str) -> frozenset[str]:
    """What the clause says is absent, whatever the word's position: "without *bias*", "with no *bias*"."""
    tokens = _tokens(clause.lower())
    pairs = zip(tokens, tokens[1:])
    return frozenset(stem(word) for token, word in pairs if token in _PRIVATIVE and word not in FUNCTION_WORDS)


def _denied_stems(clause: str) -> frozenset[str]:
    """Content stems from the clause's first negation cue to the next "and" / "or": what it denies ("never
    *negative*"); none when the cue ends the clause ("momentum is useless"), and then the whole clause is denied."""
    tokens = _tokens(_NOT_NEGATIONS.sub(" ", clause.lower()))
    cues = _cues(tokens)
    if not cues:
        return frozenset()
    scope = tokens[cues[0] + 1 :]
    end = next((i for i, token in enumerate(scope) if token in _SCOPE_END), len(scope))
    return content_stems(" ".join(scope[:end]))


def function_word_ratio(text: str) -> float:
    toks = words(text)
    if not toks:
        return 0.0
    return sum(1 for w in toks if w in FUNCTION_WORDS or w in NEGATION_CUES) / len(toks)


def _prose_words(text: str) -> list[str]:
    """Words of the prose only: math symbols (x_T, q, p_theta, 0.25) are neither keywords nor grammar."""
    return [w for w in words(re.sub(r"\S*[_^\\=]\S*", " ", text)) if len(w) > 1 and w.isalpha()]


_RELATION = re.compile(r"->|=>|<=|>=|:=|!=|==|(?<![<>=!:])=(?![=>])|[<>\u2264\u2265\u2248\u2192\u21d2]")
"""A relation between terms: an assignment, an implication, a comparison ("w = w - eta*g", "KL >= 0", "a -> 0")."""


def relations(unit: str) -> int:
    """How many relations (assignments, implications, comparisons) a unit writes out."""
    return len(_RELATION.findall(unit))


@lru_cache(maxsize=1 << 16)
def is_keyword_list(unit: str) -> bool:
    """A run of terms with no claim: several comma-separated items and almost no grammar.

    A terse mapping such as "RNN: gradient clipping" is a claim (it answers "one remedy each"),
    so a colon-led item is never a list by itself; nor is pseudo-code or a derivation on one line,
    whose claims are its relations ("grad_W = 2*(y_hat - y) * x ; KL >= 0 => log p(x) >= ELBO").
    """
    toks = _prose_words(unit)
    if len(toks) < 3 or relations(unit) >= 2:
        return False
    items = [i for i in re.split(r"[,;]|\band\b|\bor\b", unit) if i.strip()]
    grammar = sum(1 for w in toks if w in FUNCTION_WORDS or w in NEGATION_CUES) / len(toks)
    if len(items) >= 4 and grammar < 0.2:
        return True
    return len(toks) >= 6 and grammar < 0.08 and ":" not in unit


@lru_cache(maxsize=1 << 16)
def is_fragment(unit: str) -> bool:
    """A short verbless noun phrase ("Condition number."), a keyword when many of them stand in a row."""
    toks = words(unit)
    return 0 < len(toks) <= 4 and ":" not in unit and function_word_ratio(unit) == 0.0


def _bigrams(text: str) -> set[tuple[str, str]]:
    toks = words(text)
    return set(zip(toks, toks[1:]))


ANSWER_WORDS = frozenset("yes no not never".split())


def asks(unit: str) -> bool:
    """The unit is a question (asked back, or a student's own): it states nothing."""
    return unit.rstrip().endswith("?")


@lru_cache(maxsize=1 << 16)
def copies_question(unit: str, prompt: str) -> bool:
    """The unit asks the question back or restates it: it brings (almost) nothing the prompt lacks.

    "No, momentum does not help on a convex loss" uses only the prompt's content words but
    answers it (yes/no/not), so it is a claim; "Each pixel of the attention map represents
    something in the attention map" adds one vague word and is a restatement.
    """
    if asks(unit):
        return True
    if ANSWER_WORDS & set(words(unit)) or negated(unit):
        return False
    pairs = _bigrams(unit)
    if len(pairs) >= 3 and len(pairs & _bigrams(prompt)) / len(pairs) >= 0.7:
        return True
    stems = content_stems(unit)
    return len(stems) >= 3 and len(stems - content_stems(prompt)) / len(stems) <= 0.25


def distinctive_stems(text: str, background: str) -> frozenset[str]:
    """Content stems of a text that its background (prompt, key points) does not use."""
    return content_stems(text) - content_stems(background)
