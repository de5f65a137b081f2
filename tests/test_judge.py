"""The cross-encoder judge (models/grader-judge-v1): behaviour a user would notice.

The sentence pairs are new (not from the training data, the course rubrics or the labelled
set) and on topics the course does not cover.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.finetuned import MODELS_DIR, BaseMismatch, bundled_base_dir
from grader.judge import META_FILE, Judge, JudgeNotFound, find_judge

NAME = "grader-judge-v1"
ARTIFACT = MODELS_DIR / NAME

needs_artifact = pytest.mark.skipif(not (ARTIFACT / META_FILE).is_file(), reason=f"{ARTIFACT} not built (training/train_judge.py)")

# (reference, a paraphrase stating the same claim, the reference denied, an unrelated answer)
CASES = [
    ("Bees pollinate flowers while collecting nectar.",
     "While bees gather nectar they carry pollen from flower to flower.",
     "Bees do not pollinate flowers while collecting nectar.",
     "The Great Wall of China was built over many centuries."),
    ("A thermostat switches the heater off when the room is warm enough.",
     "Once the room reaches the set temperature, the thermostat turns the heating off.",
     "A thermostat does not switch the heater off when the room is warm enough.",
     "Penguins live mostly in the southern hemisphere."),
    ("Copper is used in electrical wires because it conducts electricity well.",
     "Wires are made of copper since electric current flows through it easily.",
     "Copper is not used in electrical wires because it conducts electricity poorly.",
     "Shakespeare wrote plays and sonnets in English."),
    ("Ice floats on water because it is less dense than liquid water.",
     "Frozen water is lighter per volume than liquid water, so it stays on top.",
     "Ice does not float on water because it is denser than liquid water.",
     "A violin has four strings tuned in fifths."),
    ("Regular exercise strengthens the heart muscle.",
     "If you work out often, your heart muscle gets stronger.",
     "Regular exercise weakens the heart muscle.",
     "Tokyo is the capital city of Japan."),
]


def test_missing_model_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JudgeNotFound, match="no judge model"):
        Judge.load(tmp_path / "nowhere")
    with pytest.raises(JudgeNotFound, match="train_judge.py"):
        Judge.load("grader-judge-does-not-exist")
    assert find_judge(tmp_path) is None


@needs_artifact
def test_artifact_is_small_and_names_its_base() -> None:
    size = sum(f.stat().st_size for f in ARTIFACT.iterdir() if f.is_file())
    assert size < 10_000_000
    meta = json.loads((ARTIFACT / META_FILE).read_text())
    assert meta["base"]["name"] == "all-MiniLM-L6-v2" and len(meta["base"]["weights_sha256"]) == 64
    assert meta["layers_replaced"] and all(0 <= i < 6 for i in meta["layers_replaced"])
    assert isinstance(meta["seed"], int)


@needs_artifact
def test_identity_names_the_model_and_its_weights(judge: Judge) -> None:
    name, digest = judge.identity.split("@")
    assert name == NAME and len(digest) == 12


@needs_artifact
def test_paraphrase_beats_negation_and_unrelated(judge: Judge) -> None:
    pairs = [(ref, other) for ref, *others in CASES for other in others]
    probs = judge.score(pairs).reshape(len(CASES), 3)
    assert ((probs >= 0.0) & (probs <= 1.0)).all()
    for (ref, para, neg, unrelated), (p_para, p_neg, p_unrel) in zip(CASES, probs):
        assert p_para > p_neg, f"{neg!r} ({p_neg:.3f}) scores >= paraphrase {para!r} ({p_para:.3f})"
        assert p_para > p_unrel, f"{unrelated!r} ({p_unrel:.3f}) scores >= paraphrase {para!r} ({p_para:.3f})"
    assert probs[:, 2].max() < 0.3, probs[:, 2]  # unrelated answers are clearly rejected
    assert probs[:, 0].mean() - probs[:, 1].mean() > 0.3, probs


@needs_artifact
def test_scores_are_deterministic_and_memoised(judge: Judge) -> None:
    pairs = [(ref, para) for ref, para, _, _ in CASES]
    judge.clear_memo()
    before = judge.forward_pairs
    first = judge.score(pairs)
    assert judge.forward_pairs == before + len(pairs)
    again = judge.score(list(reversed(pairs)) + pairs[:2])  # all memo hits: nothing runs
    assert judge.forward_pairs == before + len(pairs)
    assert np.array_equal(again, np.concatenate([first[::-1], first[:2]]))
    fresh = Judge.load(NAME, device="cpu")  # a new instance recomputes the same numbers
    assert np.array_equal(fresh.score(pairs), first)
    assert judge.score([]).shape == (0,)


@needs_artifact
def test_a_rerun_with_the_same_cache_judges_nothing_again(judge: Judge, tmp_path: Path) -> None:
    from grader.cache import Cache

    pairs = [(ref, para) for ref, para, _, _ in CASES]
    cache = Cache(tmp_path)
    judge.clear_memo()
    judge.store = cache
    try:
        first = judge.score(pairs)
        judge.clear_memo()  # as a new process would start
        before = judge.forward_pairs
        assert np.array_equal(judge.score(pairs), first)  # the very same numbers, from the store
        assert judge.forward_pairs == before
    finally:
        judge.store = None
        cache.close()


@needs_artifact
def test_long_student_text_is_truncated_not_rejected(judge: Judge) -> None:
    ref, para, _, _ = CASES[0]
    long = para + " " + " ".join(["Filler words about the weather and the garden."] * 80)
    (p,) = judge.score([(ref, long)])
    assert 0.0 <= p <= 1.0


@needs_artifact
def test_a_wrong_base_is_rejected(tmp_path: Path) -> None:
    fake_base = tmp_path / "base"
    shutil.copytree(bundled_base_dir(), fake_base, ignore=shutil.ignore_patterns("model.safetensors"))
    (fake_base / "model.safetensors").write_bytes(b"not the weights the judge was trained on")
    with pytest.raises(BaseMismatch):
        Judge.load(ARTIFACT, base_dir=fake_base)


@needs_artifact
def test_answer_scope_reweighs_the_whole_answer_and_leaves_key_points_alone(judge: Judge, rubrics, encoder) -> None:
    from grader.scoring import ScoringConfig, assess, build_indexes, judge_pairs, judged

    answer = ("Momentum keeps a running average of past gradients, so steps along a consistent direction grow "
              "while oscillating components cancel out. This helps in ravines where plain SGD zig-zags.")
    by_scope = {}
    for scope in ("answer", "key_points"):
        index = build_indexes(rubrics, encoder, ScoringConfig(judge_scope=scope), judge)["q3.a"]
        plain = assess(index, answer, encoder)
        by_scope[scope] = (plain, judged(index, plain, judge), judge_pairs(index, plain))
    plain, with_judge, pairs = by_scope["answer"]
    assert len(pairs) == 1 and pairs[0][1] == plain.whole  # one pair: the reference answer and the whole answer
    assert [kp.points for kp in with_judge.key_points] == [kp.points for kp in plain.key_points]
    assert with_judge.holistic_credit != plain.holistic_credit and with_judge.raw_score != plain.raw_score
    plain_kp, with_judge_kp, pairs_kp = by_scope["key_points"]
    assert len(pairs_kp) > 1  # each key point's evidence too
    assert [kp.points for kp in with_judge_kp.key_points] != [kp.points for kp in plain_kp.key_points]
