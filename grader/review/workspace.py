"""A graded output directory as a TA works on it: read the reports, record decisions, keep every file in step.

The web app and the terminal verbs (`grader review --list`, `grader override`) both go through
here, so a decision made either way is stored the same way (OUT/overrides.sqlite) and shows
at once in the report JSON, the feedback, the gradebook and the summary, without a regrade.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path

from grader.batch import ClassRun, RunRecord, existing_reports, grade_class, read_run_record
from grader.export import write_student, write_summary
from grader.export.class_report import write_class_report
from grader.pipeline import summarize
from grader.report import ClassSummary, StudentReport
from grader.review.collusion import CollusionPair, class_pairs
from grader.review.corrections import Movement
from grader.review.groups import AnswerGroup, QueueItem, flags_of, group_part, queue
from grader.review.overrides import (
    Action,
    Override,
    OverrideError,
    OverrideStore,
    apply_overrides,
    decide,
    review_progress,
)
from grader.rubric import RubricError, RubricSet, load_rubric_dir
from grader.written import Encoder


class WorkspaceError(Exception):
    """OUT cannot be reviewed as it is (no reports, no record of how it was graded); says what to do."""


class Workspace:
    """OUT/reports, OUT/overrides.sqlite and OUT/run.json, kept consistent under one lock."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.store = OverrideStore(self.out)
        self.record: RunRecord | None = read_run_record(self.out)
        self.lock = threading.RLock()
        self.reload()
        if not self.reports:
            raise WorkspaceError(
                f"{self.out}: no reports to review (grade first: grader grade SUBMISSIONS --out {self.out})"
            )
        self.report_dirty = False

    def reload(self) -> None:
        with self.lock:
            found = existing_reports(self.out).values()
            self.reports: dict[str, StudentReport] = {
                r.student_id: r for r in sorted(found, key=lambda r: r.student_id)
            }
            self._groups: dict[str, list[AnswerGroup]] = {}
            self._pairs: list[CollusionPair] | None = None

    # -- what is there ----------------------------------------------------------------------------
    @property
    def part_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.reports.values():
            for p in r.parts:
                seen.setdefault(p.part_id, None)
        return list(seen)

    def rubrics(self) -> RubricSet:
        if self.record is None:
            raise WorkspaceError(f"{self.out}/run.json is missing: grade again with this version of grader")
        try:
            return load_rubric_dir(self.record.rubrics)
        except RubricError as exc:
            raise WorkspaceError(f"the rubrics in {self.record.rubrics} do not load: {exc.problems[0]}") from None

    @cached_property
    def encoder(self) -> Encoder | None:
        """The run's encoder over the run's cache, for answer groups (None: group without it)."""
        if self.record is None:
            return None
        from grader.cache import Cache

        options = self.record.options
        cache = Cache(options.cache_dir) if options.cache_dir else None
        try:
            return Encoder(options.model, cache=cache, int8=options.int8)
        except Exception:  # noqa: BLE001 - a missing model only costs the grouping by meaning
            return None

    def queue(
        self, part_id: str | None = None, below: float | None = None, pending_only: bool = True
    ) -> list[QueueItem]:
        with self.lock:
            return queue(list(self.reports.values()), part_id, below, pending_only)

    def groups(self, part_id: str) -> list[AnswerGroup]:
        with self.lock:
            if part_id not in self._groups:
                self._groups[part_id] = group_part(self.queue(part_id, pending_only=False), self.encoder)
            return self._groups[part_id]

    def pairs(self) -> list[CollusionPair]:
        with self.lock:
            if self._pairs is None:
                self._pairs = class_pairs([r for r in self.reports.values() if r.status == "graded"])
            return self._pairs

    def item(self, student_id: str, part_id: str) -> QueueItem:
        report = self.reports.get(student_id)
        part = report.part(part_id) if report else None
        if part is None:
            raise OverrideError(f"no part {part_id} for student {student_id} in {self.out}/reports")
        return QueueItem(student_id=student_id, part=part, flags=flags_of(part))

    def last_regrade(self) -> Movement | None:
        value = self.store.last_regrade()
        return Movement.model_validate_json(value) if value else None

    # -- decisions --------------------------------------------------------------------------------
    def decide(
        self,
        targets: Iterable[tuple[str, str]],
        action: Action,
        points: float | None = None,
        comment: str | None = None,
    ) -> list[Override]:
        """Record one decision for each (student, part), then bring every output file up to date."""
        with self.lock:
            decisions = [decide(self.item(s, p).part, s, action, points, comment) for s, p in targets]
            self.store.put(decisions)
            self._apply({d.student_id for d in decisions})
            return decisions

    def undo(self, student_id: str, part_id: str) -> None:
        with self.lock:
            self.item(student_id, part_id)
            self.store.remove(student_id, part_id)
            self._apply({student_id})

    def _apply(self, students: set[str]) -> None:
        decisions = self.store.by_student()
        for sid in students:
            report = apply_overrides(self.reports[sid], decisions.get(sid, {}))
            write_student(self.out, report)
            self.reports[sid] = report
        self._groups.clear()
        self.write_class_files(report_html=False)

    def write_class_files(self, report_html: bool = True) -> ClassSummary:
        """gradebook.csv and summary.json from the reports as they stand (and report.html, or mark it due)."""
        reports = list(self.reports.values())
        previous = self._summary()
        rubrics = self.rubrics()
        summary = summarize(
            reports, rubrics, previous.model if previous else "", previous.wall_time_s if previous else 0.0
        )
        summary = review_progress(summary, reports)
        write_summary(self.out, reports, summary, rubrics)
        if report_html:
            write_class_report(self.out, reports, summary)
        self.report_dirty = not report_html
        return summary

    def _summary(self) -> ClassSummary | None:
        try:
            return ClassSummary.model_validate_json((self.out / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # -- corrections re-grade the class -----------------------------------------------------------
    def regrade(self, progress: Callable[[str], None] | None = None) -> ClassRun:
        """Grade the class again the way it was graded, the TA's decisions as exemplars; reload the reports."""
        from grader.intake.lms import gather_sources

        if self.record is None:
            raise WorkspaceError(f"{self.out}/run.json is missing: grade again with this version of grader")
        rubrics = self.rubrics()
        sources, _, _ = gather_sources(
            self.record.inputs, self.record.columns, rubrics.part_ids(), max_bytes=self.record.options.max_bytes
        )
        encoder = self.encoder
        with self.lock:
            run = grade_class(self.record, rubrics, sources, self.out, progress=progress, encoder=encoder)
            self.reload()
            self.report_dirty = False
        return run


def students_in(groups: Sequence[AnswerGroup], number: int) -> list[str]:
    for g in groups:
        if g.number == number:
            return [i.student_id for i in g.items]
    raise OverrideError(f"no group {number}")
