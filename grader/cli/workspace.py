"""The graded output directory a TA works in (review, override), opened with one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from grader.cli.output import fail

if TYPE_CHECKING:
    from grader.review.workspace import Workspace


def open_workspace(out_dir: Path, doing: str = "review") -> Workspace:
    """OUT as a review workspace; exit 2 saying why when it is not one (no reports, no run.json, bad rubrics)."""
    from grader.review.workspace import Workspace, WorkspaceError

    try:
        return Workspace(out_dir)
    except WorkspaceError as exc:
        fail(f"Cannot {doing}: {exc}")
