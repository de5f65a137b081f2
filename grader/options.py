"""The options of a grading run: the one model the library takes and the command line's flags are read from.

Every default lives here (or in ScoringConfig, for the scorer's thresholds); `grader.cli`
declares each flag with the matching field's default and description, so the library and the
command line cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from grader.embedding import DEFAULT_MODEL
from grader.judge import DEFAULT_NAME as DEFAULT_JUDGE
from grader.scoring import ScoringConfig
from grader.submission import MAX_FILE_BYTES


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
