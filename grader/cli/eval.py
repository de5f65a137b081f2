"""`grader eval`: agreement with human graders on a CSV of graded answers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from grader.cli.models import loading
from grader.cli.options import (
    DEFAULT_JUDGE,
    GRADE_DEFAULTS,
    Int8Option,
    JsonOption,
    JudgeOption,
    ModelOption,
    NoJudgeOption,
)
from grader.cli.output import fail, out

if TYPE_CHECKING:
    from grader.evaluation import EvalResult, KeypointMode

KEYPOINT_MODES = ("sentences", "whole")


def eval_(
    dataset: Annotated[Path, typer.Argument(help="CSV of human-graded answers (see grader.evaluation).")],
    max_score: Annotated[
        float | None, typer.Option("--max-score", help="Maximum points of every question (overrides the CSV).")
    ] = None,
    exemplars: Annotated[
        int,
        typer.Option(
            "--exemplars", help="Graded answers per question handed to the scorer (removed from the evaluation)."
        ),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the exemplar draw and --limit sampling.")] = 0,
    split: Annotated[
        str | None,
        typer.Option("--split", help="Evaluate only this split (e.g. test-unseen-answers or UQ; default: all rows)."),
    ] = None,
    keypoints: Annotated[
        str,
        typer.Option("--keypoints", help="Key points per question: sentences (one per reference sentence) or whole."),
    ] = KEYPOINT_MODES[0],
    as_json: JsonOption = False,
    predictions_file: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Write one CSV row per evaluated answer: gold, predicted, confidence, flags, and the signals "
            "the confidence model read.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Evaluate a seeded sample of N rows (and fit on at most N train rows)."),
    ] = None,
    model: ModelOption = GRADE_DEFAULTS.model,
    int8: Int8Option = GRADE_DEFAULTS.int8,
    judge: JudgeOption = DEFAULT_JUDGE,
    no_judge: NoJudgeOption = False,
) -> None:
    """Measure agreement with human graders: grader vs a plain-cosine baseline on a graded-answers CSV."""
    from grader.evaluation import EvalError, evaluate
    from grader.pipeline import load_judge
    from grader.written import Encoder

    if keypoints not in KEYPOINT_MODES:
        fail(f"--keypoints must be {' or '.join(KEYPOINT_MODES)} (got {keypoints!r})")
    try:
        result, predictions = loading(
            lambda: evaluate(
                dataset,
                split=split,
                max_score=max_score,
                exemplars=exemplars,
                seed=seed,
                keypoints=cast("KeypointMode", keypoints),  # checked above
                limit=limit,
                encoder=Encoder(model, int8=int8),
                judge=None if no_judge else load_judge(judge),
                return_predictions=True,
            )
        )
    except EvalError as exc:
        fail(f"Cannot evaluate ({len(exc.problems)} problem(s)):", exc.problems)
    if predictions_file is not None:
        from grader.evaluation import write_predictions

        write_predictions(predictions, predictions_file)
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
        return
    print_result(result)


def print_result(result: EvalResult) -> None:
    """The metrics table, the settings it was measured with, and the evaluation's notes."""
    from grader.evaluation import metric_rows

    systems = list(result.metrics)
    heads = {"baseline": "plain-cosine baseline", "grader": "grader", "grader_no_exemplars": "grader, no exemplars"}
    title = (
        f"{Path(result.dataset).name}, split {result.split or 'all rows'}: {result.n} answers, "
        f"{result.n_questions} questions, {result.settings.exemplars} exemplars/question"
    )
    table = Table(title=title)
    table.add_column("metric")
    for name in systems:
        table.add_column(heads.get(name, name), justify="right")
    for metric, values in metric_rows(result):
        table.add_row(metric, *("-" if v is None else f"{v:.3f}" for v in values))
    out.print(table)
    if result.per_question:
        worst = sorted((q for q in result.per_question if q.exact is not None), key=lambda q: q.exact or 0.0)[:5]
        out.print(
            "least agreement: " + ", ".join(f"{q.question_id} ({q.exact:.2f}, n={q.n})" for q in worst), highlight=False
        )
    if result.lead is not None:
        out.print(f"grader - baseline: {result.lead.describe()}", highlight=False)
    if result.settings.fit_on_evaluated_rows:
        out.print(
            "[bold yellow]thresholds and the baseline were fitted on the evaluated rows themselves: "
            "these numbers are optimistic[/]"
        )
    fitted = result.settings.fit_split or "the evaluated rows"
    out.print(
        f"keypoints={result.settings.keypoints} seed={result.settings.seed} qwk_step={result.settings.qwk_step:g} "
        f"fitted on {fitted} ({result.settings.n_fit} rows); {result.timing_s['total']:.1f} s",
        highlight=False,
    )
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}", highlight=False)
