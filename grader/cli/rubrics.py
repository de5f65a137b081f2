"""Which rubrics a verb grades against: --rubrics, or the example course when run from a checkout."""

from __future__ import annotations

from pathlib import Path

from grader.cli.output import fail
from grader.rubric import RubricError, RubricSet, load_rubric_dir

EXAMPLE_DIR = "rubrics"
"""The example course's rubrics, at the top of the repository (beside submissions/)."""
SOURCE_TREE = Path(__file__).resolve().parents[2]
"""The directory grader/ was imported from: a checkout for an editable install, site-packages for a wheel."""


def example_rubrics(cwd: Path | None = None) -> Path | None:
    """The checkout's rubrics/: of the source tree grader runs from, else of the current directory.

    A checkout is a directory holding both grader/ (the package) and rubrics/. An installed
    wheel lives in site-packages, where there is none: then only the current directory can be one.
    """
    for root in (SOURCE_TREE, (cwd or Path.cwd()).resolve()):
        if (root / EXAMPLE_DIR).is_dir() and (root / "grader" / "__init__.py").is_file():
            return root / EXAMPLE_DIR
    return None


def rubrics_dir(directory: Path | None) -> Path:
    """`directory`, or the example course's rubrics/; exit 2 with how to name one when there is none."""
    if directory is None:
        directory = example_rubrics()
        if directory is None:
            fail(
                "No rubrics: pass --rubrics DIR (the example course's rubrics/ are used by default only "
                "when grader runs from a checkout of its repository)."
            )
    return directory


def load_rubrics(directory: Path | None) -> RubricSet:
    """The rubrics in `directory` (or the example course's); every problem as `file: field: reason`, exit 2."""
    try:
        return load_rubric_dir(rubrics_dir(directory))
    except RubricError as exc:
        fail(f"Invalid rubrics ({len(exc.problems)} problem(s)):", exc.problems)
