"""Building what loads models (a Grader, an encoder, a judge), with one clear error when one is missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from grader.cli.output import fail
from grader.embedding import ModelNotFound
from grader.judge import JudgeNotFound

T = TypeVar("T")


def loading(build: Callable[[], T]) -> T:
    """build(), turning a missing model into exit 2 with the reason (and, for the judge, how to go without)."""
    try:
        return build()
    except (ModelNotFound, JudgeNotFound) as exc:
        hint = " (grade without it: --no-judge)" if isinstance(exc, JudgeNotFound) else ""
        fail(f"Model not found: {exc}{hint}")
