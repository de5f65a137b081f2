"""The cross-encoder judge (grader-judge-v2): entailment, neutral, contradiction, as a user would notice.

The sentence pairs are new (not from the training data, the course rubrics or the labelled
set) and on topics the course does not cover.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.artifacts import MODELS_DIR, BaseMismatch, bundled_base_dir
from grader.written.judge import CONTRADICT, ENTAIL, META_FILE, NEUTRAL, Judge, JudgeNotFound, find_judge

NAME = "grader-judge-v2"
ARTIFACT = MODELS_DIR / NAME

needs_artifact = pytest.mark.skipif(not (ARTIFACT / META_FILE).is_file(), reason=f"{ARTIFACT} not built (training/train_judge.py)")

# (rubric text, a paraphrase stating the same claim, the claim denied, an unrelated answer)
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
    with pytest.raises(JudgeNotFound, match="no judge model"):
        Judge.load("grader-judge-does-not-exist")
    assert find_judge(tmp_path) is None


@needs_artifact
def test_artifact_is_small_and_says_how_it_was_made() -> None:
    size = sum(f.stat().st_size for f in ARTIFACT.iterdir() if f.is_file())
    assert size < 30_000_000
    meta = json.loads((ARTIFACT / META_FILE).read_text())
    assert meta["base"]["name"] == "all-MiniLM-L6-v2" and len(meta["base"]["weights_sha256"]) == 64
    assert meta["labels"] == ["entailment", "neutral", "contradiction"]
    assert isinstance(meta["hyper_parameters"]["seed"], int) and meta["data"]["files"]


@needs_artifact
def test_identity_names_the_model_and_its_weights(judge: Judge) -> None:
    name, digest = judge.identity.split("@")
    assert name == NAME and len(digest) == 12


ANTONYM_MISS = pytest.mark.xfail(strict=True, reason="a bare antonym swap (strengthens/weakens) reads as entailment: "
                                  "a known weakness of the shipped judge, listed in docs/benchmarks.md")


@needs_artifact
@pytest.mark.parametrize("case", [pytest.param(c, marks=ANTONYM_MISS) if "weakens" in c[2] else c for c in CASES],
                         ids=[c[0].split()[0].lower() for c in CASES])
def test_entailment_contradiction_and_neutral_are_told_apart(judge: Judge, case: tuple[str, str, str, str]) -> None:
    ref, para, neg, unrelated = case
    p_para, p_neg, p_unrel = judge.classify([(ref, para), (ref, neg), (ref, unrelated)])
    assert np.allclose([p_para.sum(), p_neg.sum(), p_unrel.sum()], 1.0, atol=1e-5)
    assert p_neg.argmax() == CONTRADICT, (neg, p_neg)
    # a free paraphrase is the judge's weak spot: it must at least rank above the denial and the unrelated text
    assert p_para[ENTAIL] > max(p_neg[ENTAIL], p_unrel[ENTAIL]), (para, p_para)
    # unrelated text never entails; the judge may still call it contradicting (an SNLI habit), which is
    # why the scorer reads contradiction only from units similar to the key point
    assert p_unrel[ENTAIL] < 0.1 and p_unrel[NEUTRAL] > 0.2, (unrelated, p_unrel)


@needs_artifact
def test_most_paraphrases_are_entailed(judge: Judge) -> None:
    probs = judge.classify([(ref, para) for ref, para, _, _ in CASES])
    # measured: 3 of the 5 (free paraphrases are the judge's weak spot, docs/benchmarks.md)
    assert int(((probs[:, ENTAIL] > 0.5) & (probs.argmax(axis=1) == ENTAIL)).sum()) >= 3, probs


@needs_artifact
def test_scores_are_deterministic_and_memoised(judge: Judge) -> None:
    pairs = [(ref, para) for ref, para, _, _ in CASES]
    before = judge.forward_pairs
    first = judge.classify(pairs)
    again = judge.classify(list(reversed(pairs)) + pairs[:2])  # all memo hits: nothing runs
    assert judge.forward_pairs <= before + len(pairs)
    after = judge.forward_pairs
    judge.classify(pairs)
    assert judge.forward_pairs == after
    assert np.array_equal(again, np.concatenate([first[::-1], first[:2]]))
    fresh = Judge.load(NAME, device="cpu")  # a new instance recomputes the same numbers
    assert np.allclose(fresh.classify(pairs), first, atol=1e-5)  # batches padded alike up to float rounding
    assert judge.classify([]).shape == (0, 3)


@needs_artifact
def test_a_rerun_with_the_same_cache_judges_nothing_again(tmp_path: Path) -> None:
    from grader.cache import Cache

    pairs = [(ref, para) for ref, para, _, _ in CASES]
    cache = Cache(tmp_path)
    try:
        first_judge = Judge.load(NAME, device="cpu")
        first_judge.store = cache
        first = first_judge.classify(pairs)
        second = Judge.load(NAME, device="cpu")  # as a new process would start
        second.store = cache
        assert np.array_equal(second.classify(pairs), first)  # the very same numbers, from the store
        assert second.forward_pairs == 0
    finally:
        cache.close()


@needs_artifact
def test_cached_models_keep_vectors_and_probabilities_on_disk(tmp_path: Path, judge: Judge) -> None:
    """What the benchmarks load (grader.written.cached_models): a rerun reads both models' outputs from disk."""
    from grader.cache import Cache
    from grader.written import cached_models

    pairs = [("Momentum damps oscillations in narrow valleys.", "Momentum averages past gradients, a cached-models check.")]
    text = "An answer only this test encodes: cached models keep their vectors."
    encoder, shared = cached_models(tmp_path, judge=NAME)
    try:
        assert shared is judge  # the process's one judge, now backed by the cache
        probabilities = shared.classify(pairs)
        vector = encoder.encode([text])[0]
        reader = Cache(tmp_path)
        assert np.allclose(reader.get_vectors(encoder.identity, [text])[text], vector)
        second = Judge.load(NAME, device="cpu")  # as a new process would start
        second.store = reader
        assert np.array_equal(second.classify(pairs), probabilities) and second.forward_pairs == 0
        reader.close()
    finally:
        shared.store = None
    assert cached_models(None, judge=None)[1] is None


@needs_artifact
def test_long_student_text_is_truncated_not_rejected(judge: Judge) -> None:
    ref, para, _, _ = CASES[0]
    long = para + " " + " ".join(["Filler words about the weather and the garden."] * 80)
    (p,) = judge.classify([(ref, long)])
    assert np.isclose(p.sum(), 1.0)


@needs_artifact
def test_a_wrong_base_is_rejected(tmp_path: Path) -> None:
    fake_base = tmp_path / "base"
    shutil.copytree(bundled_base_dir(), fake_base, ignore=shutil.ignore_patterns("model.safetensors"))
    (fake_base / "model.safetensors").write_bytes(b"not the weights the judge was trained on")
    with pytest.raises(BaseMismatch):
        Judge.load(ARTIFACT, base_dir=fake_base)


@needs_artifact
def test_graders_in_one_process_share_one_loaded_judge(judge: Judge, rubrics) -> None:
    from grader.pipeline import GradeOptions, Grader
    from grader.written import load_judge

    assert load_judge(NAME) is judge  # the session's judge: no second load, no second memo
    with Grader(rubrics, GradeOptions(run_code=False)) as grader:
        assert grader.judge is judge
