"""Cross-encoder judge: P(the student text states what the reference states).

Unlike the bi-encoder (grader/embedding.py), which embeds reference and answer separately and
compares vectors, the judge reads both texts together: ``[CLS] reference [SEP] student [SEP]``
through the bundled all-MiniLM-L6-v2 whose top layers were re-trained for the task
(training/train_judge.py), mean-pools the last layer and applies a linear head and a sigmoid.

The artifact (``models/grader-judge-v1``) holds only the trained-minus-base weights of the top
layers (fp16) and the head (fp32), in ``judge.safetensors``, plus ``grader_judge.json`` naming
the base weights' sha256. Loading is offline and refuses any other base.

    from grader.judge import Judge
    judge = Judge.load()                      # "grader-judge-v1" under the repository's models/
    judge.score([(reference, answer), ...])   # np.ndarray of probabilities in [0, 1]

Scores are memoised per (reference, student) pair in the Judge instance, and in its ``store``
(the grader's SQLite cache) when it has one, so a rerun judges nothing it judged before. Inputs longer than
``MAX_LENGTH`` tokens are cut: the student text first (down to ``MIN_STUDENT_TOKENS``), then the
reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from grader.accelerate import for_device, judge_overlapped, on_gpu
from grader.cache import Cache, digest
from grader.embedding import default_device
from grader.finetuned import (
    MODELS_DIR, BaseMismatch, bundled_base_dir, check_base, file_sha256, find_model_dir, read_model_meta,
)

FORMAT = "grader-judge-v1"
META_FILE = "grader_judge.json"
WEIGHTS_FILE = "judge.safetensors"
DEFAULT_NAME = "grader-judge-v1"
MAX_LENGTH = 256
MEMO_LIMIT = 100_000
"""Pairs kept in memory; beyond it the memo starts over before new pairs are scored."""
MIN_STUDENT_TOKENS = 64
"""When reference + student exceed MAX_LENGTH, the student text is cut first, but not below this."""

__all__ = ["Judge", "JudgeNotFound", "BaseMismatch", "find_judge", "pair_token_ids", "FORMAT", "META_FILE"]


class JudgeNotFound(FileNotFoundError):
    """No judge artifact at the given name or path."""


def find_judge(name_or_path: str | Path) -> Path | None:
    """The artifact directory named by path, or by its name under the repository's models/, else None."""
    return find_model_dir(name_or_path, META_FILE)


def truncate_pair(ref_ids: list[int], stu_ids: list[int], max_length: int = MAX_LENGTH) -> tuple[list[int], list[int]]:
    """Cut token lists to fit max_length with 3 special tokens: the student text first, then the reference."""
    budget = max_length - 3
    if len(ref_ids) + len(stu_ids) <= budget:
        return ref_ids, stu_ids
    keep_stu = max(budget - len(ref_ids), min(len(stu_ids), MIN_STUDENT_TOKENS))
    keep_ref = budget - keep_stu
    return ref_ids[:keep_ref], stu_ids[:keep_stu]


def pair_token_ids(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int = MAX_LENGTH) -> list[tuple[list[int], list[int]]]:  # noqa: ANN001
    """(input ids, token type ids) of ``[CLS] reference [SEP] student [SEP]`` for each pair.

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


def pad_batch(items: Sequence[tuple[list[int], list[int]]]):  # noqa: ANN201
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


def head_logits(hidden, mask, types, weight, bias, features: str = "pair"):  # noqa: ANN001, ANN201
    """One logit per row from the last layer.

    ``pair`` (default): mean-pool the reference segment (type 0: [CLS] reference [SEP]) into u and
    the student segment (type 1) into v, then a linear map of [u, v, |u - v|, u * v], so the head
    sees the comparison directly as well as what cross-attention put into each side.
    ``mean``: mean over all real tokens, then a linear map.
    """
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    if features == "mean":
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return pooled @ weight.reshape(-1) + bias.reshape(())
    t = types.unsqueeze(-1).to(hidden.dtype)
    ma, mb = m * (1 - t), m * t
    u = (hidden * ma).sum(1) / ma.sum(1).clamp(min=1e-9)
    v = (hidden * mb).sum(1) / mb.sum(1).clamp(min=1e-9)
    feats = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
    return feats @ weight.reshape(-1) + bias.reshape(())


def load_base(base_dir: Path, attention: str = "sdpa"):  # noqa: ANN201
    """The bundled MiniLM as a plain BertModel (no pooler) and its tokenizer, offline.

    Inference uses PyTorch's fused attention ("sdpa": 1.2x faster on CPU, probabilities within
    1e-6 of "eager"); training passes "eager" so a rerun reproduces the shipped weights bit for bit.
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


class Judge:
    """A cross-encoder scoring (reference, student text) pairs; build it with Judge.load()."""

    def __init__(self, path: Path, meta: dict, tokenizer, bert, head_weight, head_bias, device: str, identity: str):  # noqa: ANN001
        self.path = path
        self.meta = meta
        self.tokenizer = tokenizer
        self.bert = bert
        self.head_weight = head_weight
        self.head_bias = head_bias
        self.device = device
        self.identity = identity
        self.features = meta.get("head", {}).get("features", "mean")
        self._memo: dict[tuple[str, str], float] = {}
        self.forward_pairs = 0
        """How many pairs went through the network (memo and store misses); for tests and accounting."""
        self.store: Cache | None = None
        """An on-disk cache (set by the Grader that uses this judge): probabilities survive the process."""

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_NAME, device: str | None = None,
             base_dir: str | Path | None = None) -> Judge:
        """Load a judge by name (under the repository's models/) or path, offline.

        Raises JudgeNotFound when there is no artifact, BaseMismatch when the installed base
        weights are not the ones the judge was trained on.
        """
        import torch
        from safetensors.torch import load_file

        path = find_judge(name_or_path)
        if path is None:
            raise JudgeNotFound(
                f"no judge model {str(name_or_path)!r}: expected a directory with {META_FILE} at that path "
                f"or under {MODELS_DIR}; build it with "
                f"`python training/train_judge.py ../shared/datasets --out models/{DEFAULT_NAME}`"
            )
        meta = read_model_meta(path, META_FILE, FORMAT, "judge")
        base = Path(base_dir) if base_dir is not None else bundled_base_dir()
        check_base(meta, base)
        tokenizer, bert = load_base(base)
        tensors = load_file(str(path / meta.get("weights_file", WEIGHTS_FILE)))
        layers = meta["layers_replaced"]
        prefixes = tuple(f"encoder.layer.{i}." for i in layers)
        params = dict(bert.named_parameters())
        missing = sorted(n for n in params if n.startswith(prefixes) and f"delta.{n}" not in tensors)
        if missing:
            raise ValueError(f"{path}: the delta lacks {len(missing)} tensor(s) of the trained layers, e.g. {missing[0]!r}")
        with torch.no_grad():
            for key, value in tensors.items():
                if not key.startswith("delta."):
                    continue
                name = key[len("delta."):]
                if name not in params or not name.startswith(prefixes):
                    raise ValueError(f"{path}: delta tensor {name!r} is not in the trained layers of the base model")
                if tuple(params[name].shape) != tuple(value.shape):
                    raise ValueError(f"{path}: delta {name!r} has shape {tuple(value.shape)}, base {tuple(params[name].shape)}")
                params[name].add_(value.to(params[name].dtype))
        for p in bert.parameters():
            p.requires_grad_(False)
        device = device or default_device()
        bert = for_device(bert.to(device), device)  # fp16 on CUDA
        head_weight = tensors["head.weight"].float().to(device)
        head_bias = tensors["head.bias"].float().to(device)
        digest = file_sha256(path / meta.get("weights_file", WEIGHTS_FILE))
        identity = f"{path.name}@{digest[:12]}" + ("+fp16" if on_gpu(device) else "")
        return cls(path, meta, tokenizer, bert, head_weight, head_bias, device, identity)

    def __repr__(self) -> str:
        return f"Judge({self.identity}, device={self.device!r})"

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
        """P(student states what the reference states) for each (reference, student) pair, in [0, 1].

        Pairs already scored by this Judge come from its memo. The rest run sorted by length
        (little padding) in batches of ``batch_size``; the same pairs give the same numbers.
        """
        import torch

        pairs = [(str(r), str(s)) for r, s in pairs]
        todo = sorted({p for p in pairs if p not in self._memo})
        if todo and len(self._memo) > MEMO_LIMIT:  # a long batch: keep memory flat, the store keeps the rest
            self._memo.clear()
            todo = sorted(set(pairs))
        if todo and self.store is not None:
            keys = {p: self._store_key(p) for p in todo}
            stored = self.store.get_results(list(keys.values()))
            for p, key in keys.items():
                if key in stored:
                    self._memo[p] = float(stored[key])
            todo = [p for p in todo if p not in self._memo]
        if todo and on_gpu(self.device):  # fp16, tokenisation overlapped with the forward
            self._memo.update(zip(todo, judge_overlapped(self, todo).tolist()))
        elif todo:
            encoded = pair_token_ids(self.tokenizer, todo)
            order = sorted(range(len(todo)), key=lambda i: (len(encoded[i][0]), i))
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    chunk = order[start : start + batch_size]
                    input_ids, types, mask = (t.to(self.device) for t in pad_batch([encoded[i] for i in chunk]))
                    hidden = self.bert(input_ids=input_ids, attention_mask=mask, token_type_ids=types).last_hidden_state
                    logits = head_logits(hidden, mask, types, self.head_weight, self.head_bias, self.features)
                    probs = torch.sigmoid(logits).double().cpu().numpy()
                    for i, p in zip(chunk, probs):
                        self._memo[todo[i]] = float(p)
        if todo:
            self.forward_pairs += len(todo)
            if self.store is not None:
                self.store.put_results((self._store_key(p), repr(self._memo[p])) for p in todo)
        return np.array([self._memo[p] for p in pairs], dtype=np.float64).reshape(len(pairs))

    def _store_key(self, pair: tuple[str, str]) -> bytes:
        return digest("judge", self.identity, *pair)

    def clear_memo(self) -> None:
        self._memo.clear()
