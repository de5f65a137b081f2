"""`grader override`: set one answer's points as a TA, from the terminal."""

from __future__ import annotations

from typing import Annotated

import typer

from grader.cli.options import GradedOutArgument
from grader.cli.output import fail, out
from grader.cli.workspace import open_workspace
from grader.review.overrides import OverrideError


def override(
    out_dir: GradedOutArgument,
    student: Annotated[str, typer.Argument(help="Student id, as in the gradebook.")],
    part: Annotated[str, typer.Argument(help="Part id, e.g. q3.a.")],
    points: Annotated[float, typer.Argument(help="The points the answer gets.")],
    comment: Annotated[str | None, typer.Option("--comment", help="A comment for the student.")] = None,
) -> None:
    """Set one answer's points as a TA; kept in OUT/overrides.sqlite and applied on every regrade."""
    ws = open_workspace(out_dir, "override")
    try:
        (decision,) = ws.decide([(student, part)], "set", points, comment)
        ws.write_class_files(report_html=True)
    except OverrideError as exc:
        fail(f"Cannot override: {exc}")
    out.print(
        f"{student} {part}: {decision.points:g} points set by a TA (the grader gave {decision.grader_points:g})"
        + (f", comment: {decision.comment}" if decision.comment else ""),
        markup=False,
        highlight=False,
    )
