"""Command line: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader import __version__
from grader.embedding import DEFAULT_MODEL, ModelNotFound
from grader.judge import DEFAULT_NAME as DEFAULT_JUDGE, JudgeNotFound
from grader.rubric import RubricError, RubricSet, load_rubric_dir, rubric_json_schema

SHIPPED_RUBRICS = Path(__file__).resolve().parent.parent / "rubrics"

app = typer.Typer(
    help="Grade written and code answers against YAML rubrics, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

RubricsOption = Annotated[
    Optional[Path],
    typer.Option("--rubrics", "-r", help="Directory of rubric YAML files [default: the shipped rubrics/]."),
]
ModelOption = Annotated[
    str, typer.Option("--model", help="Embedding model: the bundled default or a sentence-transformers directory.")
]
MaxBytesOption = Annotated[int, typer.Option("--max-bytes", help="Largest submission file accepted, in bytes.")]
NoCodeOption = Annotated[bool, typer.Option("--no-code", help="Do not run code answers (they are reported as not run).")]
UnsandboxedOption = Annotated[
    bool,
    typer.Option(
        "--allow-unsandboxed",
        help="Run student code even if the sandbox's protections are missing on this machine (unsafe).",
    ),
]


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


def _load_rubrics(directory: Path | None) -> RubricSet:
    directory = directory or SHIPPED_RUBRICS
    try:
        return load_rubric_dir(directory)
    except RubricError as exc:
        err.print(f"[bold red]Invalid rubrics ({len(exc.problems)} problem(s)):[/]")
        for line in exc.problems:
            err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


CacheDirOption = Annotated[
    Optional[Path],
    typer.Option("--cache-dir", help="Embedding/result cache [default: $GRADER_CACHE_DIR or ~/.cache/grader]."),
]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Keep nothing on disk between runs.")]
JudgeOption = Annotated[
    str,
    typer.Option("--judge", help="Cross-encoder that re-weighs the evidence: a name under models/ or a path."),
]
NoJudgeOption = Annotated[
    bool, typer.Option("--no-judge", help="Similarity only, no cross-encoder: about 1.6x faster on CPU, a little less accurate.")
]
Int8Option = Annotated[
    bool, typer.Option("--int8", help="Faster CPU encoder: int8-quantised (agreement measured in the README).")
]


def _model_not_found(exc: Exception) -> NoReturn:
    hint = " (grade without it: --no-judge)" if isinstance(exc, JudgeNotFound) else ""
    err.print(f"[bold red]Model not found:[/] {exc}{hint}", highlight=False)
    raise typer.Exit(2) from None


def _make_grader(  # noqa: ANN202
    rubrics: RubricSet, model: str, max_bytes: int, no_code: bool, unsandboxed: bool,
    cache_dir: Path | None = None, no_cache: bool = False, chunk_size: int = 64, int8: bool = False,
    judge: str | None = DEFAULT_JUDGE,
):
    from grader.cache import default_cache_dir
    from grader.pipeline import GradeOptions, Grader

    options = GradeOptions(
        model=model, max_bytes=max_bytes, run_code=not no_code, allow_unsandboxed=unsandboxed,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()), chunk_size=chunk_size, int8=int8,
        judge=judge,
    )
    try:
        return Grader(rubrics, options)
    except (ModelNotFound, JudgeNotFound) as exc:
        _model_not_found(exc)


@app.command()
def grade(
    submissions: Annotated[list[Path], typer.Argument(help="Submission files or directories of them.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where reports, gradebook and summary go.")] = Path("out"),
    rubrics: RubricsOption = None,
    model: ModelOption = DEFAULT_MODEL,
    max_bytes: MaxBytesOption = 2_000_000,
    no_code: NoCodeOption = False,
    allow_unsandboxed: UnsandboxedOption = False,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Regrade everyone, even students whose report in OUT is still current.")
    ] = False,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Students encoded and written together (memory vs. speed).")
    ] = 64,
    int8: Int8Option = False,
    judge: JudgeOption = DEFAULT_JUDGE,
    no_judge: NoJudgeOption = False,
) -> None:
    """Batch-grade submissions: writes OUT/reports/*.json, OUT/feedback/*.md, OUT/gradebook.csv, OUT/summary.json.

    Reports are written as students finish; a run that was interrupted resumes where it stopped.
    """
    from grader.batch import run_batch
    from grader.parsing import discover

    missing = [p for p in submissions if not p.exists()]
    if missing:
        err.print(f"[bold red]Not found:[/] {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    rubric_set = _load_rubrics(rubrics)
    sources, warnings = discover(list(submissions))
    for w in warnings:
        err.print(f"[yellow]skipped:[/] {w}", markup=True, highlight=False)
    if not sources:
        err.print("[bold red]No submissions found[/] in " + ", ".join(map(str, submissions)))
        raise typer.Exit(1)
    with _make_grader(
        rubric_set, model, max_bytes, no_code, allow_unsandboxed, cache_dir, no_cache, chunk_size, int8,
        None if no_judge else judge,
    ) as grader:
        with Progress(
            TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=err, transient=False,
        ) as bar:
            task = bar.add_task("", total=len(sources))
            outcome = run_batch(
                grader, sources, out_dir, resume=not fresh,
                progress=lambda sid: bar.update(task, advance=1, description=sid),
            )
    _print_summary(outcome.reports, outcome.summary)
    if outcome.reused:
        out.print(f"{outcome.reused} report(s) were still current and kept (--fresh regrades them).")
    out.print(f"Reports written to {out_dir}/ (reports/, feedback/, gradebook.csv, summary.json)")
    if outcome.summary.n_graded == 0:
        raise typer.Exit(1)


def _print_summary(reports, summary) -> None:  # noqa: ANN001
    table = Table(title=f"{summary.n_graded} graded, {summary.n_failed} failed")
    for col in ("student", "total", "%", "missing parts", "status"):
        table.add_column(col, justify="right" if col in {"total", "%"} else "left")
    for r in sorted(reports, key=lambda r: r.student_id):
        if r.status == "graded":
            missing = sum(p.status == "missing" for p in r.parts)
            table.add_row(r.student_id, f"{r.total:g}/{r.max_total:g}", f"{r.percent:.1f}", str(missing), "graded")
        else:
            table.add_row(r.student_id, "-", "-", "-", f"[red]failed: {r.error}[/]")
    out.print(table)


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="Your answer file (txt, md, ipynb, pdf) or a folder of your files.")],
    rubrics: RubricsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report JSON alone on stdout.")] = False,
    model: ModelOption = DEFAULT_MODEL,
    max_bytes: MaxBytesOption = 2_000_000,
    no_code: NoCodeOption = False,
    allow_unsandboxed: UnsandboxedOption = False,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
    judge: JudgeOption = DEFAULT_JUDGE,
    no_judge: NoJudgeOption = False,
) -> None:
    """Self-check one submission: per-part points and feedback."""
    from grader.export import report_json
    from grader.parsing import discover

    if not file.exists():
        err.print(f"[bold red]Not found:[/] {file}")
        raise typer.Exit(2)
    rubric_set = _load_rubrics(rubrics)
    sources, _ = discover([file])
    if len(sources) != 1:
        err.print(f"[bold red]Expected one submission in {file}, found {len(sources)}.[/]")
        raise typer.Exit(2)
    with _make_grader(
        rubric_set, model, max_bytes, no_code, allow_unsandboxed, cache_dir, no_cache, judge=None if no_judge else judge,
    ) as grader:
        (report,) = grader.grade_sources(sources)
    if as_json:
        sys.stdout.write(report_json(report) + "\n")
    else:
        _print_check(report)
    if report.status != "graded":
        raise typer.Exit(1)


def _print_check(report) -> None:  # noqa: ANN001
    if report.status != "graded":
        err.print(f"[bold red]Could not grade {report.student_id}:[/] {report.error}")
        return
    table = Table(title=f"{report.student_id}: {report.total:g} / {report.max_total:g} ({report.percent:.1f}%)")
    table.add_column("part")
    table.add_column("points", justify="right")
    table.add_column("confidence", justify="right")
    table.add_column("feedback")
    for p in report.parts:
        feedback = "\n".join(p.feedback + [f"note: {w}" for w in p.warnings])
        table.add_row(p.part_id, f"{p.points:g}/{p.max_points:g}", f"{p.confidence:.2f}", feedback)
    out.print(table)
    for u in report.unassigned:
        out.print(f"[yellow]Not matched to any part[/] ({u.origin}): {u.text[:200]}", highlight=False)
    for w in report.warnings:
        out.print(f"[yellow]note:[/] {w}", highlight=False)


@app.command()
def validate(directory: Annotated[Path, typer.Argument(help="Directory of rubric YAML files.")]) -> None:
    """Validate rubrics: every problem as `file: field.path: reason`."""
    rubric_set = _load_rubrics(directory)
    n_parts = len(rubric_set.part_ids())
    out.print(
        f"OK: {len(rubric_set.rubrics)} rubrics, {n_parts} parts, {rubric_set.max_points:g} points "
        f"(sha256 {rubric_set.sha256[:12]})"
    )


@app.command()
def schema() -> None:
    """Print the rubric JSON Schema (point your editor's YAML validation at it)."""
    sys.stdout.write(json.dumps(rubric_json_schema(), indent=2) + "\n")


@app.command("eval")
def eval_(
    dataset: Annotated[Path, typer.Argument(help="CSV of human-graded answers (see grader.evaluation).")],
    max_score: Annotated[
        Optional[float], typer.Option("--max-score", help="Maximum points of every question (overrides the CSV).")
    ] = None,
    exemplars: Annotated[
        int, typer.Option("--exemplars", help="Graded answers per question handed to the scorer (removed from the evaluation).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the exemplar draw and --limit sampling.")] = 0,
    split: Annotated[
        Optional[str], typer.Option("--split", help="Evaluate only this split (e.g. test-unseen-answers, UQ) [default: all rows].")
    ] = None,
    keypoints: Annotated[
        str, typer.Option("--keypoints", help="Key points per question: sentences (one per reference sentence) or whole.")
    ] = "sentences",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")] = False,
    predictions_file: Annotated[
        Optional[Path], typer.Option("--predictions", help="Write one CSV row per evaluated answer: gold, predicted, confidence, flags.")
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", help="Evaluate a seeded sample of N rows (and fit on at most N train rows).")
    ] = None,
    model: ModelOption = DEFAULT_MODEL,
    int8: Int8Option = False,
    judge: JudgeOption = DEFAULT_JUDGE,
    no_judge: NoJudgeOption = False,
) -> None:
    """Measure agreement with human graders: grader vs a plain-cosine baseline on a graded-answers CSV."""
    from grader.embedding import Encoder
    from grader.evaluation import EvalError, evaluate, metric_rows
    from grader.pipeline import load_judge

    if keypoints not in ("whole", "sentences"):
        err.print(f"[bold red]--keypoints must be whole or sentences[/] (got {keypoints!r})")
        raise typer.Exit(2)
    try:
        result = evaluate(
            dataset, split=split, max_score=max_score, exemplars=exemplars, seed=seed,
            keypoints=keypoints, limit=limit, encoder=Encoder(model, int8=int8),  # type: ignore[arg-type]
            judge=None if no_judge else load_judge(judge), return_predictions=True,
        )
    except EvalError as exc:
        err.print(f"[bold red]Cannot evaluate ({len(exc.problems)} problem(s)):[/]")
        for line in exc.problems:
            err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (ModelNotFound, JudgeNotFound) as exc:
        _model_not_found(exc)
    result, predictions = result  # type: ignore[misc]
    if predictions_file is not None:
        from grader.evaluation import write_predictions

        write_predictions(predictions, predictions_file)
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
        return
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
        worst = sorted(result.per_question, key=lambda q: (q.exact if q.exact is not None else 1.0))[:5]
        out.print("least agreement: " + ", ".join(f"{q.question_id} ({q.exact:.2f}, n={q.n})" for q in worst if q.exact is not None),
                  highlight=False)
    if result.settings.fit_on_evaluated_rows:
        out.print("[bold yellow]thresholds and the baseline were fitted on the evaluated rows themselves: "
                  "these numbers are optimistic[/]")
    fitted = result.settings.fit_split or "the evaluated rows"
    out.print(
        f"keypoints={result.settings.keypoints} seed={result.settings.seed} qwk_step={result.settings.qwk_step:g} "
        f"fitted on {fitted} ({result.settings.n_fit} rows); {result.timing_s['total']:.1f} s",
        highlight=False,
    )
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
