"""`grader new-rubric`: start a rubric from a complete, valid example part."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

from grader.cli.output import fail, out
from grader.rubric import ID_PATTERN, RubricError, load_rubric

TEMPLATE = "rubric_template.yaml"


def template(question_id: str) -> str:
    """The example rubric (shipped with the package) with its id set to `question_id`."""
    return files("grader.cli").joinpath(TEMPLATE).read_text(encoding="utf-8").replace("__ID__", question_id)


def new_rubric(
    question_id: Annotated[str, typer.Argument(help="Question id, e.g. q11: submissions say 'Question 11' or 'Q11'.")],
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Rubrics directory to write ID.yaml into.")] = Path(
        "rubrics"
    ),
) -> None:
    """Write DIR/ID.yaml: a complete written part to edit (key points, a misconception, graded exemplars)."""
    import re

    if not re.fullmatch(ID_PATTERN, question_id):
        fail(f"{question_id!r} is not a valid question id (letters, digits, '_' or '-', not starting with '_' or '-')")
    path = directory / f"{question_id}.yaml"
    if path.exists():
        fail(f"{path} exists already; nothing written")
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(template(question_id), encoding="utf-8")
    try:
        load_rubric(path)
    except RubricError as exc:  # the shipped template must stay valid: tests check it
        fail(f"The template is invalid ({path}):", exc.problems)
    out.print(f"Wrote {path}: edit the prompt, reference answer and key points, then `grader validate {directory}`.")
