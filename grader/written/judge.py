"""The judge: does a student's text entail, contradict, or neither, a rubric text?

A bi-encoder (grader/written/embedding.py) embeds the two texts apart and compares vectors, so "momentum
helps" and "momentum does not help" land side by side. The judge reads both together,
``[CLS] rubric text [SEP] student text [SEP]``, through the bundled all-MiniLM-L6-v2 with every
layer re-trained for entailment (training/train_judge.py), and answers three probabilities:
entailment (the student states it), neutral (the student does not say it), contradiction (the
student says the opposite).

The artefact (``grader-judge-v2``, a directory under the package's ``models/``) holds the trained
minus base weights (fp16) of every trained tensor and the head (fp32) in ``judge.safetensors``,
and ``grader_judge.json`` naming the base weights' sha256. Loading is offline and refuses any
other base.

    from grader.written.judge import Judge
    judge = Judge.load()
    judge.classify([(rubric_text, student_text), ...])   # (n, 3): P(entailment), P(neutral), P(contradiction)

Results are memoised per pair in the Judge, and in its ``store`` (the grader's SQLite cache) when
it has one, so a rerun judges nothing twice. Pairs longer than ``MAX_LENGTH`` tokens are cut: the
student text first (down to ``MIN_STUDENT_TOKENS``), then the rubric text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from grader.accelerate import for_device, judge_overlapped, on_gpu
from grader.artifacts import (
    MODELS_DIR,
    BaseMismatch,
    bundled_base_dir,
    check_base,
    file_sha256,
    find_model_dir,
    read_model_meta,
)
from grader.cache import Cache, digest
from grader.written.embedding import default_device

if TYPE_CHECKING:
    import torch
    from transformers import BertModel, PreTrainedTokenizerBase

FORMAT = "grader-judge-v2"
META_FILE = "grader_judge.json"
WEIGHTS_FILE = "judge.safetensors"
DEFAULT_NAME = "grader-judge-v2"
LABELS = ("entailment", "neutral", "contradiction")
ENTAIL, NEUTRAL, CONTRADICT = range(3)
MAX_LENGTH = 256
MEMO_LIMIT = 200_000
"""Pairs kept in memory; beyond it the memo starts over before new pairs are judged."""
MIN_STUDENT_TOKENS = 64
"""When rubric + student text exceed MAX_LENGTH, the student text is cut first, but not below this."""

__all__ = ["Judge", "JudgeNotFound", "BaseMismatch", "find_judge", "pair_token_ids", "LABELS", "FORMAT", "META_FILE"]


class JudgeNotFound(FileNotFoundError):
    """No judge artefact at the given name or path."""


def find_judge(name_or_path: str | Path) -> Path | None:
    """The artefact directory named by path, or by its name under the models directory, else None."""
    return find_model_dir(name_or_path, META_FILE)


def truncate_pair(ref_ids: list[int], stu_ids: list[int], max_length: int = MAX_LENGTH) -> tuple[list[int], list[int]]:
    """Cut token lists to fit max_length with 3 special tokens: the student text first, then the rubric text."""
    budget = max_length - 3
    if len(ref_ids) + len(stu_ids) <= budget:
        return ref_ids, stu_ids
    keep_stu = max(budget - len(ref_ids), min(len(stu_ids), MIN_STUDENT_TOKENS))
    keep_ref = budget - keep_stu
    return ref_ids[:keep_ref], stu_ids[:keep_stu]


def pair_token_ids(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_length: int = MAX_LENGTH
) -> list[tuple[list[int], list[int]]]:
    """(input ids, token type ids) of ``[CLS] rubric [SEP] student [SEP]`` for each pair.

    Shared by training and inference so both see exactly the same tokens.
    """
    texts = sorted({t for p in pairs for t in p})
    ids = dict(zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"]))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out = []
    for ref, stu in pairs:
        r, s = truncate_pair(list(ids[ref]), list(ids[stu]), max_length)
        out.append(([cls, *r, sep, *s, sep], [0] * (len(r) + 2) + [1] * (len(s) + 1)))
    return out


def pad_batch(items: Sequence[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded (input_ids, token_type_ids, attention_mask) tensors."""
    import torch

    n = max(len(ids) for ids, _ in items)
    input_ids = torch.zeros(len(items), n, dtype=torch.long)
    types = torch.zeros(len(items), n, dtype=torch.long)
    mask = torch.zeros(len(items), n, dtype=torch.long)
    for i, (ids, tt) in enumerate(items):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        types[i, : len(tt)] = torch.tensor(tt)
        mask[i, : len(ids)] = 1
    return input_ids, types, mask


def pooled_logits(hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Class logits from the mean of the last layer over the pair's real tokens."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return pooled @ weight.T.to(hidden.dtype) + bias.to(hidden.dtype)


def load_base(base_dir: Path, attention: str = "sdpa") -> tuple[PreTrainedTokenizerBase, BertModel]:
    """The bundled MiniLM as a plain BertModel (no pooler) and its tokenizer, offline.

    Inference uses PyTorch's fused attention ("sdpa"); training passes "eager" so a rerun
    reproduces the shipped weights bit for bit.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    bert = AutoModel.from_pretrained(
        str(base_dir), local_files_only=True, add_pooling_layer=False, attn_implementation=attention
    )
    bert.eval()
    return tokenizer, bert


def _apply_delta(bert: BertModel, tensors: dict[str, torch.Tensor], path: Path) -> None:
    import torch

    params = dict(bert.named_parameters())
    with torch.no_grad():
        for key, value in tensors.items():
            if not key.startswith("delta."):
                continue
            name = key[len("delta.") :]
            if name not in params:
                raise ValueError(f"{path}: delta tensor {name!r} is not a parameter of the base model")
            if tuple(params[name].shape) != tuple(value.shape):
                raise ValueError(
                    f"{path}: delta {name!r} has shape {tuple(value.shape)}, base {tuple(params[name].shape)}"
                )
            params[name].add_(value.to(params[name].dtype))


class Judge:
    """A cross-encoder classifying (rubric text, student text) pairs; build it with Judge.load()."""

    def __init__(
        self,
        path: Path,
        meta: dict,
        tokenizer: PreTrainedTokenizerBase,
        bert: BertModel,
        head_weight: torch.Tensor,
        head_bias: torch.Tensor,
        device: str,
        identity: str,
    ) -> None:
        self.path = path
        self.meta = meta
        self.tokenizer = tokenizer
        self.bert = bert
        self.head_weight = head_weight
        self.head_bias = head_bias
        self.device = device
        self.identity = identity
        self._memo: dict[tuple[str, str], np.ndarray] = {}
        self.forward_pairs = 0
        """How many pairs went through the network (memo and store misses); for tests and accounting."""
        self.classify_s = 0.0
        """Seconds spent in classify(): the run's statistics take the share of a batch from it."""
        self.store: Cache | None = None
        """An on-disk cache (set by the scorer that uses this judge): probabilities survive the process."""

    @classmethod
    def load(
        cls, name_or_path: str | Path = DEFAULT_NAME, device: str | None = None, base_dir: str | Path | None = None
    ) -> Judge:
        """Load a judge by name (under the models directory) or path, offline.

        Raises JudgeNotFound when there is no artefact, BaseMismatch when the installed base
        weights are not the ones the judge was trained on.
        """
        import torch
        from safetensors.torch import load_file

        path = find_judge(name_or_path)
        if path is None:
            raise JudgeNotFound(
                f"no judge model {str(name_or_path)!r}: expected a directory with {META_FILE} at that path "
                f"or under {MODELS_DIR}"
            )
        meta = read_model_meta(path, META_FILE, FORMAT, "judge")
        base = Path(base_dir) if base_dir is not None else bundled_base_dir()
        check_base(meta, base)
        tokenizer, bert = load_base(base)
        weights = path / meta.get("weights_file", WEIGHTS_FILE)
        tensors = load_file(str(weights))
        _apply_delta(bert, tensors, path)
        for p in bert.parameters():
            p.requires_grad_(False)
        device = device or default_device()
        # fp16 on CUDA; transformers wraps .to with functools.wraps, which mypy does not bind as a method
        bert = for_device(bert.to(device), device)  # type: ignore[arg-type]
        head_weight = tensors["head.weight"].float().to(device)
        head_bias = tensors["head.bias"].float().to(device)
        if tuple(head_weight.shape) != (len(LABELS), bert.config.hidden_size):
            raise ValueError(
                f"{path}: head has shape {tuple(head_weight.shape)}, expected ({len(LABELS)}, "
                f"{bert.config.hidden_size})"
            )
        identity = f"{path.name}@{file_sha256(weights)[:12]}" + ("+fp16" if on_gpu(device) else "")
        del torch
        return cls(path, meta, tokenizer, bert, head_weight, head_bias, device, identity)

    def __repr__(self) -> str:
        return f"Judge({self.identity}, device={self.device!r})"

    def classify(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """(len(pairs), 3) probabilities of entailment, neutral, contradiction for (rubric, student) pairs.

        Pairs already judged come from the memo or the store. The rest run sorted by length
        (little padding) in batches; the same pairs give the same numbers.
        """
        started = time.perf_counter()
        try:
            return self._classify([(str(r), str(s)) for r, s in pairs], batch_size)
        finally:
            self.classify_s += time.perf_counter() - started

    def _classify(self, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
        todo = sorted({p for p in pairs if p not in self._memo})
        if todo and len(self._memo) > MEMO_LIMIT:  # a long batch: keep memory flat, the store keeps the rest
            self._memo.clear()
            todo = sorted(set(pairs))
        if todo and self.store is not None:
            keys = {p: self._store_key(p) for p in todo}
            stored = self.store.get_results(list(keys.values()))
            for p, key in keys.items():
                if key in stored:
                    self._memo[p] = np.array(json.loads(stored[key]), dtype=np.float64)
            todo = [p for p in todo if p not in self._memo]
        if todo:  # on CUDA: fp16, tokenisation overlapped with the forward
            probs = judge_overlapped(self, todo) if on_gpu(self.device) else self._forward(todo, batch_size)
            self._memo.update(zip(todo, probs))
            self.forward_pairs += len(todo)
            if self.store is not None:
                self.store.put_results((self._store_key(p), json.dumps(self._memo[p].tolist())) for p in todo)
        if not pairs:
            return np.zeros((0, len(LABELS)))
        return np.stack([self._memo[p] for p in pairs])

    def _forward(self, todo: list[tuple[str, str]], batch_size: int) -> np.ndarray:
        """The CPU path: (len(todo), 3) probabilities, rounded as the GPU path rounds them."""
        import torch

        out = np.zeros((len(todo), len(LABELS)))
        encoded = pair_token_ids(self.tokenizer, todo, MAX_LENGTH)
        order = sorted(range(len(todo)), key=lambda i: (len(encoded[i][0]), i))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                input_ids, types, mask = (t.to(self.device) for t in pad_batch([encoded[i] for i in chunk]))
                hidden = self.bert(input_ids=input_ids, attention_mask=mask, token_type_ids=types).last_hidden_state
                logits = pooled_logits(hidden, mask, self.head_weight, self.head_bias).float()
                probs = torch.softmax(logits, dim=-1).double().cpu().numpy()
                out[chunk] = probs
        return np.round(out, 6)

    def _store_key(self, pair: tuple[str, str]) -> bytes:
        return digest("judge", self.identity, *pair)
