"""Score written answers against a part's key points: what the answer states, denies, and gets wrong.

Two models read an answer. The bi-encoder (grader/written/embedding.py) embeds every sentence, every
window of consecutive sentences and the whole answer once, and finds for each key point and each
misconception the few units that talk about it. The judge (grader/written/judge.py), a cross-encoder,
then reads each such unit together with the rubric's wording and says whether the unit entails
it, contradicts it, or neither. Topic comes from the first model; truth from the second:

* a key point earns its credit from the unit that most clearly entails it;
* a unit that contradicts a key point earns nothing for it, and the feedback quotes it;
  a point both stated and denied (a hedge) earns nothing either;
* a unit that entails a misconception costs the misconception's penalty, quoted back;
* the judge's reading of the whole answer against the reference answer can lift an answer
  that says the same thing another way toward full credit, but never lowers one: an answer
  that states every key point earns full marks.

Without a judge (``--no-judge``) the bi-encoder's cosine decides alone, as a fast estimate of
coverage that cannot tell a claim from its denial.

Before any model runs, an untouched placeholder ("YOUR ANSWER HERE") is removed, so it counts as
no answer, and an answer in another language is held for a TA (grader/written/language.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field

from grader.report import KeyPointResult, MisconceptionResult
from grader.rubric import Part, Rubric, RubricSet
from grader.written import lexical
from grader.written.calibration import Calibration, fit_calibration
from grader.written.confidence import ConfidenceModel, shipped_model, signals
from grader.written.embedding import Encoder
from grader.written.language import detect as detect_language
from grader.written.language import strip_placeholders
from grader.written.sentences import sentence_clauses, sentence_windows, split_sentences

if TYPE_CHECKING:
    from grader.written.judge import Judge


DENIED = frozenset({"contradicts", "hedged"})
"""Key-point flags meaning the answer speaks against the point: no credit, and no holistic lift for it."""


class ScoringConfig(BaseModel):
    """How evidence becomes credit; per-part `scoring:` overrides in a rubric replace some of these."""

    # which units the judge reads, and the whole score without a judge
    match_low: float = Field(
        default=0.40, description="Without a judge: cosine at which a key point starts earning credit."
    )
    match_high: float = Field(
        default=0.72, description="Without a judge: cosine at which a key point earns full credit."
    )
    candidates: int = Field(
        default=2,
        ge=1,
        le=6,
        description="Units per key point or misconception the judge reads (the closest by cosine).",
    )
    wordings: int = Field(
        default=2,
        ge=1,
        le=6,
        description="Wordings of a key point (its text and paraphrases) each unit is judged against.",
    )
    candidate_floor: float = Field(
        default=0.10, description="Units less similar than this to a rubric text are not worth judging."
    )
    whole_answer_units: int = Field(
        default=4,
        ge=0,
        description="Answers of at most this many sentences are also judged whole against each key point.",
    )
    # the judge
    entail_low: float = Field(
        default=0.20, ge=0, le=1, description="P(entailment) at which a key point starts earning credit."
    )
    entail_high: float = Field(
        default=0.50, ge=0, le=1, description="P(entailment) at which a key point earns full credit."
    )
    contradiction: float = Field(
        default=0.70,
        ge=0,
        le=1,
        description=(
            "P(contradiction), above P(entailment), at which a unit denies a key point: it earns nothing for it."
        ),
    )
    misconception_low: float = Field(
        default=0.50, ge=0, le=1, description="P(entailment) of a misconception at which its penalty starts."
    )
    misconception_high: float = Field(
        default=0.85, ge=0, le=1, description="P(entailment) of a misconception that costs the full penalty."
    )
    similarity_weight: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="With a judge: a key point also earns this share of its similarity credit when no unit denies it "
        "(the judge reads strict entailment; a looser paraphrase still counts this much).",
    )
    judge_restatements: bool = Field(
        default=True,
        description="With a judge: a sentence in the question's own words is still read by the judge, which decides "
        'whether it states a key point ("the oil is less dense than the corn syrup" answers a question about the '
        "density of the oil compared to the corn syrup). Without a judge, a restatement earns nothing.",
    )
    answer_in_question: bool = Field(
        default=True,
        description=(
            "With judge_restatements: when every key point of a part is in the question's own words (the scenario "
            "holds the answer, as in 'What was Sam's response?' after a story), a restatement earns its points without "
            "the question's discount."
        ),
    )
    hedge_credit: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=(
            "Share of its credit a key point keeps when the judge reads one unit stating it and another denying it "
            "(flagged hedged). A negation the words show (lexical_denial) always costs the point."
        ),
    )
    lexical_denial: bool = Field(
        default=True,
        description="A unit close to a key point (cosine >= denial_similarity) whose aligned clause differs from it in "
        "negation denies the point, whatever the judge says (grader.written.lexical.contradicts).",
    )
    denial_similarity: float = Field(
        default=0.60, description="Cosine from which a negation mismatch denies a key point."
    )
    reference_yardstick: bool = Field(
        default=True,
        description=(
            "With a judge: the part's own reference answer, a known full-marks answer, is read as a student's when "
            "the part is indexed. A key point earns full credit at the entailment the reference reaches for it, where "
            "that lies between halfway from entail_low and entail_high (below halfway the judge does not read the "
            "point even there, and the scale stays). Where the word-level negation check finds a key point denied in "
            "the reference, a unit closer to that reference sentence than to the point, and of its polarity, is not "
            "denied by it."
        ),
    )
    holistic_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "How far the whole answer's agreement with the reference answer lifts key-point credit toward it (never "
            "lowers it)."
        ),
    )
    # without a judge
    misconception_threshold: float = Field(
        default=0.74, description="Without a judge: cosine at which a misconception costs its full penalty."
    )
    misconception_ramp: float = Field(
        default=0.06, description="Without a judge: below the threshold, the penalty fades to 0 over this width."
    )
    misconception_margin: float = Field(
        default=0.03,
        description=(
            "Without a judge: a sentence states a misconception only if it is this much closer to it than to any key "
            "point."
        ),
    )
    holistic_low: float = Field(
        default=0.35, description="Without a judge: whole-answer cosine that starts earning holistic credit."
    )
    holistic_high: float = Field(
        default=0.80, description="Without a judge: whole-answer cosine that earns all holistic credit."
    )
    # both
    off_topic_margin: float = Field(
        default=0.05, description="A unit closer to another question's reference by this much is off topic (a flag)."
    )
    distinct_topic: float = Field(
        default=0.50,
        description="Another question's reference sentence counts for the off-topic test only while its cosine with "
        "every text of this part stays below this: an answer close to a question on the same topic is not off topic.",
    )
    window: int = Field(default=2, ge=1, le=4, description="Sentences per sliding window (1 disables windows).")
    knn_k: int = Field(default=3, ge=1, description="Graded exemplars consulted per answer.")
    knn_low: float = Field(
        default=0.60, description="Below this cosine to its nearest exemplar, an answer ignores them."
    )
    knn_high: float = Field(default=0.90, description="From this cosine on, the nearest exemplars' grades weigh most.")
    midrange_doubt: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The hand-made confidence falls by up to this share for a grade halfway up the part's scale "
        "(what the student earns, after calibration): there the grade sits between a pass and a fail.",
    )
    confidence_model: ConfidenceModel | None = Field(
        default_factory=shipped_model,
        description="For judged answers: the probability that the grade is within a quarter of the maximum of a "
        "human's, from the scorer's signals, blended with the hand-made confidence (grader.written.confidence). "
        "None: the hand-made confidence alone.",
    )
    long_answer_sentences: int = Field(
        default=12, description="From this many sentences on, off-topic padding costs credit."
    )
    language: str = Field(
        default="en", description="The course's language: answers clearly in another are held for review."
    )
    similarity_decimals: int = 4

    def for_part(self, part: Part) -> ScoringConfig:
        if part.scoring is None:
            return self
        overrides = {k: v for k, v in part.scoring.model_dump().items() if v is not None}
        return self.model_copy(update=overrides)


@dataclass
class TextGroup:
    """One rubric idea (a key point or a misconception) and its alternative wordings with their vectors."""

    texts: list[str]
    vectors: np.ndarray


@dataclass
class ReferenceReading:
    """What the judge and the word check read in the part's own reference answer (see reference_yardstick)."""

    key_point_entailment: list[float]
    """Per key point: the highest P(entailment) of any unit of the reference answer."""
    word_misfires: dict[int, TextGroup]
    """Key point -> the reference units the word-level negation check reads as denying it: there it misfires."""


@dataclass
class PartIndex:
    """Everything the scorer needs about a written part, with its rubric texts already embedded."""

    part_id: str
    rubric: Rubric
    part: Part
    prompt: str
    key_points: list[TextGroup]
    misconceptions: list[TextGroup]
    other_vectors: np.ndarray
    other_owner: list[str]
    config: ScoringConfig
    calibration: Calibration | None = None
    reference_vector: np.ndarray | None = None
    exemplar_vectors: np.ndarray | None = None
    """Whole-answer vectors of the graded exemplars, with their TA fractions below."""
    exemplar_fractions: np.ndarray | None = None
    reference_reading: ReferenceReading | None = None
    """Set with a judge and reference_yardstick; None otherwise."""


@dataclass
class Unit:
    """A sentence, a window of consecutive sentences, or one clause of a compound sentence."""

    text: str
    members: tuple[int, ...]
    keyword_list: bool
    copies_question: bool
    clause: bool = False
    asks: bool = False
    """A question asked back (or a window holding one): never an answer, even to the judge."""


JudgeTarget = tuple[Literal["kp", "mis", "whole", "asked"], int]
"""What a pair is evidence for: a key point, a misconception, the whole answer, or what the question itself
already states of a key point (read only where the answer restates the question)."""
PROMPT_UNIT = -2
"""JudgeItem.unit of the question's own text."""


@dataclass
class JudgeItem:
    """One (rubric text, student unit) pair for the judge, and what it is evidence for."""

    target: JudgeTarget
    rubric_text: str
    unit: int
    """Index into Assessment.units (-1: the whole answer)."""
    similarity: float = 0.0
    """Cosine of the unit with the rubric text (for reports)."""


@dataclass
class Assessment:
    """The scorer's reading of one answer, before calibration and feedback."""

    part_id: str
    raw_score: float
    key_points: list[KeyPointResult]
    misconceptions: list[MisconceptionResult]
    confidence: float
    warnings: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    off_topic_question: str | None = None
    n_sentences: int = 0
    holistic: float = 0.0
    """Cosine of the whole answer with the reference answer."""
    neighbours: float | None = None
    """Similarity-weighted TA fraction of the nearest graded exemplars (None without exemplars)."""
    neighbour_weight: float = 0.0
    units: list[str] = field(default_factory=list)
    judge_items: list[JudgeItem] = field(default_factory=list)
    """The pairs a judge reads (none for an empty answer or one held for review)."""
    whole: str = ""
    prompt: str = ""
    restated: frozenset[int] = frozenset()
    """Units in the question's own words, read by the judge: they earn only what the question does not state."""
    gate: float = 1.0
    """Share of the answer that may lift its credit holistically (on topic, no lists or copies, nothing denied)."""
    padding: float = 1.0
    lexical_denials: dict[int, int] = field(default_factory=dict)
    """Key point index -> the unit that denies it by a negation mismatch (see ScoringConfig.lexical_denial)."""
    held_for_review: str | None = None
    """Why a person must grade this answer (another language), or None."""
    language: str | None = None
    """ISO 639-1 code of the answer's language when it is not the course's (the answer is held for a TA)."""
    judged: bool = False
    key_point_certainty: float = 1.0
    """How decisive the judge's probabilities were on the key points (weighted by their points)."""
    whole_entailment: float | None = None
    """The judge's probability that the whole answer states the reference answer (None: not judged)."""


def part_prompt(rubric: Rubric, part: Part) -> str:
    return f"{rubric.question}\n{part.prompt}" if rubric.question else part.prompt


def _group_texts(item) -> list[str]:  # noqa: ANN001 - KeyPoint or Misconception
    return [item.text, *item.paraphrases]


def background_sentences(part: Part) -> list[str]:
    """What another question's part is about, for the off-topic contrast: its reference answer's sentences.

    The reference answer, not the key points: a TA's edit of one part's key points or
    misconceptions then changes no other part's result (and a regrade rescored only that part).
    """
    return split_sentences(part.reference_answer)


def rubric_texts(rubrics: RubricSet) -> list[str]:
    """Every rubric text the scorer embeds: key points, misconceptions, their paraphrases, reference sentences."""
    out: list[str] = []
    for _, part in rubrics.parts():
        if part.kind != "written":
            continue
        for item in [*part.key_points, *part.misconceptions]:
            out.extend(_group_texts(item))
        out.extend(background_sentences(part))
        out.append(part.reference_answer)
    return out


def answer_sentences(text: str) -> list[str]:
    """The sentences the scorer reads: the answer without placeholder lines, split into units."""
    return split_sentences(strip_placeholders(text))


def whole_text(sentences: list[str]) -> str:
    """The answer as one text (its sentence units joined), for whole-answer similarities."""
    return " ".join(sentences)


def answer_clauses(sentences: list[str]) -> list[tuple[int, str]]:
    """(sentence index, clause) for every clause of a compound sentence (grader.written.sentences.sentence_clauses)."""
    return [(i, c) for i, s in enumerate(sentences) for c in sentence_clauses(s)]


def texts_to_encode(text: str, window: int = 2) -> list[str]:
    sentences = answer_sentences(text)
    clauses = [c for _, c in answer_clauses(sentences)]
    return sentences + sentence_windows(sentences, window) + clauses + ([whole_text(sentences)] if sentences else [])


def build_indexes(
    rubrics: RubricSet, encoder: Encoder, config: ScoringConfig | None = None, judge: Judge | None = None
) -> dict[str, PartIndex]:
    """Embed every rubric text once and prepare each written part; exemplars fit the calibrations."""
    config = config or ScoringConfig()
    written = [(r, p) for r, p in rubrics.parts() if p.kind == "written"]
    exemplar_texts = [t for _, p in written for ex in p.exemplars for t in texts_to_encode(ex.answer, config.window)]
    encoder.prime(rubric_texts(rubrics) + exemplar_texts, pin=True)

    def group(item) -> TextGroup:  # noqa: ANN001
        texts = _group_texts(item)
        return TextGroup(texts=texts, vectors=encoder.encode(texts))

    indexes: dict[str, PartIndex] = {}
    for rubric, part in written:
        part_config = config.for_part(part)
        key_points = [group(kp) for kp in part.key_points]
        misconceptions = [group(m) for m in part.misconceptions]
        own = np.concatenate(
            [g.vectors for g in key_points + misconceptions] + [encoder.encode(background_sentences(part))]
        )
        other_texts: list[str] = []
        other_owner: list[str] = []
        for other_rubric, other_part in written:
            if other_rubric.id == rubric.id:
                continue  # parts of one question share vocabulary by design
            for t in background_sentences(other_part):
                other_texts.append(t)
                other_owner.append(other_rubric.qualified(other_part))
        other_vectors = encoder.encode(other_texts)
        if len(other_texts) and own.size:  # the off-topic test contrasts with other topics only
            distinct = np.max(other_vectors @ own.T, axis=1) < part_config.distinct_topic
            other_vectors = other_vectors[distinct]
            other_owner = [o for o, keep in zip(other_owner, distinct) if keep]
        indexes[rubric.qualified(part)] = PartIndex(
            part_id=rubric.qualified(part),
            rubric=rubric,
            part=part,
            prompt=part_prompt(rubric, part),
            key_points=key_points,
            misconceptions=misconceptions,
            other_vectors=other_vectors,
            other_owner=other_owner,
            config=part_config,
            reference_vector=encoder.encode([part.reference_answer])[0],
        )
    _read_references(indexes, encoder, judge, config.window)
    _fit_exemplars(indexes, encoder, judge, config.window)
    return indexes


def _read_references(indexes: dict[str, PartIndex], encoder: Encoder, judge: Judge | None, window: int) -> None:
    """Each part's ReferenceReading: its reference answer read as a student's, every part's pairs judged at once."""
    chosen = [i for i in indexes.values() if i.config.reference_yardstick]
    if judge is None or not chosen:
        return
    # unjudged readings: the yardstick needs the judge's probabilities, not its decisions
    unjudged = assess_answers(indexes, [(i.part_id, i.part.reference_answer) for i in chosen], encoder, None, window)
    pairs = [judge_pairs(i, a) for i, a in zip(chosen, unjudged)]
    everything = np.asarray(judge.classify([p for ps in pairs for p in ps]), dtype=float).reshape(-1, 3)
    starts = np.cumsum([0] + [len(ps) for ps in pairs])
    for index, assessment, start in zip(chosen, unjudged, starts):
        probabilities = everything[start : start + len(assessment.judge_items)]
        entailment = [0.0] * len(index.part.key_points)
        for item, p in zip(assessment.judge_items, probabilities):
            if item.target[0] == "kp" and item.unit != PROMPT_UNIT:
                entailment[item.target[1]] = max(entailment[item.target[1]], float(p[0]))
        misfires = {}
        for k, u in assessment.lexical_denials.items():
            text = assessment.units[u]
            misfires[k] = TextGroup(texts=[text], vectors=encoder.encode([text]))
        index.reference_reading = ReferenceReading(key_point_entailment=entailment, word_misfires=misfires)


def _fit_exemplars(indexes: dict[str, PartIndex], encoder: Encoder, judge: Judge | None, window: int) -> None:
    """Each part's exemplar neighbours, then its calibration, from every exemplar of every part judged at once."""
    for index in indexes.values():
        exemplars = index.part.exemplars
        wholes = [whole_text(answer_sentences(ex.answer)) for ex in exemplars]
        usable = [i for i, w in enumerate(wholes) if w]
        if usable:
            index.exemplar_vectors = encoder.encode([wholes[i] for i in usable])
            index.exemplar_fractions = np.array([exemplars[i].points / index.part.max_points for i in usable])
    answers = [(pid, ex.answer) for pid, index in indexes.items() for ex in index.part.exemplars]
    found = iter(assess_answers(indexes, answers, encoder, judge, window))
    for index in indexes.values():
        exemplars = index.part.exemplars
        if exemplars:
            raws = [next(found).raw_score for _ in exemplars]
            index.calibration = fit_calibration(raws, [ex.points / index.part.max_points for ex in exemplars])


def _ramp(value: float, low: float, high: float) -> float:
    return float(np.clip((value - low) / (high - low), 0.0, 1.0)) if high > low else float(value >= high)


def _units(sentences: list[str], prompt: str, window: int) -> list[Unit]:
    keyword = [lexical.is_keyword_list(s) for s in sentences]
    fragments = [lexical.is_fragment(s) for s in sentences]
    # Three or more bare noun phrases in a row make the whole answer a keyword list.
    if len(sentences) >= 3 and sum(fragments) >= 0.6 * len(sentences):
        keyword = [k or f for k, f in zip(keyword, fragments)]
    copied = [lexical.copies_question(s, prompt) for s in sentences]
    asks = [lexical.asks(s) for s in sentences]
    units = [Unit(s, (i,), keyword[i], copied[i], asks=asks[i]) for i, s in enumerate(sentences)]
    if window >= 2:
        for i, text in enumerate(sentence_windows(sentences, window)):
            members = tuple(range(i, i + window))
            units.append(
                Unit(
                    text,
                    members,
                    any(keyword[j] for j in members),
                    any(copied[j] for j in members),
                    asks=any(asks[j] for j in members),
                )
            )
    for i, clause in answer_clauses(sentences):
        units.append(Unit(clause, (i,), keyword[i], copied[i], clause=True, asks=asks[i]))
    return units


def _empty_key_points(part: Part) -> list[KeyPointResult]:
    return [
        KeyPointResult(id=kp.id or "", label=kp.label, max_points=kp.points, points=0.0, similarity=0.0, matched=False)
        for kp in part.key_points
    ]


def _held(index: PartIndex, sentences: list[str], reason: str, flag: str, language: str | None = None) -> Assessment:
    return Assessment(
        index.part_id,
        0.0,
        _empty_key_points(index.part),
        [],
        confidence=0.0,
        warnings=[reason],
        flags={flag},
        n_sentences=len(sentences),
        held_for_review=reason,
        whole=whole_text(sentences),
        language=language,
    )


@dataclass
class _Reading:
    """Similarities of one answer's units to everything in its part's rubric."""

    units: list[Unit]
    n_sentences: int
    kp_sims: list[np.ndarray]
    mis_sims: list[np.ndarray]
    off_topic: np.ndarray
    other_arg: np.ndarray
    own_best: np.ndarray
    answer_vector: np.ndarray
    unit_vectors: np.ndarray


def _read(index: PartIndex, sentences: list[str], encoder: Encoder) -> _Reading:
    cfg = index.config
    units = _units(sentences, index.prompt, cfg.window)
    vectors = encoder.encode([u.text for u in units])
    decimals = cfg.similarity_decimals
    kp_sims = [np.round(vectors @ g.vectors.T, decimals) for g in index.key_points]
    mis_sims = [np.round(vectors @ g.vectors.T, decimals) for g in index.misconceptions]
    own_best = np.max(np.concatenate(kp_sims + mis_sims, axis=1), axis=1)
    if index.other_vectors.size:
        other = vectors @ index.other_vectors.T
        # a unit without a content word ("Yes.", "No, not at all.") has no topic to be off
        topical = np.array([bool(lexical.content_stems(u.text)) for u in units], dtype=bool)
        off_topic = (np.max(other, axis=1) > own_best + cfg.off_topic_margin) & topical
        other_arg = np.argmax(other, axis=1)
    else:
        off_topic = np.zeros(len(units), dtype=bool)
        other_arg = np.zeros(len(units), dtype=int)
    answer_vector = encoder.encode([whole_text(sentences)])[0]
    return _Reading(units, len(sentences), kp_sims, mis_sims, off_topic, other_arg, own_best, answer_vector, vectors)


def _blocked(reading: _Reading, u: int, restatements: bool = True) -> list[str]:
    """Why a unit earns nothing by itself; `restatements=False` where the judge reads them."""
    unit = reading.units[u]
    return [
        name
        for name, on in (
            ("keyword_list", unit.keyword_list),
            ("copies_question", unit.copies_question and (restatements or unit.asks)),
            ("off_topic", bool(reading.off_topic[u])),
        )
        if on
    ]


def assess(index: PartIndex, text: str, encoder: Encoder) -> Assessment:
    """Read one answer against one part with the bi-encoder: similarity credits, and the pairs a judge should read."""
    cfg = index.config
    part = index.part
    sentences = answer_sentences(text)
    if not sentences:
        return Assessment(
            index.part_id,
            0.0,
            _empty_key_points(part),
            [],
            confidence=1.0,
            n_sentences=0,
            flags={"no_answer"} if text.strip() else set(),
        )
    language = detect_language(whole_text(sentences), cfg.language)
    if language is not None:
        reason = (
            f"this answer appears to be written in {language.name}; the grader reads {cfg.language!r} answers "
            "only, so it is held for a TA to grade"
        )
        return _held(index, sentences, reason, "other_language", language.code)
    reading = _read(index, sentences, encoder)
    units = reading.units
    n = reading.n_sentences

    kp_results: list[KeyPointResult] = []
    confidences: list[float] = []
    mid = (cfg.match_low + cfg.match_high) / 2
    for kp, sims in zip(part.key_points, reading.kp_sims):
        best = sims.max(axis=1)
        eligible = [u for u in range(len(units)) if not _blocked(reading, u)]
        u_best = max(eligible, key=lambda u: best[u]) if eligible else -1
        sim = float(best[u_best]) if u_best >= 0 else 0.0
        credit = _ramp(sim, cfg.match_low, cfg.match_high)
        u_any = int(np.argmax(best))
        flags = (
            _blocked(reading, u_any)
            if float(best[u_any]) > sim and _ramp(float(best[u_any]), cfg.match_low, cfg.match_high) > credit
            else []
        )
        confidences.append(min(1.0, abs(sim - mid) / ((cfg.match_high - cfg.match_low) / 2)))
        kp_results.append(
            KeyPointResult(
                id=kp.id or "",
                label=kp.label,
                max_points=kp.points,
                points=round(kp.points * credit, 3),
                similarity=round(sim if u_best >= 0 else float(best[u_any]), 4),
                matched=credit >= 0.5,
                evidence=units[u_best].text if credit > 0 else None,
                flags=flags,
            )
        )
    mis_results = _similar_misconceptions(index, reading)
    denials = _lexical_denials(index, reading) if cfg.lexical_denial else {}
    assessment = Assessment(
        part_id=index.part_id,
        raw_score=0.0,
        key_points=kp_results,
        misconceptions=mis_results,
        confidence=float(np.average(confidences, weights=[kp.points for kp in part.key_points])),
        n_sentences=n,
        units=[u.text for u in units],
        whole=whole_text(sentences),
        holistic=round(float(reading.answer_vector @ index.reference_vector), cfg.similarity_decimals)
        if index.reference_vector is not None
        else 0.0,
        lexical_denials=denials,
    )
    _answer_flags(index, reading, assessment)
    assessment.judge_items = _judge_items(index, reading, sentences)
    if cfg.judge_restatements:
        assessment.prompt, assessment.restated = index.prompt, _restated(reading)
    assessment.neighbours, weight = _neighbours(index, reading.answer_vector, cfg)
    assessment.neighbour_weight = round(weight * assessment.gate, 4)
    return _settle(index, assessment, holistic_credit=_ramp(assessment.holistic, cfg.holistic_low, cfg.holistic_high))


def _lexical_denials(index: PartIndex, reading: _Reading) -> dict[int, int]:
    """Key point -> the closest unit (sentence or clause) that states it with the opposite polarity.

    A cross-encoder this small misses a "not" inside a long sentence; a negation mismatch between a
    unit and the wording it is closest to, at a high cosine, is a denial it cannot talk away.
    """
    out: dict[int, int] = {}
    pool = [u for u, unit in enumerate(reading.units) if not (len(unit.members) > 1) and not _blocked(reading, u)]
    misfires = index.reference_reading.word_misfires if index.reference_reading is not None else {}
    for k, (group, sims) in enumerate(zip(index.key_points, reading.kp_sims)):
        best: tuple[float, int] | None = None
        for u in pool:
            w = int(np.argmax(sims[u]))
            sim = float(sims[u, w])
            if sim >= index.config.denial_similarity and lexical.contradicts(reading.units[u].text, group.texts[w]):
                if k in misfires and _restates_misfire(reading, u, misfires[k], sim):
                    continue
                if best is None or sim > best[0]:
                    best = (sim, u)
        if best is not None:
            out[k] = best[1]
    return out


def _restates_misfire(reading: _Reading, u: int, misfire: TextGroup, sim: float) -> bool:
    """The unit is closer to a reference sentence the word check misreads as a denial than to the key point,
    and agrees with that sentence in polarity: it says what the reference says, so it denies nothing."""
    closer = float(reading.unit_vectors[u] @ misfire.vectors[0]) >= sim
    return closer and not lexical.contradicts(reading.units[u].text, misfire.texts[0])


def _similar_misconceptions(index: PartIndex, reading: _Reading) -> list[MisconceptionResult]:
    """Without a judge: a sentence closer to a misconception than to any key point, and close enough, states it."""
    cfg = index.config
    out: list[MisconceptionResult] = []
    kp_best = np.max(np.concatenate(reading.kp_sims, axis=1), axis=1)
    for mis, sims in zip(index.part.misconceptions, reading.mis_sims):
        best = sims.max(axis=1)
        candidates = [
            u
            for u in range(reading.n_sentences)
            if not _blocked(reading, u) and best[u] >= kp_best[u] + cfg.misconception_margin
        ]
        if not candidates:
            continue
        u = max(candidates, key=lambda i: best[i])
        cost = _ramp(float(best[u]), cfg.misconception_threshold - cfg.misconception_ramp, cfg.misconception_threshold)
        if cost > 0:
            out.append(
                MisconceptionResult(
                    id=mis.id or "",
                    label=mis.label,
                    penalty=round(mis.penalty * cost, 3),
                    similarity=round(float(best[u]), 4),
                    evidence=reading.units[u].text,
                )
            )
    return out


RESTATES = "the answer mostly restates the question"


def _answer_flags(index: PartIndex, reading: _Reading, assessment: Assessment) -> None:
    """Answer-level observations (off topic, keyword list, restated question, padding) and the holistic gate."""
    cfg = index.config
    n = reading.n_sentences
    units = reading.units
    relevant = [
        i
        for i in range(n)
        if reading.own_best[i] >= cfg.match_low and not reading.off_topic[i] and not units[i].keyword_list
    ]
    if n >= cfg.long_answer_sentences and len(relevant) / n < 0.5:
        assessment.padding = 0.5 + len(relevant) / n
        assessment.warnings.append(
            f"long answer: {n} sentences, of which {len(relevant)} address this part; credit scaled by "
            f"{assessment.padding:.2f}"
        )
        assessment.flags.add("padding")
    lengths = np.array([max(1, len(lexical.words(units[i].text))) for i in range(n)], dtype=float)
    if lengths[reading.off_topic[:n]].sum() >= 0.5 * lengths.sum():  # most of its words, not of its sentences
        owners = [index.other_owner[int(reading.other_arg[i])] for i in range(n) if reading.off_topic[i]]
        assessment.off_topic_question = max(set(owners), key=owners.count)
        assessment.warnings.append(
            f"most of this answer matches {assessment.off_topic_question} rather than {index.part_id}"
        )
        assessment.flags.add("off_topic")
    if sum(u.keyword_list for u in units[:n]) >= max(1, n / 2):
        assessment.warnings.append("the answer is mostly a list of terms without explanation")
        assessment.flags.add("keyword_list")
    if sum(u.copies_question for u in units[:n]) >= max(1, n / 2):
        assessment.warnings.append(RESTATES)
        assessment.flags.add("copies_question")
    noisy = [reading.off_topic[i] or units[i].keyword_list or units[i].copies_question for i in range(n)]
    assessment.gate = (1.0 - float(np.mean(noisy))) * assessment.padding


def _judge_items(index: PartIndex, reading: _Reading, sentences: list[str]) -> list[JudgeItem]:
    """The closest units to each key point and misconception, with the wording each is closest to.

    Short answers are also read whole against each key point: the judge was trained on whole
    answers, and a point may be stated across sentences.
    """
    cfg = index.config
    items: list[JudgeItem] = []
    whole_ok = (
        0 < len(sentences) <= cfg.whole_answer_units
        and len(reading.units) > 1
        and not any(_blocked(reading, u) for u in range(reading.n_sentences))
    )
    for kind, groups, sims_list, pool in (
        ("kp", index.key_points, reading.kp_sims, range(len(reading.units))),
        (
            "mis",
            index.misconceptions,
            reading.mis_sims,
            [u for u, unit in enumerate(reading.units) if len(unit.members) == 1],
        ),
    ):
        for k, (group, sims) in enumerate(zip(groups, sims_list)):
            best = sims.max(axis=1)
            restatements = kind == "mis" or not cfg.judge_restatements  # a restatement is read for key points only
            eligible = (u for u in pool if best[u] >= cfg.candidate_floor and not _blocked(reading, u, restatements))
            ranked = sorted(eligible, key=lambda u: (-best[u], u))
            for u in ranked[: cfg.candidates]:
                for w in np.argsort(-sims[u], kind="stable")[: cfg.wordings]:
                    items.append(JudgeItem((kind, k), group.texts[int(w)], u, float(sims[u, w])))  # type: ignore[arg-type]
            if kind == "kp" and whole_ok:
                for w in np.argsort(-sims.max(axis=0), kind="stable")[: cfg.wordings]:
                    items.append(JudgeItem(("kp", k), group.texts[int(w)], -1, float(best.max())))
    for text in whole_references(index.part):
        items.append(JudgeItem(("whole", 0), text, -1))
    if cfg.judge_restatements:  # what the question itself states of each point a restatement is read for
        restated = _restated(reading)
        asked = {(it.target[1], it.rubric_text) for it in items if it.target[0] == "kp" and it.unit in restated}
        items += [JudgeItem(("asked", k), text, PROMPT_UNIT) for k, text in sorted(asked)]
    return items


def _restated(reading: _Reading) -> frozenset[int]:
    """Units in the question's own words that are not questions themselves: the judge reads them for key points."""
    return frozenset(u for u, unit in enumerate(reading.units) if unit.copies_question and not unit.asks)


def whole_references(part: Part) -> list[str]:
    """What a whole answer is judged against: the reference answer and, for a part whose one key point
    is the whole answer, that point's wordings too (each an acceptable answer)."""
    texts = [part.reference_answer]
    if len(part.key_points) == 1:
        texts += [t for t in _group_texts(part.key_points[0]) if t not in texts]
    return texts


def judge_pairs(index: PartIndex, assessment: Assessment) -> list[tuple[str, str]]:
    """The (rubric text, student text) pairs a judge reads for this assessment."""
    return [(item.rubric_text, _unit_text(assessment, item.unit)) for item in assessment.judge_items]


def _unit_text(assessment: Assessment, unit: int) -> str:
    if unit == PROMPT_UNIT:
        return assessment.prompt
    return assessment.whole if unit < 0 else assessment.units[unit]


def assess_answers(
    indexes: Mapping[str, PartIndex],
    answers: Sequence[tuple[str, str]],
    encoder: Encoder,
    judge: Judge | None,
    window: int,
) -> list[Assessment]:
    """The judged assessments of (part id, answer text) pairs: one batched encode, one judge call.

    One judge call sorts every pair of every answer by length, so the long whole-answer pairs share
    batches instead of padding each answer's short sentence pairs to their length: 2.1-2.3x less judge
    time than a call per answer (docs/benchmarks.md).
    """
    encoder.prime(all_answer_texts((text for _, text in answers), window))
    assessments = [assess(indexes[pid], text, encoder) for pid, text in answers]
    if judge is not None:  # judged() below reads the judge's memo
        judge.classify([p for (pid, _), a in zip(answers, assessments) for p in judge_pairs(indexes[pid], a)])
    return [judged(indexes[pid], a, judge) for (pid, _), a in zip(answers, assessments)]


def judged(index: PartIndex, assessment: Assessment, judge: Judge | None) -> Assessment:
    """The assessment decided by the judge, when there is one."""
    if judge is None or not assessment.judge_items:
        return assessment
    return apply_judge(index, assessment, judge.classify(judge_pairs(index, assessment)))


def apply_judge(index: PartIndex, assessment: Assessment, probabilities: np.ndarray) -> Assessment:
    """Decide each key point and misconception from the judge's probabilities (rows in judge_items order)."""
    cfg, part = index.config, index.part
    probs = np.asarray(probabilities, dtype=float).reshape(len(assessment.judge_items), 3)
    by_target: dict[JudgeTarget, list[tuple[JudgeItem, np.ndarray]]] = {}
    for item, p in zip(assessment.judge_items, probs):
        by_target.setdefault(item.target, []).append((item, p))
    entailed_units: dict[int, float] = {}
    key_points: list[KeyPointResult] = []
    certainties: list[float] = []
    # every point of the rubric in the question's own words: the answer is to restate it, not to add to it
    answered_in_question = cfg.answer_in_question and all(
        any(lexical.copies_question(text, index.prompt) for text in group.texts) for group in index.key_points
    )
    for k, (kp, old) in enumerate(zip(part.key_points, assessment.key_points)):
        if answered_in_question:
            evidence = _swaps_denied(by_target.get(("kp", k), []), assessment)
        else:
            evidence = _beyond_the_question(by_target.get(("kp", k), []), by_target.get(("asked", k), []), assessment)
        reached = index.reference_reading.key_point_entailment[k] if index.reference_reading is not None else None
        result, certainty = _decide_key_point(
            cfg, kp.points, old, evidence, assessment, assessment.lexical_denials.get(k), reached
        )
        key_points.append(result)
        certainties.append(certainty)
        for item, p in by_target.get(("kp", k), []):
            entailed_units[item.unit] = max(entailed_units.get(item.unit, 0.0), float(p[0]))
    misconceptions = _judged_misconceptions(cfg, part, by_target, assessment, entailed_units)
    whole = by_target.get(("whole", 0), [])
    p_whole = max((p for _, p in whole), key=lambda p: p[0]) if whole else np.array([0.0, 1.0, 0.0])
    denied = sum(kp.points for kp, r in zip(part.key_points, key_points) if DENIED & set(r.flags))
    gate = assessment.gate * (1.0 - denied / part.max_points)
    flags = assessment.flags | {f for r in key_points for f in r.flags if f in DENIED}
    warnings = assessment.warnings
    if cfg.judge_restatements and any(r.matched for r in key_points):  # the question's words, answering it
        flags, warnings = flags - {"copies_question"}, [w for w in warnings if w != RESTATES]
    out = replace(
        assessment,
        key_points=key_points,
        misconceptions=misconceptions,
        judged=True,
        flags=flags,
        warnings=warnings,
        gate=gate,
    )
    if assessment.gate > 0:  # exemplars cannot vouch for what the judge found denied either
        out.neighbour_weight = round(assessment.neighbour_weight * gate / assessment.gate, 4)
    settled = _settle(index, out, holistic_credit=float(p_whole[0]))
    kp_certainty = float(np.average(certainties, weights=[kp.points for kp in part.key_points]))
    settled.confidence = _confidence(kp_certainty, settled, float(p_whole[0]))
    settled.key_point_certainty, settled.whole_entailment = kp_certainty, float(p_whole[0])
    return settled


def _beyond_the_question(
    evidence: list[tuple[JudgeItem, np.ndarray]], asked: list[tuple[JudgeItem, np.ndarray]], assessment: Assessment
) -> list[tuple[JudgeItem, np.ndarray]]:
    """A unit in the question's own words states a point only as far as the question does not already state it
    ("We drop the KL term and optimise the ELBO" restates "Why may we drop the KL term ...?"; "the oil is less dense
    than the corn syrup" answers "the density of the oil compared to the corn syrup")."""
    given = {item.rubric_text: float(p[0]) for item, p in asked}
    out = []
    for item, p in evidence:
        if item.unit in assessment.restated:
            p = p.copy()
            p[0] = max(0.0, p[0] - given.get(item.rubric_text, 0.0))
        out.append((item, p))
    return out


def _swaps_denied(
    evidence: list[tuple[JudgeItem, np.ndarray]], assessment: Assessment
) -> list[tuple[JudgeItem, np.ndarray]]:
    """Where the question's words hold the answer, a restatement that swaps one word for its opposite ("the oil is
    more dense than the corn syrup" for "less dense") gives the other answer: it denies the point. The judge reads a
    bare antonym swap as the same claim (lexical.opposes), and here that swap is all that tells right from wrong."""
    out = []
    for item, p in evidence:
        if item.unit in assessment.restated and lexical.opposes(_unit_text(assessment, item.unit), item.rubric_text):
            p = np.array([0.0, 0.0, 1.0])
        out.append((item, p))
    return out


def _unit_readings(evidence: list[tuple[JudgeItem, np.ndarray]]) -> list[tuple[int, float, float]]:
    """Per unit: (unit, best P(entailment) over the wordings judged, P(contradiction) of its closest wording).

    A point's wordings may be different acceptable answers rather than paraphrases (one of several
    reference answers): a unit states the point if it entails any of them, and denies it only if it
    contradicts the wording it is closest to.
    """
    by_unit: dict[int, list[np.ndarray]] = {}
    for item, p in evidence:  # items of a unit come closest wording first (see _judge_items)
        by_unit.setdefault(item.unit, []).append(p)
    return [(u, float(max(p[0] for p in ps)), float(ps[0][2])) for u, ps in by_unit.items()]


def _decide_key_point(
    cfg: ScoringConfig,
    points: float,
    old: KeyPointResult,
    evidence: list[tuple[JudgeItem, np.ndarray]],
    assessment: Assessment,
    lexical_denial: int | None = None,
    reached: float | None = None,
) -> tuple[KeyPointResult, float]:
    """Credit from the unit that most clearly entails the point; nothing if a unit denies it.

    `reached` is the entailment the part's reference answer reaches for the point: a unit that entails it
    as strongly as the reference does earns full credit, even where that is below entail_high.
    """
    sim_credit = old.points / points if points else 0.0
    readings = _unit_readings(evidence) or [(-1, 0.0, 0.0)]
    u_entail, entail, _ = max(readings, key=lambda r: (r[1], -r[0]))
    denials = [r for r in readings if r[2] >= cfg.contradiction and r[2] > r[1]]
    contradiction = max(r[2] for r in readings)
    full = cfg.entail_high
    if reached is not None and (cfg.entail_low + cfg.entail_high) / 2 <= reached < cfg.entail_high:
        full = reached  # below halfway the judge does not read the point even in the reference: the scale stays
    judge_credit = _ramp(entail, cfg.entail_low, full)
    credit = max(judge_credit, cfg.similarity_weight * sim_credit)
    flags: list[str] = []
    quote = (
        (_unit_text(assessment, u_entail) if judge_credit >= cfg.similarity_weight * sim_credit else old.evidence)
        if credit > 0
        else None
    )
    u_deny = max(denials, key=lambda r: (r[2], -r[0]))[0] if denials else lexical_denial
    if u_deny is not None:
        flags = ["contradicts"] if entail < cfg.entail_high else ["hedged"]  # hedged: another unit states it
        credit = cfg.hedge_credit * judge_credit if flags == ["hedged"] and lexical_denial is None else 0.0
        quote = _unit_text(assessment, u_deny)
    decisive = max(entail, contradiction)
    certainty = abs(2 * decisive - 1) if not flags else max(entail, contradiction)
    result = old.model_copy(
        update={
            "points": round(points * credit, 3),
            "matched": credit >= 0.5,
            "evidence": quote,
            "flags": flags,
            "entailment": round(entail, 4),
            "contradiction": round(contradiction, 4),
        }
    )
    return result, certainty


def _judged_misconceptions(
    cfg: ScoringConfig, part: Part, by_target: dict, assessment: Assessment, entailed_units: dict[int, float]
) -> list[MisconceptionResult]:
    """A unit that entails a misconception (more than it entails any key point) costs its penalty, unless its
    words say the opposite of it (grader.written.lexical.opposes)."""
    out: list[MisconceptionResult] = []
    for m, mis in enumerate(part.misconceptions):
        evidence = by_target.get(("mis", m), [])
        if not evidence:
            continue
        item, p = max(evidence, key=lambda ip: (ip[1][0], -ip[0].unit))
        if float(p[0]) <= entailed_units.get(item.unit, 0.0):
            continue
        unit_text = _unit_text(assessment, item.unit)
        if any(lexical.opposes(unit_text, wording) for wording in _group_texts(mis)):
            continue  # "a lower bound" does not state "an upper bound", whatever the judge reads
        cost = _ramp(float(p[0]), cfg.misconception_low, cfg.misconception_high)
        if cost > 0:
            out.append(
                MisconceptionResult(
                    id=mis.id or "",
                    label=mis.label,
                    penalty=round(mis.penalty * cost, 3),
                    similarity=round(item.similarity, 4),
                    evidence=_unit_text(assessment, item.unit),
                    entailment=round(float(p[0]), 4),
                )
            )
    return out


def _settle(index: PartIndex, assessment: Assessment, holistic_credit: float) -> Assessment:
    """Raw score: key-point credit (scaled for padding), lifted toward the holistic credit, less penalties."""
    part, cfg = index.part, index.config
    earned = sum(r.points for r in assessment.key_points) / part.max_points * assessment.padding
    lift = cfg.holistic_weight * max(0.0, holistic_credit - earned) * assessment.gate
    penalty = sum(m.penalty for m in assessment.misconceptions) / part.max_points
    assessment.raw_score = round(float(np.clip(earned + lift - penalty, 0.0, 1.0)), 4)
    return assessment


def _confidence(kp_certainty: float, assessment: Assessment, p_whole: float) -> float:
    """How sure the judge is: decisive key-point probabilities, and the whole answer agreeing with them."""
    agreement = 1.0 - abs(p_whole - min(1.0, assessment.raw_score))
    confidence = kp_certainty * (0.5 + 0.5 * agreement)
    confidence *= 0.85 ** len(assessment.flags - {"no_answer"})
    if assessment.neighbours is not None and assessment.neighbour_weight > 0:
        confidence *= 1.0 - 0.5 * assessment.neighbour_weight * abs(assessment.neighbours - assessment.raw_score)
    return round(float(np.clip(confidence, 0.0, 1.0)), 3)


def _neighbours(index: PartIndex, answer_vector: np.ndarray, cfg: ScoringConfig) -> tuple[float | None, float]:
    """What the TA gave the most similar graded exemplars, and how much that should count.

    The weight grows from 0 at cosine knn_low to its most at knn_high with the nearest
    exemplar, and with the number of exemplars (n/(n+3)): one loosely similar exemplar
    says little, a near-duplicate of a graded answer says a lot.
    """
    if index.exemplar_vectors is None or index.exemplar_fractions is None:
        return None, 0.0
    sims = np.round(index.exemplar_vectors @ answer_vector, cfg.similarity_decimals)
    top = np.argsort(-sims, kind="stable")[: cfg.knn_k]
    weights = np.exp((sims[top] - sims[top[0]]) / 0.05)
    estimate = float(np.average(index.exemplar_fractions[top], weights=weights))
    n = len(sims)
    weight = _ramp(float(sims[top[0]]), cfg.knn_low, cfg.knn_high) * n / (n + 3)
    return round(estimate, 4), round(weight, 4)


COMPLETE = 0.95
"""An answer whose key points all earned full credit, with no penalty, keeps at least this fraction."""


def final_points(index: PartIndex, assessment: Assessment) -> tuple[float, bool]:
    """Points for an assessment: raw score through the exemplar calibration, blended with the
    grades of the nearest exemplars when the part has some. A complete answer is never capped."""
    max_points = index.part.max_points
    fraction = index.calibration(assessment.raw_score) if index.calibration is not None else assessment.raw_score
    used = index.calibration is not None
    if assessment.neighbours is not None and assessment.neighbour_weight > 0:
        w = assessment.neighbour_weight
        fraction = (1 - w) * fraction + w * assessment.neighbours
        used = True
    complete = (
        assessment.key_points
        and all(r.points >= r.max_points - 1e-9 for r in assessment.key_points)
        and not assessment.misconceptions
    )
    if complete:
        fraction = max(fraction, COMPLETE * assessment.raw_score)
    return round(float(np.clip(fraction, 0, 1)) * max_points, 2), used


def graded_confidence(index: PartIndex, assessment: Assessment, points: float) -> tuple[float, dict[str, float] | None]:
    """How likely the grade is right, and the signals that says so (None for an answer the judge did not read).

    The confidence model reads a judged answer's signals; otherwise, or with no model, the hand-made
    confidence stands.
    """
    fraction = min(1.0, max(0.0, points / index.part.max_points))
    hand_made = assessment.confidence * (1.0 - index.config.midrange_doubt * 4.0 * fraction * (1.0 - fraction))
    if not assessment.judged:
        return round(hand_made, 3), None
    read = {k: round(v, 4) for k, v in signals(assessment, fraction, hand_made).items()}
    model = index.config.confidence_model
    return round(model.confidence(read) if model is not None else hand_made, 3), read


def all_answer_texts(answers: Iterable[str], window: int = 2) -> list[str]:
    """Every unit text of a batch of answers, for one batched encode."""
    out: list[str] = []
    for text in answers:
        out.extend(texts_to_encode(text, window))
    return out


__all__ = [
    "Assessment",
    "JudgeItem",
    "PartIndex",
    "ScoringConfig",
    "all_answer_texts",
    "apply_judge",
    "assess",
    "background_sentences",
    "build_indexes",
    "final_points",
    "judge_pairs",
    "judged",
    "part_prompt",
]
