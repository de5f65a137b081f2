"""Rule-made contradictions of a sentence (negation inserted or removed, an antonym swapped).

Training adds them as hard negatives: a text and its contradiction look alike to an encoder,
and the judge must learn to tell them apart.
"""

from __future__ import annotations

import re


_TOKEN = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)?|[0-9]+(?:\.[0-9]+)?|[^\sA-Za-z0-9]|\s+")

AUXILIARIES = {
    "is", "are", "was", "were", "can", "could", "will", "would", "should", "must", "may", "might", "shall",
    "has", "have", "had", "does", "do", "did",
}
NEGATED_AUX = {
    "isn't": "is", "aren't": "are", "wasn't": "was", "weren't": "were", "can't": "can", "cannot": "can",
    "couldn't": "could", "won't": "will", "wouldn't": "would", "shouldn't": "should", "mustn't": "must",
    "doesn't": "does", "don't": "do", "didn't": "did", "hasn't": "has", "haven't": "have", "hadn't": "had",
}
CONTRACT = {
    "is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't", "can": "can't", "could": "couldn't",
    "will": "won't", "would": "wouldn't", "should": "shouldn't", "does": "doesn't", "do": "don't", "did": "didn't",
    "has": "hasn't", "have": "haven't", "had": "hadn't",
}
PARTICIPLES = {"been", "got", "gotten", "made", "done", "gone", "seen", "become", "given", "taken", "shown", "found"}
DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "its", "their", "his", "her", "our", "my", "your"}
PLURAL_SUBJECTS = {"they", "we", "you", "i", "people", "both"}
NOT_BEFORE_VERB = {
    "to", "will", "can", "not", "more", "less", "many", "few", "some", "all", "of", "in", "on", "with", "for", "by",
    "at", "from", "into", "two", "three", "several", "no", "any", "each", "every", "other",
}
"""Words after which a verb-looking word is more likely a noun ("the more blocks", "of changes")."""

# base form -> (3rd person singular, past); regular forms are derived when None
_VERBS = {
    "cause": None, "make": ("makes", "made"), "move": None, "flow": None, "produce": None, "change": None,
    "need": None, "use": None, "allow": None, "go": ("goes", "went"), "get": ("gets", "got"),
    "take": ("takes", "took"), "give": ("gives", "gave"), "help": None, "contain": None, "show": None,
    "become": ("becomes", "became"), "depend": None, "conduct": None, "complete": None, "connect": None,
    "attract": None, "absorb": None, "reflect": None, "travel": None, "vibrate": None, "dissolve": None,
    "evaporate": None, "form": None, "happen": None, "work": None, "heat": None, "melt": None, "freeze": ("freezes", "froze"),
    "boil": None, "float": None, "sink": ("sinks", "sank"), "mix": ("mixes", "mixed"), "separate": None, "pass": ("passes", "passed"),
    "lose": ("loses", "lost"), "gain": None, "stay": None, "keep": ("keeps", "kept"), "turn": None, "light": ("lights", "lit"),
    "create": None, "provide": None, "require": None, "reduce": None, "ensure": None, "prevent": None,
    "avoid": None, "send": ("sends", "sent"), "receive": None, "transmit": None, "detect": None, "affect": None,
    "matter": None, "guarantee": None, "improve": None, "converge": None, "fit": None,
    "hold": ("holds", "held"), "know": ("knows", "knew"), "mean": ("means", "meant"), "follow": None,
    "apply": ("applies", "applied"), "carry": ("carries", "carried"), "let": ("lets", "let"), "stop": ("stops", "stopped"),
    "run": ("runs", "ran"), "shine": ("shines", "shone"), "grow": ("grows", "grew"), "rise": ("rises", "rose"),
    "fall": ("falls", "fell"), "break": ("breaks", "broke"), "close": None, "open": None, "touch": ("touches", "touched"),
    "share": None, "determine": None, "measure": None, "read": ("reads", "read"),
    "include": None, "exist": None, "occur": ("occurs", "occurred"), "repel": ("repels", "repelled"),
    "contribute": None, "push": ("pushes", "pushed"), "pull": None, "weigh": None, "look": None, "feel": ("feels", "felt"),
    "sound": None, "add": None, "remain": None, "increase": None, "decrease": None,
    "collide": None, "block": None, "say": ("says", "said"), "tell": ("tells", "told"),
    "fill": None, "support": None, "store": None, "release": None, "spread": ("spreads", "spread"), "burn": None,
    "drop": ("drops", "dropped"), "have": ("has", "had"),
}


def _regular(base: str) -> tuple[str, str]:
    third = base + ("es" if base.endswith(("s", "sh", "ch", "x", "z", "o")) else "s")
    if base.endswith("y") and base[-2:-1] not in "aeiou":
        third, past = base[:-1] + "ies", base[:-1] + "ied"
    elif base.endswith("e"):
        past = base + "d"
    else:
        past = base + "ed"
    return third, past


THIRD_PERSON: dict[str, str] = {}
PAST: dict[str, str] = {}
BASE_VERBS: set[str] = set()
for _base, _forms in _VERBS.items():
    _third, _past = _forms or _regular(_base)
    BASE_VERBS.add(_base)
    THIRD_PERSON[_third] = _base
    PAST[_past] = _base

_ANTONYM_PAIRS = [
    ("increase", "decrease"), ("increases", "decreases"), ("increased", "decreased"), ("increasing", "decreasing"),
    ("more", "less"), ("higher", "lower"), ("larger", "smaller"), ("bigger", "smaller"), ("greater", "smaller"),
    ("faster", "slower"), ("hotter", "colder"), ("warmer", "cooler"), ("heavier", "lighter"), ("longer", "shorter"),
    ("stronger", "weaker"), ("positive", "negative"), ("same", "different"), ("open", "closed"),
    ("complete", "incomplete"), ("series", "parallel"), ("before", "after"), ("always", "never"),
    ("inside", "outside"), ("above", "below"), ("true", "false"), ("correct", "incorrect"),
    ("possible", "impossible"), ("attract", "repel"), ("attracts", "repels"), ("absorbs", "reflects"),
    ("absorb", "reflect"), ("gains", "loses"), ("gain", "lose"), ("expands", "contracts"), ("expand", "contract"),
    ("maximum", "minimum"), ("most", "least"), ("high", "low"), ("large", "small"), ("fast", "slow"),
    ("hot", "cold"), ("conductor", "insulator"), ("conductors", "insulators"), ("rises", "falls"),
    ("easier", "harder"), ("early", "late"), ("first", "last"), ("many", "few"), ("forward", "backward"),
    ("wider", "narrower"), ("efficient", "inefficient"), ("reliable", "unreliable"),
    ("necessary", "unnecessary"), ("dependent", "independent"), ("connected", "disconnected"),
    ("stable", "unstable"), ("synchronous", "asynchronous"), ("static", "dynamic"), ("same", "opposite"),
    ("add", "remove"), ("adds", "removes"), ("added", "removed"), ("include", "exclude"), ("includes", "excludes"),
    ("visible", "invisible"), ("soluble", "insoluble"), ("living", "nonliving"), ("with", "without"),
]
ANTONYMS: dict[str, str] = {}
for _a, _b in _ANTONYM_PAIRS:
    ANTONYMS.setdefault(_a, _b)
    ANTONYMS.setdefault(_b, _a)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _words(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t[:1].isalpha()]


def _prev_word(tokens: list[str], idx: list[int], k: int) -> str:
    return tokens[idx[k - 1]].lower() if k > 0 else ""


def negate(text: str) -> tuple[str, str] | None:
    """Flip the first clause's polarity: remove a negation if there is one, else insert one.

    Returns (new text, rule) or None when no rule applies. Rules: ``remove_not`` (is not -> is,
    doesn't -> does, never -> always, no -> a), ``insert_aux`` (is -> is not, has been -> has not been),
    ``insert_do`` (causes -> does not cause, melted -> did not melt, they need -> they do not need).
    """
    toks = _tokens(text)
    idx = _words(toks)
    low = [toks[i].lower().replace("\u2019", "'") for i in idx]
    # 1. remove an existing negation
    for k, w in enumerate(low):
        i = idx[k]
        if w == "not" and k > 0 and low[k - 1] in AUXILIARIES:
            # drop "not" and the space before it
            out = toks[: i - 1] + toks[i + 1 :] if toks[i - 1].isspace() else toks[:i] + toks[i + 1 :]
            return "".join(out), "remove_not"
        if w in NEGATED_AUX:
            toks[i] = _match_case(NEGATED_AUX[w], toks[i])
            return "".join(toks), "remove_not"
        if w == "never":
            toks[i] = _match_case("always", toks[i])
            return "".join(toks), "remove_not"
        if w == "no" and k + 1 < len(low) and low[k + 1] not in {"longer", "matter", "more", "one"}:
            nxt = low[k + 1]
            toks[i] = _match_case("an" if nxt[:1] in "aeiou" else "a", toks[i])
            if nxt.endswith("s") and not nxt.endswith("ss"):
                toks[i] = _match_case("some", toks[i])
            return "".join(toks), "remove_not"
        if w in {"none", "nothing", "nobody", "neither", "nor", "without"}:
            return None  # too irregular to undo by rule
    # 2. insert "not" after the first auxiliary
    for k, w in enumerate(low):
        i = idx[k]
        if w not in AUXILIARIES or k == 0:
            continue
        nxt = low[k + 1] if k + 1 < len(low) else ""
        if w in {"has", "have", "had"} and not (nxt in PARTICIPLES or nxt.endswith("ed") or nxt == "to"):
            do = {"has": "does", "have": "do", "had": "did"}[w]
            toks[i] = f"{do} not have"
            return "".join(toks), "insert_do"
        if w in {"has", "have", "had"} and nxt == "to":
            do = {"has": "does", "have": "do", "had": "did"}[w]
            toks[i] = f"{do} not have"
            return "".join(toks), "insert_do"
        toks[i] = toks[i] + " not"
        return "".join(toks), "insert_aux"
    # 3. a known main verb: causes -> does not cause, melted -> did not melt, they need -> they do not need
    for k, w in enumerate(low):
        if k == 0:
            continue
        i = idx[k]
        prev = _prev_word(toks, idx, k)
        if prev in DETERMINERS or prev in NOT_BEFORE_VERB:
            continue
        if w in THIRD_PERSON:
            toks[i] = f"does not {THIRD_PERSON[w]}"
            return "".join(toks), "insert_do"
        if w in PAST and prev not in AUXILIARIES:
            toks[i] = f"did not {PAST[w]}"
            return "".join(toks), "insert_do"
        if w in BASE_VERBS and prev in PLURAL_SUBJECTS:
            toks[i] = f"do not {w}"
            return "".join(toks), "insert_do"
    return None


def swap_antonym(text: str) -> tuple[str, str] | None:
    """Replace the first word that has an antonym in the list (more -> less, series -> parallel)."""
    toks = _tokens(text)
    for i, t in enumerate(toks):
        w = t.lower()
        if w in ANTONYMS:
            toks[i] = _match_case(ANTONYMS[w], t)
            article = i - 2
            if article >= 0 and toks[article].lower() in {"a", "an"} and toks[i - 1].isspace():
                toks[article] = _match_case("an" if toks[i][:1].lower() in "aeiou" else "a", toks[article])
            return "".join(toks), "antonym"
    return None


def contract(text: str) -> str | None:
    """Same claim, other spelling: "is not" <-> "isn't" (a polarity-preserving positive)."""
    toks = _tokens(text)
    idx = _words(toks)
    low = [toks[i].lower().replace("\u2019", "'") for i in idx]
    for k, w in enumerate(low):
        i = idx[k]
        if w == "not" and k > 0 and low[k - 1] in CONTRACT:
            j = idx[k - 1]
            toks[j] = _match_case(CONTRACT[low[k - 1]], toks[j])
            out = toks[: i - 1] + toks[i + 1 :] if toks[i - 1].isspace() else toks[:i] + toks[i + 1 :]
            return "".join(out)
        if w in NEGATED_AUX and w != "cannot":
            toks[i] = _match_case(NEGATED_AUX[w] + " not", toks[i])
            return "".join(toks)
    return None


def perturbations(text: str) -> list[tuple[str, str]]:
    """Every contradiction the rules make of one text: at most one negation and one antonym swap."""
    out = []
    for rule in (negate, swap_antonym):
        made = rule(text)
        if made and made[0].strip() != text.strip():
            out.append(made)
    return out
