"""`grader check`: a student's self-check of one submission before the deadline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from grader.cli.models import open_grader
from grader.cli.options import (
    DEFAULT_JUDGE,
    GRADE_DEFAULTS,
    CacheDirOption,
    JsonOption,
    JudgeOption,
    MaxBytesOption,
    ModelOption,
    NoCacheOption,
    NoCodeOption,
    NoJudgeOption,
    RubricsOption,
    UnsandboxedOption,
    grade_options,
)
from grader.cli.output import err, fail, out
from grader.cli.rubrics import load_rubrics
from grader.report import StudentReport


def check(
    file: Annotated[Path, typer.Argument(help="Your answer file (txt, md, ipynb, pdf) or a folder of your files.")],
    rubrics: RubricsOption = None,
    as_json: JsonOption = False,
    model: ModelOption = GRADE_DEFAULTS.model,
    max_bytes: MaxBytesOption = GRADE_DEFAULTS.max_bytes,
    no_code: NoCodeOption = not GRADE_DEFAULTS.run_code,
    allow_unsandboxed: UnsandboxedOption = GRADE_DEFAULTS.allow_unsandboxed,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
    judge: JudgeOption = DEFAULT_JUDGE,
    no_judge: NoJudgeOption = False,
) -> None:
    """Self-check one submission: per-part points and feedback."""
    options = grade_options(locals())
    from grader.export import report_json
    from grader.intake import discover

    if not file.exists():
        fail(f"Not found: {file}")
    rubric_set = load_rubrics(rubrics)
    sources, _ = discover([file])
    if len(sources) != 1:
        fail(f"Expected one submission in {file}, found {len(sources)}.")
    with open_grader(rubric_set, options) as grader:
        (report,) = grader.grade_sources(sources)
    if as_json:
        sys.stdout.write(report_json(report) + "\n")
    else:
        print_check(report)
    if report.status != "graded":
        raise typer.Exit(1)


def print_check(report: StudentReport) -> None:
    """Per part: points, confidence and the feedback a student reads; then text matched to no part."""
    if report.status != "graded":
        err.print(f"[bold red]Could not grade {escape(report.student_id)}:[/] {escape(report.error or '')}")
        return
    table = Table(title=f"{report.student_id}: {report.total:g} / {report.max_total:g} ({report.percent:.1f}%)")
    table.add_column("part")
    table.add_column("points", justify="right")
    table.add_column("confidence", justify="right")
    table.add_column("feedback")
    for p in report.parts:
        feedback = "\n".join(p.feedback + [f"note: {w}" for w in p.warnings])
        table.add_row(p.part_id, f"{p.points:g}/{p.max_points:g}", f"{p.confidence:.2f}", Text(feedback))
    out.print(table)
    for u in report.unassigned:
        out.print(f"[yellow]Not matched to any part[/] ({escape(u.origin)}): {escape(u.text[:200])}", highlight=False)
    for w in report.warnings:
        out.print(f"[yellow]note:[/] {escape(w)}", highlight=False)
