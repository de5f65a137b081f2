"""Use the hardware a run is given: torch threads that follow the cores available, and model
forwards that keep a GPU busy.

On CUDA the encoder and the judge hold fp16 weights and run through :func:`forward_sorted`:
inputs sorted by length (little padding), large batches, and the next batch tokenised, padded
and copied to the device on a background thread while the GPU runs the current one, so the GPU
does not wait on the tokenizer (the fast tokenizer releases the GIL). On the CPU nothing here
changes a forward: the models keep their fp32 weights, their own batching and their numbers.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

    from grader.written import Judge

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")

GPU_BATCH = 256
"""Texts or pairs per forward on a GPU: short inputs, so large batches keep the device busy."""

_threads: int | None = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity: a container's or a scheduler's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def use_cores(n: int | None = None) -> int:
    """Set torch's intra-op threads once per process: `n`, or the cores available; later calls keep it.

    torch's own default counts the machine's cores, not the ones this process may use, so a
    container or a Ray actor given 2 of 64 cores would run 64 threads on 2.
    """
    global _threads
    if _threads is None:
        import torch

        _threads = max(1, int(n or available_cores()))
        torch.set_num_threads(_threads)
    return _threads


def on_gpu(device: str | Any) -> bool:
    return str(device).startswith("cuda")


def for_device(model: T, device: str) -> T:
    """The model as it should run on `device`: fp16 weights on CUDA, unchanged elsewhere."""
    return model.half() if on_gpu(device) else model  # type: ignore[attr-defined]


def overlapped(items: Iterable[T], prepare: Callable[[T], P], run: Callable[[P], R], ahead: int = 2) -> Iterator[R]:
    """run(prepare(item)) for each item, in order, with `prepare` working up to `ahead` items ahead
    on a background thread (tokenise and copy batch k+1 while the model runs batch k)."""
    source = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-prepare") as pool:
        queue: deque[Future[P]] = deque(pool.submit(prepare, item) for item in islice(source, ahead))
        while queue:
            prepared = queue.popleft().result()
            for item in islice(source, 1):
                queue.append(pool.submit(prepare, item))
            yield run(prepared)


def forward_sorted(
    items: Sequence[T],
    length: Callable[[T], int],
    prepare: Callable[[list[T]], P],
    run: Callable[[P], torch.Tensor],
    batch_size: int = GPU_BATCH,
) -> np.ndarray:
    """One output row per item, in the items' order: batches of similar length, prepared ahead.

    `run` returns a tensor on the device; rows stay there until the end, so the host waits on
    the device once, not once per batch.
    """
    import torch

    order = sorted(range(len(items)), key=lambda i: (length(items[i]), i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        rows = list(overlapped(batches, lambda idx: prepare([items[i] for i in idx]), run))
    if not rows:
        return np.zeros((0,), dtype=np.float32)
    stacked = torch.cat(rows).float().cpu().numpy()
    out = np.empty_like(stacked)
    out[np.asarray(order)] = stacked
    return out


def to_device(features: dict[str, Any], device: str) -> dict[str, Any]:
    """A batch's tensors to the device, pinned and asynchronous on CUDA (the copy overlaps the running
    batch); other entries (sentence-transformers adds e.g. the input's modality) are kept as they are."""
    import torch

    gpu = on_gpu(device)

    def move(value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        return value.pin_memory().to(device, non_blocking=True) if gpu else value.to(device)

    return {k: move(v) for k, v in features.items()}


def encode_overlapped(model: Any, texts: Sequence[str], device: str, batch_size: int = GPU_BATCH) -> np.ndarray:
    """Unit-norm sentence vectors (float32) from a SentenceTransformer, with tokenisation overlapped.

    The GPU path of Encoder: the same tokenizer, modules and pooling as ``model.encode``.
    """
    import torch

    tokenize = getattr(model, "preprocess", None) or model.tokenize  # preprocess: sentence-transformers >= 6

    def run(features: dict[str, Any]) -> torch.Tensor:
        vectors = model(features)["sentence_embedding"].float()
        return torch.nn.functional.normalize(vectors, dim=-1)

    vectors = forward_sorted(texts, len, lambda batch: to_device(tokenize(batch), device), run, batch_size)
    return vectors.reshape(len(texts), -1).astype(np.float32)


def judge_overlapped(judge: Judge, pairs: Sequence[tuple[str, str]], batch_size: int = GPU_BATCH) -> np.ndarray:
    """P(entailment), P(neutral), P(contradiction) per pair, with tokenisation overlapped: the GPU path of
    Judge.classify. The same tokens as the CPU path (pair_token_ids), batched by character length
    instead of token length so that tokenising can wait for the batch's turn.
    """
    import torch

    from grader.written.judge import LABELS, MAX_LENGTH, pad_batch, pair_token_ids, pooled_logits

    def prepare(batch: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        ids, types, mask = pad_batch(pair_token_ids(judge.tokenizer, batch, MAX_LENGTH))
        return to_device({"input_ids": ids, "token_type_ids": types, "attention_mask": mask}, judge.device)

    def run(t: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = judge.bert(**t).last_hidden_state.float()
        return torch.softmax(
            pooled_logits(hidden, t["attention_mask"], judge.head_weight, judge.head_bias).float(), dim=-1
        )

    probs = forward_sorted(pairs, lambda p: len(p[0]) + len(p[1]), prepare, run, batch_size)
    return np.round(probs.reshape(len(pairs), len(LABELS)).astype(np.float64), 6)
