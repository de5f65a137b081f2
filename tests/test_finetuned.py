"""The fine-tuned encoder (models/grader-minilm-v1): loads offline over the bundled base and reads claims.

The sentence pairs below are new (not from the training data, the course rubrics or the
labelled set) and on topics the course does not cover.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.embedding import Encoder, resolve_model_path
from grader.finetuned import META_FILE, MODELS_DIR, BaseMismatch, bundled_base_dir, load_finetuned, read_meta

NAME = "grader-minilm-v1"
ARTIFACT = MODELS_DIR / NAME

pytestmark = pytest.mark.skipif(not (ARTIFACT / META_FILE).is_file(), reason=f"{ARTIFACT} not built")

# (key point, a paraphrase stating the same claim, the key point denied with the same words)
NEGATED = [
    ("Plants release oxygen during photosynthesis.",
     "During photosynthesis oxygen is given off by the plant.",
     "Plants do not release oxygen during photosynthesis."),
    ("The Pacific is the largest ocean on Earth.",
     "No ocean on the planet is bigger than the Pacific.",
     "The Pacific is not the largest ocean on Earth."),
    ("Vaccines train the immune system to recognise a pathogen.",
     "A vaccine teaches the body's defences to identify the germ.",
     "Vaccines do not train the immune system to recognise a pathogen."),
    ("Yeast makes bread dough rise by producing carbon dioxide.",
     "The dough expands because yeast gives off CO2 gas.",
     "Yeast does not make bread dough rise by producing carbon dioxide."),
    ("The moon's gravity causes the ocean tides.",
     "Tides happen because the moon pulls on the oceans.",
     "The moon's gravity has nothing to do with the ocean tides."),
]
# (key point, paraphrase, the same words with a direction or an outcome swapped): harder; the
# training rules swap listed antonyms only, so these are checked on average, not one by one
SWAPPED = [
    ("Adding salt raises the boiling point of water.",
     "Salty water has to get hotter before it boils.",
     "Adding salt lowers the boiling point of water."),
    ("When interest rates rise, bond prices fall.",
     "Higher interest rates push the price of bonds down.",
     "When interest rates rise, bond prices rise too."),
    ("A heavier object does not fall faster in a vacuum.",
     "Without air, objects of different weight fall at the same rate.",
     "A heavier object falls faster in a vacuum."),
]
TRIPLES = NEGATED + SWAPPED


@pytest.fixture(scope="module")
def finetuned() -> Encoder:
    return Encoder(NAME)


def _cos(encoder: Encoder, a: str, b: str) -> float:
    va, vb = encoder.encode([a, b])
    return float(va @ vb)


def test_name_resolves_to_the_artifact() -> None:
    assert resolve_model_path(NAME) == ARTIFACT.resolve()
    assert resolve_model_path(str(ARTIFACT)) == ARTIFACT.resolve()


def test_artifact_is_small_and_names_its_base() -> None:
    size = sum(f.stat().st_size for f in ARTIFACT.iterdir() if f.is_file())
    assert size < 10_000_000
    meta = read_meta(ARTIFACT)
    assert meta["base"]["name"] == "all-MiniLM-L6-v2"
    assert meta["layers_replaced"] and all(0 <= i < 6 for i in meta["layers_replaced"])
    assert isinstance(meta["seed"], int)


def _gap(encoder: Encoder, key: str, para: str, denial: str) -> float:
    return _cos(encoder, key, para) - _cos(encoder, key, denial)


def test_negated_key_point_is_clearly_less_similar_than_a_paraphrase(finetuned: Encoder) -> None:
    gaps = []
    for key, para, denial in NEGATED:
        gap = _gap(finetuned, key, para, denial)
        assert gap > 0.05, f"{denial!r} is about as close to {key!r} as {para!r} is (gap {gap:.3f})"
        gaps.append(gap)
    assert np.mean(gaps) >= 0.15


def test_more_polarity_aware_than_the_base_model(finetuned: Encoder, encoder: Encoder) -> None:
    for triples in (NEGATED, SWAPPED):
        tuned = np.mean([_gap(finetuned, *t) for t in triples])
        base = np.mean([_gap(encoder, *t) for t in triples])
        assert tuned > base + 0.05, (tuned, base)
    assert np.mean([_gap(finetuned, *t) for t in TRIPLES]) > np.mean([_gap(encoder, *t) for t in TRIPLES]) + 0.1


def test_unrelated_sentences_stay_apart(finetuned: Encoder) -> None:
    keys = [k for k, _, _ in TRIPLES]
    paras = finetuned.encode([p for _, p, _ in TRIPLES])
    vectors = finetuned.encode(keys)
    sims = vectors @ vectors.T
    off_diagonal = sims[~np.eye(len(keys), dtype=bool)]
    assert off_diagonal.mean() < 0.3
    for i in range(len(keys)):
        others = np.delete(sims[i], i)
        assert float(vectors[i] @ paras[i]) > others.max(), keys[i]


def test_loading_is_deterministic() -> None:
    first, second = load_finetuned(ARTIFACT), load_finetuned(ARTIFACT)
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    texts = [t for triple in TRIPLES[:3] for t in triple]
    assert np.array_equal(first.encode(texts), second.encode(texts))


def test_only_the_named_layers_differ_from_the_base(encoder: Encoder) -> None:
    tuned = load_finetuned(ARTIFACT)[0].auto_model.state_dict()
    base = encoder.model[0].auto_model.state_dict()
    layers = read_meta(ARTIFACT)["layers_replaced"]
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed and all(any(k.startswith(f"encoder.layer.{i}.") for i in layers) for k in changed)


def test_a_wrong_base_is_rejected(tmp_path: Path) -> None:
    fake_base = tmp_path / "base"
    shutil.copytree(bundled_base_dir(), fake_base, ignore=shutil.ignore_patterns("model.safetensors"))
    (fake_base / "model.safetensors").write_bytes(b"not the weights the delta was trained on")
    with pytest.raises(BaseMismatch):
        load_finetuned(ARTIFACT, base_dir=fake_base)


def test_a_delta_for_another_base_is_rejected(tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(ARTIFACT, other)
    meta = json.loads((other / META_FILE).read_text())
    meta["base"]["weights_sha256"] = "0" * 64
    (other / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(BaseMismatch):
        load_finetuned(other)
