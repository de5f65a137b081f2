"""Reproducible training: seeded, deterministic kernels, and the commit the artefact was built from."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def deterministic(seed: int, threads: int) -> np.random.Generator:
    """Seed torch and numpy, fix the thread count and refuse non-deterministic kernels: same seed, same model."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)
