"""The hardware helpers: threads that follow the cores available, and the GPU path's batched forwards,
checked on the CPU against the models' own paths (the GPU itself is checked by benchmarks/gpu_check.sh)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from grader.accelerate import (
    available_cores,
    encode_overlapped,
    for_device,
    judge_overlapped,
    on_gpu,
    overlapped,
    use_cores,
)
from grader.options import GradeOptions

TEXTS = [
    "Backpropagation applies the chain rule from the loss back to every weight.",
    "Dropout zeroes random activations during training.",
    "It regularises.",
    "Batch normalisation keeps each layer's inputs at zero mean and unit variance over the batch, "
    "which lets a network train with larger learning rates.",
    "The vanishing gradient problem: gradients shrink as they pass back through many saturated layers.",
    "ReLU.",
    "Adam keeps running averages of the gradient and of its square.",
]


def test_the_next_batch_is_prepared_while_the_current_one_runs():
    """prepare(k + 1) must finish while run(k) is still running, on another thread, or this deadlocks."""
    prepared = [threading.Event() for _ in range(4)]
    threads: set[str] = set()

    def prepare(k: int) -> int:
        threads.add(threading.current_thread().name)
        prepared[k].set()
        return k

    def run(k: int) -> int:
        if k + 1 < len(prepared):
            assert prepared[k + 1].wait(timeout=30), f"batch {k + 1} was not prepared while batch {k} ran"
        return k * k

    assert list(overlapped(range(4), prepare, run)) == [0, 1, 4, 9]
    assert threading.current_thread().name not in threads


def test_threads_follow_the_cores_available_once():
    assert available_cores() == len(os.sched_getaffinity(0))
    n = use_cores()
    assert use_cores(n + 5) == n, "set once: later calls keep it"
    assert torch.get_num_threads() == n


def test_the_gpu_encoding_path_gives_the_encoders_vectors(encoder):
    """encode_overlapped (the CUDA path, here in fp32 on the CPU) = SentenceTransformer.encode."""
    expected = encoder.model.encode(TEXTS, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    got = encode_overlapped(encoder.model, TEXTS, "cpu", batch_size=3)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_gpu_judging_path_gives_the_judges_probabilities(judge):
    """judge_overlapped (the CUDA path, here in fp32 on the CPU) = Judge.classify's own loop."""
    pairs = [(TEXTS[i], TEXTS[j] + " (checked)") for i in range(3) for j in range(len(TEXTS))]
    expected = judge.classify(pairs)
    got = judge_overlapped(judge, pairs, batch_size=4)
    assert got.shape == (len(pairs), 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_only_cuda_gets_half_precision(encoder):
    layer = torch.nn.Linear(2, 2)
    assert for_device(layer, "cpu") is layer and layer.weight.dtype == torch.float32
    assert on_gpu("cuda") and on_gpu("cuda:1") and not on_gpu("cpu")
    assert encoder.device == "cpu" and "+fp16" not in encoder.identity
    assert GradeOptions(device="cuda:1").device == "cuda:1"
    with pytest.raises(ValidationError):
        GradeOptions(device="gpu")
