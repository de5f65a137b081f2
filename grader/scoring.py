"""Score written answers against a part's key points, sentence by sentence.

Each key point earns its credit from the student's best-aligned unit (a sentence
or a window of two consecutive sentences), never from one cosine of the whole
answer against the whole reference. A unit earns nothing when the lexical checks
show it only resembles the key point: it negates it, lists keywords without a
claim, restates the question, or is closer to another question's key points
(an answer to a different question). A key point stated and denied in the same
answer (hedging) earns nothing. Misconceptions are matched the same way and
cost their penalty. The raw score is clamped to [0, 1] and, where the rubric has
graded exemplars, mapped to points by their calibration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field

from grader import lexical
from grader.calibration import Calibration, fit_calibration
from grader.embedding import Encoder
from grader.report import KeyPointResult, MisconceptionResult
from grader.rubric import Part, Rubric, RubricSet
from grader.sentences import sentence_windows, split_sentences

if TYPE_CHECKING:
    from grader.judge import Judge


DENIED = frozenset({"negated", "contradicts", "hedged"})
"""Key-point flags meaning the answer speaks against the point: no credit, no holistic or judge credit for it."""


class ScoringConfig(BaseModel):
    """Similarity thresholds and guards; per-part `scoring:` overrides in a rubric replace the first three."""

    match_low: float = Field(default=0.40, description="Cosine at which a key point starts earning credit.")
    match_high: float = Field(default=0.72, description="Cosine at which a key point earns full credit.")
    misconception_threshold: float = Field(default=0.74, description="Cosine at which a misconception costs its full penalty.")
    misconception_ramp: float = Field(default=0.06, description="Below the threshold, the penalty fades to 0 over this width.")
    misconception_margin: float = Field(
        default=0.03, description="A sentence states a misconception only if it is this much closer to it than to any key point."
    )
    denial_threshold: float = Field(
        default=0.65, description="A sentence that denies a key point this closely earns no credit for any key point.",
    )
    off_topic_margin: float = Field(default=0.05, description="A unit closer to another question's key points by this much is off topic.")
    window: int = Field(default=2, ge=1, le=4, description="Sentences per sliding window (1 disables windows).")
    holistic_weight: float = Field(
        default=0.25, ge=0, le=1,
        description="Share of the raw score from the whole answer's similarity to the reference answer.",
    )
    holistic_low: float = Field(default=0.35, description="Whole-answer cosine that starts earning holistic credit.")
    holistic_high: float = Field(default=0.80, description="Whole-answer cosine that earns all holistic credit.")
    judge_weight: float = Field(
        default=0.5, ge=0, le=1,
        description="With a judge (cross-encoder): its share of the credit it re-weighs (see judge_scope).",
    )
    judge_scope: Literal["answer", "key_points"] = Field(
        default="answer",
        description="What a judge reads. 'answer': the whole answer against the reference answer, the pairs it "
        "was trained on; it re-weighs the holistic credit only. 'key_points': that, and each key point's best "
        "sentence against the key point, so it re-weighs key-point credit too.",
    )
    knn_k: int = Field(default=3, ge=1, description="Graded exemplars consulted per answer.")
    knn_low: float = Field(default=0.60, description="Below this cosine to its nearest exemplar, an answer ignores them.")
    knn_high: float = Field(default=0.90, description="From this cosine on, the nearest exemplars' grades weigh most.")
    long_answer_sentences: int = Field(default=12, description="From this many sentences on, off-topic padding costs credit.")
    similarity_decimals: int = 4

    def for_part(self, part: Part) -> "ScoringConfig":
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
    misconception_words: list[set[str]] = field(default_factory=list)
    """Per misconception, the content words it uses that the prompt and key points do not."""
    reference_vector: np.ndarray | None = None
    exemplar_vectors: np.ndarray | None = None
    """Whole-answer vectors of the graded exemplars, with their TA fractions below."""
    exemplar_fractions: np.ndarray | None = None


@dataclass
class Unit:
    text: str
    members: tuple[int, ...]
    keyword_list: bool
    copies_question: bool


@dataclass
class KeyPointMatch:
    credit: float
    similarity: float
    evidence: str | None
    flags: list[str]
    best_any_similarity: float
    """Best similarity of any unit, eligible or not (for confidence and feedback)."""


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
    # what a judge (cross-encoder) needs to re-weigh the evidence, see apply_judge
    sim_credits: list[float] = field(default_factory=list)
    judge_items: list[tuple[int, str, str]] = field(default_factory=list)
    """(key point index, the rubric wording it matched, the student's unit) for each key point with evidence;
    recorded only when the judge reads key points (judge_scope "key_points")."""
    whole: str = ""
    gate: float = 1.0
    padding: float = 1.0
    holistic_credit: float = 0.0
    penalty_fraction: float = 0.0


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


def answer_units(text: str, window: int = 2) -> tuple[list[str], list[str]]:
    """Sentences of an answer and the sliding windows built from them."""
    sentences = split_sentences(text)
    return sentences, sentence_windows(sentences, window)


def whole_text(sentences: list[str]) -> str:
    """The answer as one text (its sentence units joined), for whole-answer similarities."""
    return " ".join(sentences)


def texts_to_encode(text: str, window: int = 2) -> list[str]:
    sentences, windows = answer_units(text, window)
    return sentences + windows + ([whole_text(sentences)] if sentences else [])


def build_indexes(
    rubrics: RubricSet, encoder: Encoder, config: ScoringConfig | None = None, judge: "Judge | None" = None
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
        other_texts: list[str] = []
        other_owner: list[str] = []
        for other_rubric, other_part in written:
            if other_rubric.id == rubric.id:
                continue  # parts of one question share vocabulary by design
            for t in background_sentences(other_part):
                other_texts.append(t)
                other_owner.append(other_rubric.qualified(other_part))
        indexes[rubric.qualified(part)] = PartIndex(
            part_id=rubric.qualified(part),
            rubric=rubric,
            part=part,
            prompt=part_prompt(rubric, part),
            key_points=[group(kp) for kp in part.key_points],
            misconceptions=[group(m) for m in part.misconceptions],
            other_vectors=encoder.encode(other_texts),
            other_owner=other_owner,
            config=config.for_part(part),
            misconception_words=_misconception_words(rubric, part),
        )
    for index in indexes.values():
        index.reference_vector = encoder.encode([index.part.reference_answer])[0]
        exemplars = index.part.exemplars
        wholes = [whole_text(split_sentences(ex.answer)) for ex in exemplars]
        usable = [i for i, w in enumerate(wholes) if w]
        if usable:
            index.exemplar_vectors = encoder.encode([wholes[i] for i in usable])
            index.exemplar_fractions = np.array([exemplars[i].points / index.part.max_points for i in usable])
        if exemplars:
            raws = [judged(index, assess(index, ex.answer, encoder), judge).raw_score for ex in exemplars]
            index.calibration = fit_calibration(raws, [ex.points / index.part.max_points for ex in exemplars])
    return indexes


def _misconception_words(rubric: Rubric, part: Part) -> list[set[str]]:
    background = " ".join([part_prompt(rubric, part)] + [t for kp in part.key_points for t in _group_texts(kp)])
    return [lexical.distinctive_stems(" ".join(_group_texts(m)), background) for m in part.misconceptions]


PARAPHRASE_TOLERANCE = 0.05


def _consistent_match(unit: str, texts: list[str], sims: np.ndarray, floor: float) -> tuple[float, bool]:
    """The unit's similarity to an idea stated several ways, and whether the unit denies it.

    Wordings of one idea may differ in polarity ("RNNs do not need them" / "they are
    unnecessary" / "the order is already known"), so a unit denies the idea only if it
    contradicts every wording about as close as the closest one; otherwise its
    similarity is that of the closest wording it agrees with.
    """
    order = np.argsort(-sims)
    best = float(sims[order[0]])
    if best < floor:
        return best, False
    for t in order:
        if sims[t] < best - PARAPHRASE_TOLERANCE:
            break
        if not lexical.contradicts(unit, texts[int(t)]):
            return float(sims[t]), False
    return best, True


def _ramp(sim: float, low: float, high: float) -> float:
    return float(np.clip((sim - low) / (high - low), 0.0, 1.0))


def _units(sentences: list[str], prompt: str, window: int) -> list[Unit]:
    keyword = [lexical.is_keyword_list(s) for s in sentences]
    fragments = [lexical.is_fragment(s) for s in sentences]
    # Three or more bare noun phrases in a row make the whole answer a keyword list.
    if len(sentences) >= 3 and sum(fragments) >= 0.6 * len(sentences):
        keyword = [k or f for k, f in zip(keyword, fragments)]
    copied = [lexical.copies_question(s, prompt) for s in sentences]
    units = [Unit(s, (i,), keyword[i], copied[i]) for i, s in enumerate(sentences)]
    if window >= 2:
        for i, text in enumerate(sentence_windows(sentences, window)):
            members = tuple(range(i, i + window))
            units.append(
                Unit(text, members, any(keyword[j] for j in members), any(copied[j] for j in members))
            )
    return units


def assess(index: PartIndex, text: str, encoder: Encoder) -> Assessment:
    """Read one answer against one part: per key point credit, misconceptions, flags and confidence."""
    cfg = index.config
    part = index.part
    sentences = split_sentences(text)
    if not sentences:
        return Assessment(index.part_id, 0.0, _empty_key_points(part), [], confidence=1.0, n_sentences=0)
    units = _units(sentences, index.prompt, cfg.window)
    n_sentences = len(sentences)
    vectors = encoder.encode([u.text for u in units])
    decimals = cfg.similarity_decimals
    mis_floor = cfg.misconception_threshold - cfg.misconception_ramp

    kp_sims = [np.round(vectors @ g.vectors.T, decimals) for g in index.key_points]  # (units, texts) each
    mis_sims = [np.round(vectors @ g.vectors.T, decimals) for g in index.misconceptions]
    own_best = np.max(np.concatenate([s for s in kp_sims + mis_sims], axis=1), axis=1)
    if index.other_vectors.size:
        other = vectors @ index.other_vectors.T
        other_best = np.max(other, axis=1)
        other_arg = np.argmax(other, axis=1)
        off_topic = other_best > own_best + cfg.off_topic_margin
    else:
        other_arg = np.zeros(len(units), dtype=int)
        off_topic = np.zeros(len(units), dtype=bool)

    # Similarity of each unit to each misconception, kept only when the unit states it: not denied,
    # and using at least one word that sets the misconception apart from the key points (a generic
    # sentence on the topic sits close to every misconception in embedding space).
    mis_consistent = np.zeros((len(units), len(index.misconceptions)))
    for m, (group, sims) in enumerate(zip(index.misconceptions, mis_sims)):
        distinctive = index.misconception_words[m]
        for u, unit in enumerate(units):
            if sims[u].max() < mis_floor:
                continue  # too far to cost anything; skip the word checks
            if distinctive and not (lexical.content_stems(unit.text) & distinctive):
                continue
            sim, denied = _consistent_match(unit.text, group.texts, sims[u], mis_floor)
            if not denied:
                mis_consistent[u, m] = sim
    mis_best_per_unit = mis_consistent.max(axis=1) if index.misconceptions else np.zeros(len(units))

    mid = (cfg.match_low + cfg.match_high) / 2
    kp_results: list[KeyPointResult] = []
    judge_items: list[tuple[int, str, str]] = []
    kp_consistent_best = np.zeros(len(units))
    credits: list[float] = []
    confidences: list[float] = []
    flags_seen: set[str] = set()
    # Below match_low a unit neither earns credit nor denies anything worth reporting.
    consistent = [
        [_consistent_match(unit.text, group.texts, sims[u], cfg.match_low) for u, unit in enumerate(units)]
        for group, sims in zip(index.key_points, kp_sims)
    ]
    # A unit that clearly denies one key point speaks against the rubric; it cannot vouch for another.
    denier = np.array([
        any(row[u][1] and row[u][0] >= cfg.denial_threshold for row in consistent) for u in range(len(units))
    ], dtype=bool)
    for kp, group, sims, row in zip(part.key_points, index.key_points, kp_sims, consistent):
        best_eligible: tuple[float, int] | None = None
        best_blocked: tuple[float, int, list[str]] | None = None
        contradiction = other_denial = 0.0
        for u, unit in enumerate(units):
            sim, negated = row[u]
            counts = not (unit.keyword_list or unit.copies_question or off_topic[u])  # its denials weigh
            flags: list[str] = []
            if denier[u] and not negated:
                flags.append("contradicts")
                if counts:
                    other_denial = max(other_denial, sim)
            if unit.keyword_list:
                flags.append("keyword_list")
            if unit.copies_question:
                flags.append("copies_question")
            if off_topic[u]:
                flags.append("off_topic")
            if negated:
                flags.append("negated")
                if counts:
                    contradiction = max(contradiction, sim)
            elif not denier[u]:
                kp_consistent_best[u] = max(kp_consistent_best[u], sim)
            if u < n_sentences and mis_best_per_unit[u] > max(sim + cfg.misconception_margin, mis_floor) and not (negated or denier[u]):
                flags.append("misconception")
            if flags:
                if best_blocked is None or sim > best_blocked[0]:
                    best_blocked = (sim, u, flags)
            elif best_eligible is None or sim > best_eligible[0]:
                best_eligible = (sim, u)
        sim_ok, u_ok = best_eligible if best_eligible else (0.0, -1)
        wording = group.texts[int(np.argmax(sims[u_ok]))] if u_ok >= 0 else None
        credit = _ramp(sim_ok, cfg.match_low, cfg.match_high)
        result_flags: list[str] = []
        if best_blocked and best_blocked[0] > sim_ok and _ramp(best_blocked[0], cfg.match_low, cfg.match_high) > credit:
            result_flags = best_blocked[2]
        if credit > 0 and max(contradiction, other_denial) > sim_ok:
            credit = 0.0  # the student's closest statement of this point denies it, or another point
            result_flags = ["negated"] if contradiction > sim_ok else ["contradicts"]
        elif credit > 0 and contradiction >= cfg.match_high and sim_ok >= mid:
            credit = 0.0  # stated and denied: a hedge earns nothing
            result_flags = ["hedged"]
        flags_seen.update(result_flags)
        credits.append(credit)
        if cfg.judge_scope == "key_points" and wording is not None and not DENIED & set(result_flags):
            judge_items.append((len(credits) - 1, wording, units[u_ok].text))
        best_any = max(sim_ok, best_blocked[0] if best_blocked else 0.0)
        confidences.append(min(1.0, abs(sim_ok - mid) / ((cfg.match_high - cfg.match_low) / 2)))
        kp_results.append(
            KeyPointResult(
                id=kp.id or "",
                label=kp.label,
                max_points=kp.points,
                points=round(kp.points * credit, 3),
                similarity=round(sim_ok if best_eligible else best_any, 4),
                matched=credit >= 0.5,
                evidence=units[u_ok].text if u_ok >= 0 and credit > 0 else None,
                flags=result_flags,
            )
        )

    mis_results: list[MisconceptionResult] = []
    penalty_total = 0.0
    for m, mis in enumerate(part.misconceptions):
        best_u, best_cost, best_sim = -1, 0.0, 0.0
        for u, unit in enumerate(units[:n_sentences]):  # a misconception is one claim: sentences, not windows
            sim = float(mis_consistent[u, m])
            if unit.copies_question or off_topic[u] or sim < kp_consistent_best[u] + cfg.misconception_margin:
                continue
            cost = _ramp(sim, cfg.misconception_threshold - cfg.misconception_ramp, cfg.misconception_threshold)
            if cost > best_cost:
                best_u, best_cost, best_sim = u, cost, sim
        if best_u >= 0:
            penalty = round(mis.penalty * best_cost, 3)
            penalty_total += penalty
            mis_results.append(
                MisconceptionResult(
                    id=mis.id or "", label=mis.label, penalty=penalty, similarity=round(best_sim, 4),
                    evidence=units[best_u].text,
                )
            )

    earned = sum(kp.points * c for kp, c in zip(part.key_points, credits))
    warnings: list[str] = []
    sentence_units = len(sentences)
    relevant = [
        i for i in range(sentence_units)
        if own_best[i] >= cfg.match_low and not off_topic[i] and not units[i].keyword_list
    ]
    precision = len(relevant) / sentence_units
    padding = 1.0
    if sentence_units >= cfg.long_answer_sentences and precision < 0.5:
        factor = padding = 0.5 + precision
        earned *= factor
        warnings.append(
            f"long answer: {sentence_units} sentences, of which {len(relevant)} address this part; "
            f"credit scaled by {factor:.2f}"
        )
        flags_seen.add("padding")
    # Holistic share: the whole answer against the reference answer, counted only as far as the
    # answer's sentences are on topic, no keyword lists or copies, and its key points not denied.
    answer_vector = encoder.encode([whole_text(sentences)])[0]
    holistic = round(float(answer_vector @ index.reference_vector), decimals) if index.reference_vector is not None else 0.0
    clean = 1.0 - float(np.mean([off_topic[i] or units[i].keyword_list or units[i].copies_question for i in range(n_sentences)]))
    denied = sum(kp.points for kp, r in zip(part.key_points, kp_results) if DENIED & set(r.flags))
    gate = clean * (1.0 - denied / part.max_points) * padding
    holistic_credit = _ramp(holistic, cfg.holistic_low, cfg.holistic_high)
    raw = _raw(cfg, part.max_points, earned, gate, holistic_credit, penalty_total / part.max_points)
    neighbours, neighbour_weight = _neighbours(index, answer_vector, cfg)
    neighbour_weight = round(neighbour_weight * gate, 4)  # exemplars cannot vouch for flagged text either

    off_topic_question = None
    if sentence_units and off_topic[:sentence_units].mean() >= 0.5:
        owners = [index.other_owner[int(other_arg[i])] for i in range(sentence_units) if off_topic[i]]
        off_topic_question = max(set(owners), key=owners.count)
        warnings.append(f"most of this answer matches {off_topic_question} rather than {index.part_id}")
        flags_seen.add("off_topic")
    if sum(u.keyword_list for u in units[:sentence_units]) >= max(1, sentence_units / 2):
        warnings.append("the answer is mostly a list of terms without explanation")
        flags_seen.add("keyword_list")
    if sum(u.copies_question for u in units[:sentence_units]) >= max(1, sentence_units / 2):
        warnings.append("the answer mostly restates the question")
        flags_seen.add("copies_question")

    weights = np.array([kp.points for kp in part.key_points])
    confidence = float(np.average(confidences, weights=weights))
    confidence *= 0.85 ** len(flags_seen)
    if sentence_units <= 1:
        confidence *= 0.8
    return Assessment(
        part_id=index.part_id,
        raw_score=round(raw, 4),
        key_points=kp_results,
        misconceptions=mis_results,
        confidence=round(float(np.clip(confidence, 0, 1)), 3),
        warnings=warnings,
        flags=flags_seen,
        off_topic_question=off_topic_question,
        n_sentences=sentence_units,
        holistic=holistic,
        neighbours=neighbours,
        neighbour_weight=neighbour_weight,
        sim_credits=credits,
        judge_items=judge_items,
        whole=whole_text(sentences),
        gate=gate,
        padding=padding,
        holistic_credit=holistic_credit,
        penalty_fraction=penalty_total / part.max_points,
    )


def _empty_key_points(part: Part) -> list[KeyPointResult]:
    return [
        KeyPointResult(id=kp.id or "", label=kp.label, max_points=kp.points, points=0.0, similarity=0.0, matched=False)
        for kp in part.key_points
    ]


def _raw(cfg: ScoringConfig, max_points: float, earned: float, gate: float, holistic: float, penalty: float) -> float:
    """Key-point credit and the gated holistic credit, less misconception penalties, clamped to [0, 1]."""
    beta = cfg.holistic_weight
    fraction = (1 - beta) * earned / max_points + beta * gate * holistic
    return round(float(np.clip(fraction - penalty, 0.0, 1.0)), 4)


def judged(index: PartIndex, assessment: Assessment, judge: "Judge | None") -> Assessment:
    """The assessment re-weighed by the judge, when there is one."""
    if judge is None:
        return assessment
    return apply_judge(index, assessment, judge.score(judge_pairs(index, assessment)))


def judge_pairs(index: PartIndex, assessment: Assessment) -> list[tuple[str, str]]:
    """The (rubric text, student text) pairs a judge reads for this assessment: each key point's
    evidence (judge_scope "key_points"; assess records none otherwise), then the whole answer
    against the reference answer."""
    if not assessment.whole:
        return []
    return [(wording, unit) for _, wording, unit in assessment.judge_items] + [
        (index.part.reference_answer, assessment.whole)
    ]


def apply_judge(index: PartIndex, assessment: Assessment, probabilities: Sequence[float]) -> Assessment:
    """Re-weigh the evidence with a judge's probabilities (in judge_pairs order).

    The holistic credit becomes (1-w) * similarity credit + w * P(the answer states the
    reference); with judge_scope "key_points", each key point's credit likewise with P(the
    student's unit states it). The lexical guards keep their say: denied or hedged points,
    flagged units and penalties are unchanged.
    """
    if not assessment.whole or len(probabilities) == 0:
        return assessment
    cfg, part = index.config, index.part
    w = cfg.judge_weight
    credits = list(assessment.sim_credits)
    for (k, _, _), p in zip(assessment.judge_items, probabilities):
        credits[k] = (1 - w) * credits[k] + w * float(p)
    key_points = []
    for kp, result, credit in zip(part.key_points, assessment.key_points, credits):
        evidence = result.evidence or next((u for k, _, u in assessment.judge_items if part.key_points[k] is kp), None)
        key_points.append(result.model_copy(update={
            "points": round(kp.points * credit, 3), "matched": credit >= 0.5,
            "evidence": evidence if credit > 0 else None,
        }))
    earned = sum(kp.points * c for kp, c in zip(part.key_points, credits)) * assessment.padding
    holistic = (1 - w) * assessment.holistic_credit + w * float(probabilities[-1])
    raw = _raw(cfg, part.max_points, earned, assessment.gate, holistic, assessment.penalty_fraction)
    return replace(assessment, key_points=key_points, raw_score=raw, sim_credits=credits, holistic_credit=holistic,
                   judge_items=[])


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


def final_points(index: PartIndex, assessment: Assessment) -> tuple[float, bool]:
    """Points for an assessment: raw score through the exemplar calibration, blended with the
    grades of the nearest exemplars when the part has some."""
    max_points = index.part.max_points
    fraction = index.calibration(assessment.raw_score) if index.calibration is not None else assessment.raw_score
    used = index.calibration is not None
    if assessment.neighbours is not None and assessment.neighbour_weight > 0:
        w = assessment.neighbour_weight
        fraction = (1 - w) * fraction + w * assessment.neighbours
        used = True
    return round(float(np.clip(fraction, 0, 1)) * max_points, 2), used


def all_answer_texts(answers: Iterable[str], window: int = 2) -> list[str]:
    """Every unit text of a batch of answers, for one batched encode."""
    out: list[str] = []
    for text in answers:
        out.extend(texts_to_encode(text, window))
    return out
