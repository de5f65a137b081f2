"""Written-answer scoring on the course rubrics: does the grade say whether the answer is right?

tests/data/labelled_answers.yaml holds answers written for this repo without running the grader,
each with the fraction of the part's points a careful TA would give (a range) and a category
(complete answers in several styles, partial ones, wrong but on topic, negated, misconceptions,
keyword lists, copies of the question, off topic, placeholders, other languages ...). The floors
below are how many of each category land in the TA's range with the default grader (the judge
decides) and with `--no-judge` (similarity only); a change that makes any failure mode worse
fails here. The set is the team's own: it shows failure modes, it does not prove a gain (the
public datasets do that, docs/benchmarks.md).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
import yaml

from grader.feedback import written_feedback
from grader.written.scoring import (
    Assessment,
    ReferenceReading,
    ScoringConfig,
    assess,
    assess_answers,
    build_indexes,
    final_points,
    graded_confidence,
    judged,
)

from .conftest import DATA

FLOORS: dict[str, int] = {
    "bullets_flattened": 8,
    "concise": 9,
    "copy_question": 7,
    "good": 20,
    "keyword_list": 12,
    "long_everything": 4,
    "misconception": 4,
    "negation": 9,
    "off_topic": 9,
    "other_language": 6,
    "paraphrase": 7,
    "partial": 15,
    "placeholder": 6,
    "pseudo_code": 6,
    "wrong_on_topic": 2,
}
"""Default grader: answers in the TA's range per category. Measured (benchmarks/labelled.py, docs/benchmarks.md):
121 of 238; a category with ten or more hits keeps one answer of slack for float rounding across CPUs. Since a point
the judge reads as stated and also denied keeps its credit (ScoringConfig.hedge_credit), one more good and one more
partial answer land in range (20 and 16 measured), and so do two exemplars that state a point before denying it: q3.a's
wrong one and q2.b's partial one: raw 0.25 -> 0.55 and 0.51 -> 0.70. Their parts' calibration lines move, and two paraphrases and one misconception answer
leave the range (paraphrase 6, was 8; misconception 4, was 5). With the reference answer setting the judge's scale
(ScoringConfig.reference_yardstick) 121: q3.a's good answer and one paraphrase land in range (good 21, paraphrase 7).
Since pseudo-code and one-line derivations are not keyword lists (lexical.relations) 127: pseudo-code 3 -> 6, concise
7 -> 9, bullets flattened 7 -> 8."""
NO_JUDGE_FLOORS: dict[str, int] = {
    "bullets_flattened": 5,
    "concise": 9,
    "copy_question": 7,
    "good": 23,
    "keyword_list": 12,
    "long_everything": 3,
    "misconception": 4,
    "negation": 0,
    "off_topic": 6,
    "other_language": 6,
    "paraphrase": 6,
    "partial": 12,
    "placeholder": 6,
    "pseudo_code": 4,
    "wrong_on_topic": 1,
}
"""--no-judge: similarity only. Measured: 107 of 238 (105 before the off-topic test kept to other topics,
ScoringConfig.distinct_topic: one long answer and one off-topic answer fewer; 103 before pseudo-code stopped counting
as a keyword list: pseudo-code 1 -> 4, concise 8 -> 9)."""


def _grade_labelled(indexes, encoder, judge) -> list:
    """(item, assessment, fraction of the part's points, in the TA's range) for every labelled answer."""
    items = yaml.safe_load((DATA / "labelled_answers.yaml").read_text())
    answers = [(item["part"], item["answer"]) for item in items]
    results = []
    for item, assessment in zip(items, assess_answers(indexes, answers, encoder, judge, ScoringConfig().window)):
        index = indexes[item["part"]]
        points, _ = final_points(index, assessment)
        fraction = points / index.part.max_points
        low = item["expect"].get("min_fraction", 0.0)
        high = item["expect"].get("max_fraction", 1.0)
        flagged = item.get("expect_flag") is None or item["expect_flag"] in assessment.flags
        results.append((item, assessment, fraction, flagged and low - 1e-9 <= fraction <= high + 1e-9))
    return results


@pytest.fixture(scope="module")
def labelled(written_grader):
    """The default grader (similarity finds the evidence, the judge decides), as `grader grade` runs it."""
    return _grade_labelled(written_grader.indexes, written_grader.encoder, written_grader.judge)


@pytest.fixture(scope="module")
def labelled_no_judge(rubrics, encoder):
    """`grader grade --no-judge`: similarity only (its exemplar calibrations are fitted without the judge too)."""
    return _grade_labelled(build_indexes(rubrics, encoder, ScoringConfig()), encoder, None)


def _in_range(results: list, category: str) -> tuple[int, list[str]]:
    rows = [r for r in results if r[0]["category"] == category]
    misses = [f"{r[0]['part']}: {r[2]:.2f} not in {r[0]['expect']}" for r in rows if not r[3]]
    return len(rows) - len(misses), misses


def test_labelled_set_covers_every_failure_mode(labelled):
    counts: dict[str, int] = defaultdict(int)
    for item, *_ in labelled:
        counts[item["category"]] += 1
    assert set(counts) == set(FLOORS) == set(NO_JUDGE_FLOORS)
    assert all(n >= 6 for n in counts.values()), counts
    assert sum(counts.values()) >= 200


@pytest.mark.parametrize("category", sorted(FLOORS))
def test_category_lands_in_the_ta_range(labelled, category):
    hits, misses = _in_range(labelled, category)
    assert hits >= FLOORS[category], misses


@pytest.mark.parametrize("category", sorted(NO_JUDGE_FLOORS))
def test_category_lands_in_the_ta_range_without_the_judge(labelled_no_judge, category):
    hits, misses = _in_range(labelled_no_judge, category)
    assert hits >= NO_JUDGE_FLOORS[category], misses


def test_the_judge_tells_right_from_on_topic(labelled, labelled_no_judge):
    """Why the judge is on by default: wrong and negated answers fall, and more answers land in range."""
    for category in ("negation", "wrong_on_topic"):
        assert _in_range(labelled, category)[0] > _in_range(labelled_no_judge, category)[0], category
    assert sum(r[3] for r in labelled) > sum(r[3] for r in labelled_no_judge)


def _reference_fractions(indexes, encoder, judge) -> dict[str, float]:
    answers = [(pid, index.part.reference_answer) for pid, index in indexes.items()]
    return {
        pid: final_points(indexes[pid], a)[0] / indexes[pid].part.max_points
        for (pid, _), a in zip(answers, assess_answers(indexes, answers, encoder, judge, ScoringConfig().window))
    }


def test_reference_answers_earn_most_of_their_points(written_grader, rubrics):
    """A part's own reference answer, graded as a student's, should earn at least 95% of the part.

    Measured: 18 of 20 parts do, 95.1% of the points on average (16 and 92.7% before the reference
    answer set the judge's scale, ScoringConfig.reference_yardstick; q3.a's goes from 54% to 95%).
    q2.b and q10.a still pay for a misconception the judge reads into a sentence that does not
    state it ("every convolution is a fully-connected layer" entailing "a convolution is more
    expressive"). q9.a's "the ELBO is a lower bound" no longer pays for "an upper bound": the words
    show the opposite. This floor keeps that from getting worse; docs/benchmarks.md lists the parts.
    """
    encoder, judge = written_grader.encoder, written_grader.judge
    fractions = _reference_fractions(written_grader.indexes, encoder, judge)
    assert sum(f >= 0.95 for f in fractions.values()) >= 18, fractions
    assert fractions["q9.a"] >= 0.95 and fractions["q3.a"] >= 0.95, fractions
    assert sum(fractions.values()) / len(fractions) >= 0.95, fractions
    without = _reference_fractions(
        build_indexes(rubrics, encoder, ScoringConfig(reference_yardstick=False), judge), encoder, judge
    )
    assert without["q3.a"] < 0.6 and sum(f >= 0.95 for f in without.values()) < 18, without


class SteadyJudge:
    """Reads every pair with the same P(entailment); the rest is neutral."""

    def __init__(self, entailment: float) -> None:
        self.entailment = entailment

    def classify(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.array([[self.entailment, 1.0 - self.entailment, 0.0]] * len(pairs))


@pytest.mark.parametrize(
    ("reached", "credit"),
    [(None, 2 / 3), (0.40, 1.0), (0.30, 2 / 3), (0.95, 2 / 3)],
)
def test_a_key_point_earns_full_credit_at_the_entailment_the_reference_answer_reaches(written_grader, reached, credit):
    """Entailment 0.4 earns 2/3 of a point on the shipped scale (0.2 -> 0.5). Where the reference answer itself
    reaches only 0.4, 0.4 is full credit; below halfway (0.35) the judge does not read the point even there and
    the scale stays; the reference never raises the bar above entail_high."""
    base = written_grader.indexes["q3.a"]
    n = len(base.part.key_points)
    reading = None if reached is None else ReferenceReading(key_point_entailment=[reached] * n, word_misfires={})
    index = replace(base, reference_reading=reading)
    answer = "Momentum helps on a convex loss: it damps the zig-zag in narrow valleys and speeds up convergence."
    assessment = judged(index, assess(index, answer, written_grader.encoder), SteadyJudge(0.4))
    for kp in assessment.key_points:
        assert kp.points == pytest.approx(credit * kp.max_points, abs=1e-3), kp


def test_a_reference_answer_the_scorer_cannot_read_leaves_the_scale_as_it_is(encoder):
    """A reference answer held for a TA (here in German) gives the judge nothing to read: the part still
    indexes, and its key point keeps the shipped scale (full credit at entail_high)."""
    from grader.evaluation.dataset import rubric_set

    german = "Die Glühbirne leuchtet, weil der Stromkreis geschlossen ist und Strom durch sie fließt."
    rubrics = rubric_set([_one_point_rubric("bulb", "Why does the bulb light?", german)])
    index = build_indexes(rubrics, encoder, ScoringConfig(), SteadyJudge(0.4))["bulb.a"]
    assert index.reference_reading is not None
    assert index.reference_reading.key_point_entailment == [0.0] and index.reference_reading.word_misfires == {}
    answer = "The bulb lights because the circuit is closed, so current flows through it."
    (point,) = judged(index, assess(index, answer, encoder), SteadyJudge(0.4)).key_points
    assert point.points == pytest.approx(2 / 3, abs=1e-3)


def test_a_sentence_of_the_reference_answer_the_word_check_misreads_denies_nothing(written_grader):
    """q3.a's reference says "it does not make plain gradient descent fast" (convexity does not): the word check
    reads that as denying "momentum makes gradient descent converge faster". A student who says the same is not
    denied the point by it; a student who says momentum does not help still is (the test above)."""
    index = written_grader.indexes["q3.a"]
    assert index.reference_reading is not None
    misread = {index.part.key_points[k].id for k in index.reference_reading.word_misfires}
    assert "helps" in misread
    answer = "Yes. Convexity only guarantees one global minimum; it does not make plain gradient descent fast."
    kp_ids = [kp.id for kp in index.part.key_points]
    denied = {kp_ids[k] for k in assess(index, answer, written_grader.encoder).lexical_denials}
    assert not denied & misread, denied
    plain = replace(index, reference_reading=None)
    assert misread & {kp_ids[k] for k in assess(plain, answer, written_grader.encoder).lexical_denials}


@pytest.mark.parametrize("doubt", [0.0, 0.5, 1.0])
def test_a_grade_half_way_up_the_scale_is_the_least_sure(written_grader, doubt):
    """The hand-made confidence (no judge; one side of the blend): a grade between a pass and a fail is the one a
    TA's reading most often moves, so the review queue sees it first."""
    index = written_grader.indexes["q3.a"]
    index = replace(index, config=index.config.model_copy(update={"midrange_doubt": doubt}))
    top = index.part.max_points
    assessment = Assessment(part_id="q3.a", raw_score=0.5, key_points=[], misconceptions=[], confidence=0.8)
    at = {f: graded_confidence(index, assessment, f * top)[0] for f in (0.0, 0.25, 0.5, 0.75, 1.0)}
    assert at[0.0] == at[1.0] == 0.8
    assert at[0.5] == pytest.approx(0.8 * (1 - doubt), abs=1e-3)
    assert at[0.25] == at[0.75] and (at[0.5] < at[0.25] < at[0.0] if doubt else set(at.values()) == {0.8})


def test_an_answer_in_another_language_is_held_for_a_ta(written_grader):
    answer = (
        "Ja, Momentum hilft auch bei einer konvexen Verlustfunktion: es dämpft die Oszillationen in engen "
        "Tälern und beschleunigt die Konvergenz, weil sich die Gradienten in einer Richtung aufsummieren."
    )
    (result,) = written_grader.score_answers([("q3.a", answer)])
    assert "other_language" in result.flags and result.needs_review and "German" in result.needs_review
    assert result.confidence == 0.0 and "keyword_list" not in result.flags
    assert any("TA will grade" in line for line in result.feedback)


@pytest.mark.parametrize("placeholder", ["YOUR ANSWER HERE", "_YOUR ANSWER HERE_", "*Your answer here*", "**TODO**"])
def test_an_untouched_placeholder_is_no_answer(written_grader, placeholder):
    (result,) = written_grader.score_answers([("q3.a", placeholder)])
    assert result.status == "missing" and result.points == 0 and result.flags == ["no_answer"]


def test_a_contradiction_is_quoted_back(written_grader):
    """A sentence that says the opposite of a key point earns nothing for it, and the student reads it back."""
    index = written_grader.indexes["q3.a"]
    answer = "No. Momentum does not help on a convex loss, because convex functions have a single minimum."
    assessment = judged(index, assess(index, answer, written_grader.encoder), written_grader.judge)
    denied = [kp for kp in assessment.key_points if {"contradicts", "hedged"} & set(kp.flags)]
    assert denied and all(kp.points == 0 for kp in denied)
    lines = "\n".join(written_feedback(index.part, assessment))
    assert "says the opposite" in lines and "Momentum does not help" in lines
    assert final_points(index, assessment)[0] <= 0.15 * index.part.max_points


class ScriptedJudge:
    """Reads a sentence that starts with a given phrase as entailing or contradicting every rubric text."""

    def __init__(self, entails: str, contradicts: str) -> None:
        self.entails, self.contradicts = entails, contradicts

    def classify(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        def row(student: str) -> list[float]:
            if student.startswith(self.entails):
                return [0.9, 0.05, 0.05]
            if student.startswith(self.contradicts):
                return [0.05, 0.05, 0.9]
            return [0.05, 0.9, 0.05]

        return np.array([row(student) for _, student in pairs])


HEDGE = "Momentum slows convergence, even for a convex function. Momentum speeds up gradient descent on a convex loss."


@pytest.mark.parametrize(("hedge_credit", "kept"), [(1.0, 1.0), (0.5, 0.5), (0.0, 0.0)])
def test_a_point_stated_and_denied_by_the_judge_keeps_its_credit_and_is_flagged(written_grader, hedge_credit, kept):
    """One sentence states the point, the judge reads another as denying it: hedge_credit says how much
    credit stays, the point is flagged hedged and the student is asked to check the denying sentence."""
    base = written_grader.indexes["q3.a"]
    index = replace(base, config=base.config.model_copy(update={"hedge_credit": hedge_credit}))
    judge = ScriptedJudge("Momentum speeds", "Momentum slows")
    assessment = judged(index, assess(index, HEDGE, written_grader.encoder), judge)
    helps = next(kp for kp in assessment.key_points if kp.id == "helps")
    assert helps.flags == ["hedged"] and helps.points == pytest.approx(kept * helps.max_points)
    assert helps.evidence and helps.evidence.startswith("Momentum slows convergence")
    lines = "\n".join(written_feedback(index.part, assessment))
    assert ("may be read as saying the opposite" in lines) == (kept >= 0.5)
    assert ("commit to one" in lines) == (kept < 0.5) and "Momentum slows" in lines


def test_a_negation_the_words_show_costs_the_point_whatever_else_the_judge_reads(written_grader):
    """The lexical denial is not a hedge: a sentence that negates the point in so many words voids it,
    even when the judge reads another sentence as stating it."""
    index = written_grader.indexes["q3.a"]
    answer = "Momentum does not help on a convex loss. Momentum speeds up gradient descent on a convex loss."
    judge = ScriptedJudge("Momentum speeds", "Momentum slows")
    assessment = judged(index, assess(index, answer, written_grader.encoder), judge)
    helps = next(kp for kp in assessment.key_points if kp.id == "helps")
    assert set(helps.flags) & {"hedged", "contradicts"} and helps.points == 0


@pytest.mark.parametrize(
    ("answer", "charged"),
    [
        ("Some ELBO is a lower bound on log p(x), because the KL term is never negative.", False),
        ("Some ELBO is an upper bound on log p(x), because the KL term is never negative.", True),
    ],
)
def test_a_misconception_the_words_contradict_is_not_charged(written_grader, answer, charged):
    """A judge that reads every sentence as stating q9.a's "upper bound" misconception (and no key point):
    one that says "lower bound" in the same words does not pay for it, one that says "upper bound" does."""
    index = written_grader.indexes["q9.a"]
    (wrong,) = [m for m in index.part.misconceptions if m.id == "upper_bound"]
    wordings = {wrong.text, *wrong.paraphrases}

    class MisreadingJudge:
        def classify(self, pairs: list[tuple[str, str]]) -> np.ndarray:
            return np.array([[0.95, 0.04, 0.01] if rubric in wordings else [0.05, 0.9, 0.05] for rubric, _ in pairs])

    assessment = judged(index, assess(index, answer, written_grader.encoder), MisreadingJudge())
    assert any(m.id == "upper_bound" and m.penalty > 0 for m in assessment.misconceptions) == charged


def test_same_input_same_grade(written_grader):
    index = written_grader.indexes["q3.a"]
    answer = "Yes. Momentum damps the zig-zag in narrow valleys, so it converges faster even on a convex loss."
    first = judged(index, assess(index, answer, written_grader.encoder), written_grader.judge)
    again = judged(index, assess(index, answer, written_grader.encoder), written_grader.judge)
    assert first == again


def test_one_judge_call_for_a_batch_grades_as_a_call_per_answer(written_grader):
    """assess_answers judges every pair of a batch in one call, sorted by length across answers: the
    grades and flags are those of judging each answer on its own, and the judge's clock counts it."""
    indexes, encoder, judge = written_grader.indexes, written_grader.encoder, written_grader.judge
    items = yaml.safe_load((DATA / "labelled_answers.yaml").read_text())
    answers = [(item["part"], item["answer"]) for item in items if item["part"] in ("q3.a", "q9.a")][:6]
    window = ScoringConfig().window
    saved = dict(judge._memo)  # the session's other tests keep what was judged before
    try:
        judge._memo.clear()
        alone = [assess_answers(indexes, [answer], encoder, judge, window)[0] for answer in answers]
        judge._memo.clear()
        clock, forwarded = judge.classify_s, judge.forward_pairs
        together = assess_answers(indexes, answers, encoder, judge, window)
        assert judge.forward_pairs > forwarded and judge.classify_s > clock
    finally:
        judge._memo.update(saved)
    for (part_id, _), a, b in zip(answers, alone, together):
        index = indexes[part_id]
        assert a.flags == b.flags
        assert final_points(index, a)[0] == pytest.approx(final_points(index, b)[0], abs=0.01)


def _one_point_rubric(rubric_id: str, question: str, reference: str):
    from grader.rubric import KeyPoint, Part, Rubric

    point = KeyPoint(id="kp1", label="the point", text=reference, points=1.0)
    part = Part(id="a", kind="written", prompt=question, max_points=1.0, reference_answer=reference, key_points=[point])
    return Rubric(id=rubric_id, title=rubric_id, parts=[part])


def test_off_topic_means_another_topic_not_a_neighbouring_question(encoder):
    """Two questions about the same circuit share their words: an answer to one that also names the other's
    bulb is on topic. An answer about photosynthesis is not, and names the question it belongs to."""
    from grader.evaluation.dataset import rubric_set

    rubrics = rubric_set(
        [
            _one_point_rubric("bulb_a", "Why does bulb A light?", "Bulb A is in a closed path with the battery."),
            _one_point_rubric(
                "bulb_c", "Why does bulb C light?", "Bulb C is in a closed path with the battery, through bulb A."
            ),
            _one_point_rubric(
                "leaves",
                "What do plants need for photosynthesis?",
                "Plants need sunlight, water and carbon dioxide to make sugar.",
            ),
        ]
    )
    neighbour = "Bulb C is in a closed path with the battery, through bulb A."
    elsewhere = "Plants need sunlight, water and carbon dioxide to make sugar."
    index = build_indexes(rubrics, encoder, ScoringConfig())["bulb_a.a"]
    assert "off_topic" not in assess(index, neighbour, encoder).flags
    wrong = assess(index, elsewhere, encoder)
    assert "off_topic" in wrong.flags and wrong.off_topic_question == "leaves.a"
    # a bare answer word has no topic of its own: "Yes." is not off topic, and does not make a two-sentence answer so
    assert "off_topic" not in assess(index, "Yes. " + neighbour, encoder).flags
    assert "off_topic" not in assess(index, "Yes.", encoder).flags
    # an answer is off topic when most of its words are: one short aside in two sentences does not make it so
    from grader.written.scoring import _read, answer_sentences

    aside = (
        "Bulb A lights because it sits in a closed path with the battery, so current leaves the battery, flows "
        "through bulb A and returns to the battery. Plants need sunlight and water."
    )
    reading = _read(index, answer_sentences(aside), encoder)
    assert list(reading.off_topic[: reading.n_sentences]) == [False, True]
    assert "off_topic" not in assess(index, aside, encoder).flags
    # the test as it was (every other question's sentences count) called the neighbour off topic
    old = build_indexes(rubrics, encoder, ScoringConfig(distinct_topic=1.01))["bulb_a.a"]
    assert "off_topic" in assess(old, neighbour, encoder).flags


DENSITY_PROMPT = (
    "Oil and corn syrup are layered in a tall, thin container. What does the layering tell you about the density of "
    "the oil compared to the corn syrup?"
)
FLOATS = "Oil is less dense than corn syrup, so the oil floats on the syrup."
"""A key point that adds to the question's words (the density part's own point is in them)."""


def _density_part(encoder, key_point: str = "Oil is less dense than corn syrup.", **config):
    """A one-point part whose answer is in the question's own words: which of the two is denser."""
    from grader.evaluation.dataset import rubric_set
    from grader.rubric import KeyPoint, Part, Rubric

    part = Part(
        id="a",
        kind="written",
        prompt=DENSITY_PROMPT,
        max_points=1,
        reference_answer=key_point,
        key_points=[KeyPoint(label="density", text=key_point, points=1)],
    )
    rubrics = rubric_set([Rubric(id="layers", title="layers", parts=[part])])
    return build_indexes(rubrics, encoder, ScoringConfig(**config))["layers.a"]


class _QuestionAwareJudge:
    """Reads every answer unit as stating every key point (P 0.9); the question itself as stating it with P `asked`."""

    def __init__(self, prompt: str, asked: float) -> None:
        self.prompt, self.asked = prompt, asked

    def classify(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.array(
            [[self.asked, 1 - self.asked, 0.0] if text == self.prompt else [0.9, 0.1, 0.0] for _, text in pairs]
        )


@pytest.mark.parametrize(("asked", "earned"), [(0.05, True), (0.9, False)])
def test_an_answer_in_the_questions_words_earns_what_the_question_does_not_state(encoder, asked, earned):
    """ "The oil is less dense than the corn syrup" uses only the question's content words, yet it answers it. The
    judge reads such a restatement, and it earns a point only beyond what the judge reads the question itself as
    stating: a judge that reads the question as stating the point gives the restatement nothing (here the point says
    more than the question: see the next test for a point in the question's words)."""
    from grader.written import lexical

    index = _density_part(encoder, FLOATS)
    assert not lexical.copies_question(FLOATS, index.prompt)
    answer = "The oil is less dense than the corn syrup."
    assert lexical.copies_question(answer, index.prompt)
    assessment = judged(index, assess(index, answer, encoder), _QuestionAwareJudge(index.prompt, asked))
    assert (assessment.key_points[0].points >= 0.5) == earned
    assert ("copies_question" in assessment.flags) != earned  # credited: it answered, so it is not called a copy


@pytest.mark.parametrize("answer_in_question", [True, False])
def test_a_point_in_the_questions_words_is_earned_by_restating_it(encoder, answer_in_question):
    """When every key point is in the question's own words, the question holds the answer ("What was Sam's
    response?" after the story of Sam slapping a mosquito; the rubric's own reference restates it): the question's
    discount would give even the reference answer nothing, so a restatement keeps what the judge reads in it."""
    from grader.written import lexical

    index = _density_part(encoder, answer_in_question=answer_in_question)
    assert lexical.copies_question(index.part.key_points[0].text, index.prompt)
    for answer in ("The oil is less dense than the corn syrup.", index.part.reference_answer):
        assessment = judged(index, assess(index, answer, encoder), _QuestionAwareJudge(index.prompt, 0.9))
        assert assessment.key_points[0].matched == answer_in_question
        assert ("copies_question" in assessment.flags) != answer_in_question
    # the other answer in the question's words: a judge that reads every sentence as stating the point is overruled
    swapped = judged(index, assess(index, "The oil is more dense than the corn syrup.", encoder),
                     _QuestionAwareJudge(index.prompt, 0.9))
    assert not swapped.key_points[0].matched
    # a question asked back still states nothing
    asked_back = judged(index, assess(index, "Is the oil less dense than the corn syrup?", encoder),
                        _QuestionAwareJudge(index.prompt, 0.9))
    assert asked_back.key_points[0].points == 0


def test_a_restatement_earns_nothing_without_judge_restatements(encoder):
    index = _density_part(encoder, judge_restatements=False)
    answer = "The oil is less dense than the corn syrup."
    assessment = judged(index, assess(index, answer, encoder), _QuestionAwareJudge(index.prompt, 0.05))
    assert assessment.key_points[0].points == 0
    assert "copies_question" in assessment.flags


def test_a_question_asked_back_is_never_read_as_an_answer(encoder):
    index = _density_part(encoder)
    asked_back = "Is the oil less dense than the corn syrup?"
    assessment = assess(index, asked_back, encoder)
    assert not [item for item in assessment.judge_items if item.target[0] == "kp"]
    assert judged(index, assessment, _QuestionAwareJudge(index.prompt, 0.05)).key_points[0].points == 0


def test_the_shipped_judge_credits_a_comparison_answered_in_the_questions_words(encoder, judge):
    index = _density_part(encoder)
    right = judged(index, assess(index, "The oil is less dense than the corn syrup.", encoder), judge)
    wrong = judged(index, assess(index, "The oil is more dense than the corn syrup.", encoder), judge)
    assert right.key_points[0].matched and not right.flags
    assert not wrong.key_points[0].matched and wrong.key_points[0].points < right.key_points[0].points
