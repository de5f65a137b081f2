"""`grader validate`: check rubrics, and run every code part's reference on its cases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grader.cli.output import fail, out
from grader.cli.rubrics import load_rubrics


def validate(
    directory: Annotated[Path, typer.Argument(help="Directory of rubric YAML files.")],
    references: Annotated[
        bool,
        typer.Option("--references/--no-references", help="Run every code part's reference on each of its cases."),
    ] = True,
) -> None:
    """Validate rubrics: every problem as `file: field.path: reason`; code references must run on every case."""
    rubric_set = load_rubrics(directory)
    n_parts = len(rubric_set.part_ids())
    code_parts = [p for _, p in rubric_set.parts() if p.kind == "code"]
    if references and code_parts:
        from grader.code import CodeGrader

        # References are the course's own code, run in this process as grading runs them to compare
        # results; no student code runs here, so the sandbox is not needed.
        with CodeGrader(rubric_set, allow_unsandboxed=True) as code:
            problems = code.check_references()
        if problems:
            fail(f"Reference problems ({len(problems)}):", problems)
    out.print(
        f"OK: {len(rubric_set.rubrics)} rubrics, {n_parts} parts, {rubric_set.max_points:g} points "
        f"(sha256 {rubric_set.sha256[:12]})"
        + (f"; {len(code_parts)} code references ran on every case" if references and code_parts else "")
    )
