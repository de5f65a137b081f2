"""Building what loads models (a Grader, an encoder, a judge), with one clear error when one is missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from rich.markup import escape

from grader.cli.output import err, fail
from grader.options import ClusterOptions, GradeOptions
from grader.rubric import RubricSet
from grader.written import JudgeNotFound, ModelNotFound

if TYPE_CHECKING:
    from grader.pipeline import Grader

T = TypeVar("T")


def loading(build: Callable[[], T]) -> T:
    """build(), turning a missing model into exit 2 with the reason (and, for the judge, how to go without)."""
    try:
        return build()
    except (ModelNotFound, JudgeNotFound) as exc:
        hint = " (grade without it: --no-judge)" if isinstance(exc, JudgeNotFound) else ""
        fail(f"Model not found: {exc}{hint}")


def open_grader(rubrics: RubricSet, options: GradeOptions, cluster: ClusterOptions | None = None) -> Grader:
    """A Grader for a verb, local or on Ray actors (`cluster`); if code parts cannot run, one prominent line
    says so and why, before any work."""
    from grader.pipeline import Grader

    if cluster is None or cluster.backend == "local":
        grader = loading(lambda: Grader(rubrics, options))
    else:
        grader = loading(lambda: ray_grader(rubrics, options, cluster))
    reason = grader.code_unavailable()
    if reason:
        err.print(f"[bold red]Code parts will not be graded:[/] {escape(reason)}", highlight=False)
    return grader


def ray_grader(rubrics: RubricSet, options: GradeOptions, cluster: ClusterOptions) -> Grader:
    """A Grader on Ray actors (grader.ray_backend): imported only when asked for, as Ray is an optional extra."""
    from grader.ray_backend import ClusterError, RayGrader

    try:
        return RayGrader(rubrics, options, cluster)
    except ClusterError as exc:
        fail(str(exc))
