"""`grader export`: the grades of OUT, TA decisions included, in a format an LMS imports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from grader.cli.options import GradedOutArgument
from grader.cli.output import fail, out


def export_(
    out_dir: GradedOutArgument,
    fmt: Annotated[str, typer.Option("--format", "-f", help="canvas, moodle, gradescope or csv.")],
    to: Annotated[Path | None, typer.Option("--to", help="Where the files go (default: OUT/export/).")] = None,
    roster: Annotated[
        Path | None,
        typer.Option("--roster", help="LMS roster CSV (Canvas gradebook or Moodle grades export) for identities."),
    ] = None,
    assignment: Annotated[
        str, typer.Option("--assignment", help="Name of the grade column in the LMS.")
    ] = "grader total",
) -> None:
    """Export grades (TA decisions included) in a format an LMS imports."""
    from grader.batch import existing_reports
    from grader.export.lms import FORMATS, Format, export, read_roster_csv
    from grader.intake.lms import read_roster

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    reports = sorted(existing_reports(out_dir).values(), key=lambda r: r.student_id)
    if not reports:
        fail(f"No reports in {out_dir}/reports (grade first)")
    identities = read_roster(out_dir)
    if roster is not None:
        identities.update(read_roster_csv(roster))
    written = export(reports, cast(Format, fmt), to or out_dir / "export", identities, assignment)
    where = written[0] if len(written) == 1 else written[0].parent.parent
    out.print(f"{fmt}: {len(reports)} student(s) written to {where}", markup=False, highlight=False)
