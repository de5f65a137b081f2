"""The options of a grading run: the one model the library takes and the command line's flags are read from.

Every default lives here (or in ScoringConfig, for the scorer's thresholds); `grader.cli`
declares each flag with the matching field's default and description, so the library and the
command line cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from grader.submission import MAX_FILE_BYTES
from grader.written import DEFAULT_JUDGE, DEFAULT_MODEL, ScoringConfig


class GradeOptions(BaseModel):
    """How a Grader grades: models, limits, code running, caching and batching."""

    model: str = Field(
        default=DEFAULT_MODEL, description="Embedding model: the bundled default or a sentence-transformers directory."
    )
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    max_bytes: int = Field(default=MAX_FILE_BYTES, gt=0, description="Largest submission file accepted, in bytes.")
    run_code: bool = Field(default=True, description="Run code parts in the sandbox (else report them ungraded).")
    allow_unsandboxed: bool = Field(
        default=False,
        description="Run student code even if the sandbox's protections are missing on this machine (unsafe).",
    )
    code_workers: int = Field(
        default=1, ge=1, description="Code answers run at once, each in its own warm sandbox (about one core each)."
    )
    cache_dir: Path | None = Field(default=None, description="Embedding and result cache (SQLite); None: memory only.")
    device: str | None = Field(
        default=None,
        pattern=r"^(cpu|cuda(:[0-9]+)?)$",
        description="Where the encoder and the judge run: cpu, cuda or cuda:N (fp16); None: cuda when torch sees one.",
    )
    int8: bool = Field(
        default=False, description="Faster CPU encoder: int8-quantised Linear layers (agreement in docs/benchmarks.md)."
    )
    judge: str | None = Field(
        default=DEFAULT_JUDGE,
        description="Cross-encoder that re-weighs the evidence: a model shipped with grader, by name, or a path; "
        "None: similarity only.",
    )
    chunk_size: int = Field(
        default=64, ge=1, description="Students parsed, encoded and written together (memory vs. speed)."
    )
    memo_limit: int = Field(default=50_000, ge=0, description="Student-text vectors kept in memory between chunks.")


class ClusterOptions(BaseModel):
    """Where a batch is graded: in this process, or on a pool of Ray actors (grader.ray_backend)."""

    backend: Literal["local", "ray"] = Field(
        default="local",
        description="local: this process; ray: a pool of Ray actors, each with the models and a sandbox.",
    )
    address: str | None = Field(
        default=None,
        description="Ray cluster to join (HOST:PORT of its head, or auto); None: start one on this machine.",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        description="Ray actors grading at once, each holding the models (about 1 GB); "
        "None: one per CPU the cluster has.",
    )
    cpus_per_worker: int = Field(default=1, ge=1, description="CPUs each Ray actor reserves (its torch threads).")
    gpus_per_worker: float = Field(
        default=0.0,
        ge=0,
        description="GPUs each Ray actor reserves (e.g. 0.25: four actors share one GPU); 0: CPU only.",
    )
