"""`grader grade`: batch-grade a class into a directory of reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from grader.cli.models import open_grader
from grader.cli.options import (
    CLUSTER_DEFAULTS,
    DEFAULT_JUDGE,
    GRADE_DEFAULTS,
    AddressOption,
    BackendOption,
    CacheDirOption,
    ChunkSizeOption,
    CodeWorkersOption,
    ColumnsOption,
    CpusPerWorkerOption,
    DeviceOption,
    GpusPerWorkerOption,
    Int8Option,
    JudgeOption,
    MaxBytesOption,
    ModelOption,
    NoCacheOption,
    NoCodeOption,
    NoJudgeOption,
    RubricsOption,
    UnsandboxedOption,
    WorkersOption,
    cluster_options,
    grade_options,
)
from grader.cli.output import err, fail, out
from grader.cli.rubrics import load_rubrics, rubrics_dir
from grader.report import ClassSummary, StudentReport

if TYPE_CHECKING:
    from grader.batch import ClassRun, RunRecord
    from grader.intake.lms import RosterEntry
    from grader.options import ClusterOptions
    from grader.rubric import RubricSet
    from grader.submission import SubmissionSource


def grade(
    submissions: Annotated[list[Path], typer.Argument(help="Submission files or directories of them.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where reports, gradebook and summary go.")] = Path(
        "out"
    ),
    rubrics: RubricsOption = None,
    model: ModelOption = GRADE_DEFAULTS.model,
    max_bytes: MaxBytesOption = GRADE_DEFAULTS.max_bytes,
    no_code: NoCodeOption = not GRADE_DEFAULTS.run_code,
    allow_unsandboxed: UnsandboxedOption = GRADE_DEFAULTS.allow_unsandboxed,
    code_workers: CodeWorkersOption = GRADE_DEFAULTS.code_workers,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Regrade everyone, even students whose report in OUT is still current.")
    ] = False,
    chunk_size: ChunkSizeOption = GRADE_DEFAULTS.chunk_size,
    int8: Int8Option = GRADE_DEFAULTS.int8,
    judge: JudgeOption = DEFAULT_JUDGE,
    no_judge: NoJudgeOption = False,
    device: DeviceOption = GRADE_DEFAULTS.device,
    columns: ColumnsOption = None,
    backend: BackendOption = CLUSTER_DEFAULTS.backend,
    address: AddressOption = CLUSTER_DEFAULTS.address,
    workers: WorkersOption = CLUSTER_DEFAULTS.workers,
    cpus_per_worker: CpusPerWorkerOption = CLUSTER_DEFAULTS.cpus_per_worker,
    gpus_per_worker: GpusPerWorkerOption = CLUSTER_DEFAULTS.gpus_per_worker,
) -> None:
    """Batch-grade submissions: writes OUT/reports/*.json, OUT/feedback/*.md, OUT/gradebook.csv, OUT/summary.json,
    OUT/report.html.

    Reports are written as students finish; a run that was interrupted resumes where it stopped. A TA's
    decisions in OUT/overrides.sqlite are applied to every report, and teach the grader their parts.
    `--backend ray` grades on a pool of Ray actors (this machine, or a cluster with --address).
    """
    options = grade_options(locals())
    cluster = cluster_options(locals())
    from grader.batch import RunRecord
    from grader.intake.lms import write_roster

    missing = [p for p in submissions if not p.exists()]
    if missing:
        fail(f"Not found: {', '.join(map(str, missing))}")
    rubric_set = load_rubrics(rubrics)
    sources, roster = _gather(submissions, rubric_set, columns, max_bytes)
    record = RunRecord(
        inputs=[p.resolve() for p in submissions],
        rubrics=rubrics_dir(rubrics).resolve(),
        columns=columns,
        options=options,
    )
    if roster:
        write_roster(out_dir, roster)
    run = _grade_with_progress(record, rubric_set, sources, out_dir, resume=not fresh, cluster=cluster)
    _print_outcome(run, out_dir)
    if run.outcome.summary.n_graded == 0:
        raise typer.Exit(1)


def _gather(
    submissions: list[Path], rubric_set: RubricSet, columns: str | None, max_bytes: int
) -> tuple[list[SubmissionSource], list[RosterEntry]]:
    """The students' submissions (and the LMS roster, if any); exits when there are none or the export is bad."""
    from grader.intake.lms import LmsError, gather_sources

    try:
        sources, roster, warnings = gather_sources(submissions, columns, rubric_set.part_ids(), max_bytes=max_bytes)
    except LmsError as exc:
        fail(f"Cannot read the LMS export ({len(exc.problems)} problem(s)):", exc.problems)
    for w in warnings:
        err.print(f"[yellow]skipped:[/] {escape(w)}", highlight=False)
    if not sources:
        fail("No submissions found in " + ", ".join(map(str, submissions)), code=1)
    return sources, roster


def _grade_with_progress(
    record: RunRecord,
    rubric_set: RubricSet,
    sources: list[SubmissionSource],
    out_dir: Path,
    *,
    resume: bool,
    cluster: ClusterOptions,
) -> ClassRun:
    """grade_class with a progress bar on stderr, a student at a time."""
    from grader.batch import grade_class

    with Progress(
        TextColumn("[bold]grading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("", total=len(sources))
        return grade_class(
            record,
            rubric_set,
            sources,
            out_dir,
            resume=resume,
            progress=lambda sid: bar.update(task, advance=1, description=sid),
            open_grader=lambda rubrics, options: open_grader(rubrics, options, cluster),
        )


def _print_outcome(run: ClassRun, out_dir: Path) -> None:
    """The summary table, then what was kept, learned and reviewed, and where the files are."""
    outcome = run.outcome
    print_summary(outcome.reports, outcome.summary)
    if outcome.reused:
        out.print(f"{outcome.reused} report(s) were still current and kept (--fresh regrades them).")
    if run.movement.n_exemplars:
        out.print(run.movement.sentence(), highlight=False)
    reviewed = sum(p.n_reviewed for p in outcome.summary.parts)
    if reviewed:
        out.print(f"{reviewed} answer(s) carry a TA's decision (from {out_dir}/overrides.sqlite).")
    out.print(f"Reports written to {out_dir}/ (reports/, feedback/, gradebook.csv, summary.json, report.html)")


def print_summary(reports: Sequence[StudentReport], summary: ClassSummary) -> None:
    """One row per student: total, percent, missing parts, or why they could not be graded."""
    table = Table(title=f"{summary.n_graded} graded, {summary.n_failed} failed")
    for col in ("student", "total", "%", "missing parts", "status"):
        table.add_column(col, justify="right" if col in {"total", "%"} else "left")
    for r in sorted(reports, key=lambda r: r.student_id):
        if r.status == "graded":
            missing = sum(p.status == "missing" for p in r.parts)
            table.add_row(r.student_id, f"{r.total:g}/{r.max_total:g}", f"{r.percent:.1f}", str(missing), "graded")
        else:
            table.add_row(r.student_id, "-", "-", "-", Text(f"failed: {r.error}", style="red"))
    out.print(table)
