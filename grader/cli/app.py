"""The `grader` command: the verbs, each defined in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from grader import __version__
from grader.cli import check, grade, new_rubric, override, review, schema, validate
from grader.cli import eval as eval_verb
from grader.cli import export as export_verb
from grader.cli.output import out

app = typer.Typer(
    help="Grade written and code answers against YAML rubrics, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"grader {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """grader: offline automated grading against YAML rubrics."""


app.command("grade")(grade.grade)
app.command("check")(check.check)
app.command("validate")(validate.validate)
app.command("schema")(schema.schema)
app.command("new-rubric")(new_rubric.new_rubric)
app.command("eval")(eval_verb.eval_)
app.command("review")(review.review)
app.command("override")(override.override)
app.command("export")(export_verb.export_)
