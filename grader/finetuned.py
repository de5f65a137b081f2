"""The names grader/judge.py and grader/embedding.py import from here, until the written room moves.

The artefact helpers live in grader.artifacts. Fine-tuned encoder deltas (``grader_delta.json``,
the former opt-in ``grader-minilm-v1``) are no longer supported: it graded the course's labelled
answers worse than the bundled encoder. Naming one is a clear ModelNotFound, never a silent fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from grader.artifacts import (
    MODELS_DIR,
    BaseMismatch,
    bundled_base_dir,
    check_base,
    file_sha256,
    find_model_dir,
    read_model_meta,
)

__all__ = [
    "MODELS_DIR",
    "BaseMismatch",
    "bundled_base_dir",
    "check_base",
    "file_sha256",
    "find_finetuned",
    "find_model_dir",
    "is_finetuned_dir",
    "load_finetuned",
    "read_model_meta",
]

META_FILE = "grader_delta.json"
"""What marked a fine-tuned encoder delta."""


def is_finetuned_dir(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file()


def _retired(path: str | Path) -> NoReturn:
    from grader.embedding import ModelNotFound

    raise ModelNotFound(
        f"{path}: a fine-tuned encoder delta; these are no longer supported (the bundled encoder graded "
        "the course's answers better): use the default model or a sentence-transformers directory"
    )


def find_finetuned(name: str | Path) -> Path | None:
    """None for anything but a fine-tuned encoder delta, which is refused with a clear error."""
    path = find_model_dir(name, META_FILE)
    if path is not None:
        _retired(path)
    return None


def load_finetuned(path: str | Path, device: str = "cpu", base_dir: str | Path | None = None) -> NoReturn:
    _retired(path)
