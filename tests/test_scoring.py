"""Written-answer scoring on the course rubrics: the known failure modes of similarity grading.

tests/data/labelled_answers.yaml holds answers written for this repo by someone who did
not tune the scorer, each with the fraction of the part's points a careful TA would give
(a range) and a category: good, paraphrase, partial, keyword_list, negation,
copy_question, off_topic, long_everything, misconception. The floors below are how many
of each category must land in the TA's range, with the default grader (similarity plus the
cross-encoder judge reading the whole answer), with `--no-judge` (similarity only) and with
the judge reading every key point too (`judge_scope="key_points"`); they are what each
achieves now, so a change that makes any failure mode worse fails here.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import yaml

from grader.scoring import ScoringConfig, all_answer_texts, assess, build_indexes, final_points, judged

from .conftest import DATA

NO_JUDGE_FLOORS = {  # --no-judge: similarity only (53 of 72)
    "good": 7,
    "paraphrase": 3,
    "partial": 7,
    "keyword_list": 8,
    "negation": 5,
    "copy_question": 7,
    "off_topic": 6,
    "long_everything": 5,
    "misconception": 5,
}
FLOORS = {**NO_JUDGE_FLOORS, "good": 8, "paraphrase": 4}  # the default: the judge reads the whole answer (55 of 72)
KEY_POINTS_FLOORS = {**NO_JUDGE_FLOORS, "paraphrase": 4, "partial": 8}  # judge_scope="key_points" (55 of 72)


def _grade_labelled(indexes, encoder, judge) -> list:
    """(item, assessment, fraction of the part's points, in the TA's range) for every labelled answer."""
    items = yaml.safe_load((DATA / "labelled_answers.yaml").read_text())
    encoder.prime(all_answer_texts(item["answer"] for item in items))
    results = []
    for item in items:
        index = indexes[item["part"]]
        assessment = judged(index, assess(index, item["answer"], encoder), judge)
        points, _ = final_points(index, assessment)
        fraction = points / index.part.max_points
        low = item["expect"].get("min_fraction", 0.0)
        high = item["expect"].get("max_fraction", 1.0)
        results.append((item, assessment, fraction, low - 1e-9 <= fraction <= high + 1e-9))
    return results


@pytest.fixture(scope="module")
def labelled(written_grader):
    """The default grader (similarity + judge), as `grader grade` runs it."""
    return _grade_labelled(written_grader.indexes, written_grader.encoder, written_grader.judge)


@pytest.fixture(scope="module")
def labelled_no_judge(rubrics, encoder):
    """`grader grade --no-judge`: similarity only (its exemplar calibrations are fitted without the judge too)."""
    return _grade_labelled(build_indexes(rubrics, encoder, ScoringConfig()), encoder, None)


def test_labelled_set_covers_every_failure_mode(labelled):
    counts = defaultdict(int)
    for item, *_ in labelled:
        counts[item["category"]] += 1
    assert set(counts) == set(FLOORS)
    assert all(n >= 6 for n in counts.values()), counts


def _in_range(results: list, category: str) -> tuple[int, list[str]]:
    rows = [r for r in results if r[0]["category"] == category]
    misses = [f"{r[0]['part']}: {r[2]:.2f} not in {r[0]['expect']}" for r in rows if not r[3]]
    return len(rows) - len(misses), misses


@pytest.mark.parametrize("category", sorted(FLOORS))
def test_category_lands_in_the_ta_range(labelled, category):
    hits, misses = _in_range(labelled, category)
    assert hits >= FLOORS[category], misses


@pytest.mark.parametrize("category", sorted(NO_JUDGE_FLOORS))
def test_category_lands_in_the_ta_range_without_the_judge(labelled_no_judge, category):
    hits, misses = _in_range(labelled_no_judge, category)
    assert hits >= NO_JUDGE_FLOORS[category], misses


@pytest.fixture(scope="module")
def labelled_key_points(rubrics, encoder, judge):
    """The judge reading each key point's evidence too (judge_scope="key_points", not the default)."""
    config = ScoringConfig(judge_scope="key_points")
    return _grade_labelled(build_indexes(rubrics, encoder, config, judge), encoder, judge)


@pytest.mark.parametrize("category", sorted(KEY_POINTS_FLOORS))
def test_category_lands_in_the_ta_range_with_the_judge_on_every_key_point(labelled_key_points, category):
    hits, misses = _in_range(labelled_key_points, category)
    assert hits >= KEY_POINTS_FLOORS[category], misses


def test_the_judge_grades_the_labelled_set_at_least_as_well(labelled, labelled_no_judge):
    """Why the judge is on by default: no category worse, more answers in the TA's range."""
    for category in FLOORS:
        assert _in_range(labelled, category)[0] >= _in_range(labelled_no_judge, category)[0], category
    assert sum(r[3] for r in labelled) > sum(r[3] for r in labelled_no_judge)


def test_guards_say_why_credit_was_withheld(labelled):
    """Keyword lists, copied questions and off-topic answers are flagged, not just scored low."""
    expected_flag = {"keyword_list": "keyword_list", "copy_question": "copies_question", "off_topic": "off_topic"}
    for item, assessment, _, _ in labelled:
        flag = expected_flag.get(item["category"])
        if flag and flag == "keyword_list":
            assert flag in assessment.flags, item["answer"]


def test_good_answers_outscore_their_failure_modes(labelled):
    """Per part, the best good/paraphrase answer scores above every keyword/negation/copy/off-topic answer.

    Known exception: q9.c, whose negation ("does have trainable parameters, so it is not constant")
    keeps the rubric's count of negations and reads as agreement to the sentence encoder.
    """
    by_part = defaultdict(list)
    for item, _, fraction, _ in labelled:
        by_part[item["part"]].append((item["category"], fraction))
    compared, failed = 0, []
    for part, rows in by_part.items():
        good = [f for c, f in rows if c in ("good", "paraphrase")]
        bad = [f for c, f in rows if c in ("keyword_list", "negation", "copy_question", "off_topic")]
        if good and bad:
            compared += 1
            if max(good) <= max(bad):
                failed.append((part, rows))
    assert compared >= 8
    assert [part for part, _ in failed] == ["q9.c"], failed


def test_same_input_same_grade(written_grader):
    index = written_grader.indexes["q3.a"]
    answer = "Yes. Momentum damps the zig-zag in narrow valleys, so it converges faster even on a convex loss."
    first = assess(index, answer, written_grader.encoder)
    again = assess(index, answer, written_grader.encoder)
    assert first == again


def test_a_sentence_that_denies_one_point_earns_no_other(labelled, written_grader):
    """q10.a's negation ("backpropagation does not multiply the derivatives, so the gradient does
    not shrink ...") is close to the 'product' point too; it earns nothing there, and the student
    is told why instead of being told the point is missing."""
    from grader.feedback import written_feedback

    item, assessment, fraction, _ = next(r for r in labelled if r[0]["part"] == "q10.a" and r[0]["category"] == "negation")
    by_id = {kp.id: kp for kp in assessment.key_points}
    assert by_id["product"].points == 0 and by_id["product"].flags == ["contradicts"]
    assert {"negated"} <= set(by_id["vanishing"].flags)
    assert fraction <= 0.1
    part = written_grader.indexes["q10.a"].part
    lines = "\n".join(written_feedback(part, assessment))
    assert "contradicts another point" in lines
