"""One evaluation run: choose rows and exemplars, grade, fit on train, measure (see grader.evaluation)."""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import numpy as np
from pydantic import BaseModel, Field

from grader.evaluation.dataset import (
    Dataset,
    EvalError,
    KeypointMode,
    Question,
    Row,
    Task,
    _natural,
    build_rubric,
    choose_exemplars,
    load_dataset,
    questions_of,
    resolve_split,
    rubric_set,
)
from grader.evaluation.intervals import Lead, lead
from grader.evaluation.metrics import (
    Metrics,
    QuestionMetrics,
    accuracy,
    confidence_auroc,
    fit_line,
    fit_threshold,
    macro_f1,
    mae,
    pearson,
    quadratic_weighted_kappa,
    rmse,
    round_to_step,
    spearman,
)
from grader.rubric import RubricSet
from grader.written import DEFAULT_MODEL, Encoder, ScoringConfig, all_answer_texts
from grader.written.confidence import HAND_MADE, SIGNALS

if TYPE_CHECKING:
    from grader.pipeline import Grader
    from grader.written import Judge


class EvalSettings(BaseModel):
    keypoints: KeypointMode
    exemplars: int
    seed: int
    limit: int | None
    max_score: float | None = Field(description="--max-score, when given.")
    qwk_step: float = Field(description="Points are rounded to multiples of this before the QWK.")
    fit_split: str | None = Field(
        description="Split the thresholds / baseline line were fitted on (None: the evaluated rows)."
    )
    fit_on_evaluated_rows: bool = Field(
        default=False,
        description="True when thresholds and lines were fitted on the very rows evaluated (optimistic).",
    )
    n_fit: int
    scoring: dict = Field(description="The ScoringConfig the grader ran with.")
    model: str


class EvalResult(BaseModel):
    """What `grader eval` reports: one JSON object with --json."""

    dataset: str
    split: str | None
    task: Task
    n: int = Field(description="Answers evaluated (exemplar rows excluded).")
    n_questions: int
    n_exemplar_rows: int
    metrics: dict[str, Metrics] = Field(
        description="baseline (plain cosine), grader, and with --exemplars grader_no_exemplars on the same rows."
    )
    per_question: list[QuestionMetrics] = Field(
        default_factory=list, description="The grader's agreement per question."
    )
    lead: Lead | None = Field(
        default=None,
        description="The grader's lead over the plain-cosine baseline on the headline metric (accuracy, or Pearson "
        "on points), with a bootstrap interval over questions (grader.evaluation.intervals).",
    )
    settings: EvalSettings
    notes: list[str] = Field(default_factory=list)
    timing_s: dict[str, float] = Field(default_factory=dict)


@dataclass
class Graded:
    """What the grader said about one answer."""

    points: float
    confidence: float
    flags: list[str] = field(default_factory=list)
    signals: dict[str, float] | None = None
    """What the confidence model read (judged answers only)."""


@dataclass
class Predictions:
    """Per-row outputs of one run (kept out of the JSON; `write_predictions` saves them)."""

    rows: list[Row]
    gold: np.ndarray
    max_points: np.ndarray
    systems: dict[str, np.ndarray]
    """System name -> predicted points per evaluated row."""
    confidence: np.ndarray
    flags: list[list[str]]
    decisions: dict[str, np.ndarray] = field(default_factory=dict)
    """2-way data: system name -> the 0/1 decision per row."""
    signals: list[dict[str, float] | None] = field(default_factory=list)
    """What the grader's confidence model read, per row (None where it did not apply)."""


class EvalSession:
    """One encoder and one ScoringConfig shared by several evaluate() calls (a benchmark, a sweep).

    Keeps a Grader per rubric set and what was graded for every (rubric set, question, answer),
    so answers graded again under the same rubrics (the train rows a threshold is fitted on) are
    not scored twice.
    """

    def __init__(
        self, encoder: Encoder | None = None, scoring: ScoringConfig | None = None, judge: Judge | None = None
    ) -> None:
        self.encoder = encoder or Encoder()
        self.scoring = scoring or ScoringConfig()
        self.judge = judge
        # the reference point is always plain all-MiniLM-L6-v2, whatever model the grader uses
        self.baseline_encoder = self.encoder if self.encoder.identity.startswith(f"{DEFAULT_MODEL}@") else Encoder()
        self._graders: dict[str, Grader] = {}
        self._graded: dict[tuple[str, str, str], Graded] = {}

    def grade(self, rubrics: RubricSet, items: Sequence[tuple[str, str]]) -> list[Graded]:
        """Grades for (rubric id, answer) pairs, through the same Grader.score_answers that `grader grade` uses."""
        from grader.pipeline import GradeOptions, Grader

        grader = self._graders.get(rubrics.sha256)
        if grader is None:
            grader = Grader(
                rubrics, GradeOptions(scoring=self.scoring, run_code=False), encoder=self.encoder, judge=self.judge
            )
            self._graders[rubrics.sha256] = grader
        todo = list(
            dict.fromkeys((rid, text) for rid, text in items if (rubrics.sha256, rid, text) not in self._graded)
        )
        results = grader.score_answers([(f"{rid}.a", text) for rid, text in todo])
        for (rid, text), result in zip(todo, results):
            self._graded[(rubrics.sha256, rid, text)] = Graded(
                result.points, result.confidence, list(result.flags), result.confidence_signals
            )
        return [self._graded[(rubrics.sha256, rid, text)] for rid, text in items]


MAX_LINE_ROWS = 600
"""Points data: the grader's line is fitted on at most this many fitting rows (grading every long answer of a
train split twice, with and without exemplars, would dominate the run)."""


def _sample(rows: list[Row], limit: int | None, seed: int, salt: int) -> list[Row]:
    if limit is None or len(rows) <= limit:
        return rows
    rng = np.random.default_rng([seed, salt])
    keep = sorted(rng.choice(len(rows), size=limit, replace=False))
    return [rows[i] for i in keep]


@dataclass
class _Plan:
    """Which rows are evaluated, which fit the thresholds, and each question's exemplars."""

    eval_rows: list[Row]
    fit_rows: list[Row]
    fit_split: str | None
    chosen: dict[str, list[Row]]
    n_exemplar_rows: int
    line_rows: list[Row] = field(default_factory=list)
    """Points data: the fitting rows the grader's line is fitted on (a sample of fit_rows)."""

    @property
    def fit_is_eval(self) -> bool:
        return self.fit_rows is self.eval_rows or [id(r) for r in self.fit_rows] == [id(r) for r in self.eval_rows]


def _plan(
    dataset: Dataset, split_name: str | None, exemplars: int, seed: int, limit: int | None, notes: list[str]
) -> _Plan:
    eval_rows = [r for r in dataset.rows if split_name is None or r.split == split_name]
    train_name = dataset.train_split
    train_rows = [r for r in dataset.rows if train_name is not None and r.split == train_name]
    if split_name is None and train_name is not None:
        notes.append(f"evaluating every row, the {train_name!r} rows included (pass --split to hold them out)")
    by_q_train: dict[str, list[Row]] = defaultdict(list)
    for r in train_rows:
        by_q_train[r.question_id].append(r)
    by_q_eval: dict[str, list[Row]] = defaultdict(list)
    for r in eval_rows:
        by_q_eval[r.question_id].append(r)
    chosen: dict[str, list[Row]] = {}
    if exemplars:  # from the question's train rows when it has some, else from the evaluated rows
        for qid in set(by_q_train) | set(by_q_eval):
            pool = by_q_train.get(qid) or by_q_eval[qid]
            chosen[qid] = choose_exemplars(
                pool, exemplars if by_q_train.get(qid) else min(exemplars, len(pool) - 1), seed, qid
            )
        n_from_train = sum(1 for q in by_q_eval if by_q_train.get(q))
        if split_name is not None and split_name != train_name and train_rows and n_from_train:
            notes.append(
                f"exemplars of the {n_from_train} evaluated question(s) that appear in {train_name!r} "
                f"were drawn from {train_name!r}; the others from the evaluated rows"
            )
    exemplar_ids = {id(r) for rows in chosen.values() for r in rows}
    eval_rows = _sample([r for r in eval_rows if id(r) not in exemplar_ids], limit, seed, 1)
    if not eval_rows:
        raise EvalError([f"{dataset.path}: no rows left to evaluate (split {split_name!r}, exemplars {exemplars})"])
    if train_rows and split_name == train_name:
        notes.append(
            "evaluating the train split: thresholds and the baseline line are fitted on these same rows (optimistic)"
        )
        return _Plan(eval_rows, eval_rows, train_name, chosen, sum(len(chosen.get(q, [])) for q in by_q_eval))
    if train_rows:
        fit_rows = _sample([r for r in train_rows if id(r) not in exemplar_ids], limit, seed, 2)
        return _Plan(eval_rows, fit_rows, train_name, chosen, sum(len(chosen.get(q, [])) for q in by_q_eval))
    notes.append("no train split: thresholds and the baseline line are fitted on the evaluated rows (optimistic)")
    return _Plan(eval_rows, eval_rows, None, chosen, sum(len(chosen.get(q, [])) for q in by_q_eval))


@overload
def evaluate(
    data: Path | str | Dataset,
    *,
    split: str | None = ...,
    max_score: float | None = ...,
    exemplars: int = ...,
    seed: int = ...,
    keypoints: KeypointMode = ...,
    limit: int | None = ...,
    scoring: ScoringConfig | None = ...,
    encoder: Encoder | None = ...,
    session: EvalSession | None = ...,
    return_predictions: Literal[False] = ...,
    judge: Judge | None = ...,
) -> EvalResult: ...


@overload
def evaluate(
    data: Path | str | Dataset,
    *,
    split: str | None = ...,
    max_score: float | None = ...,
    exemplars: int = ...,
    seed: int = ...,
    keypoints: KeypointMode = ...,
    limit: int | None = ...,
    scoring: ScoringConfig | None = ...,
    encoder: Encoder | None = ...,
    session: EvalSession | None = ...,
    return_predictions: Literal[True],
    judge: Judge | None = ...,
) -> tuple[EvalResult, Predictions]: ...


def evaluate(
    data: Path | str | Dataset,
    *,
    split: str | None = None,
    max_score: float | None = None,
    exemplars: int = 0,
    seed: int = 0,
    keypoints: KeypointMode = "sentences",
    limit: int | None = None,
    scoring: ScoringConfig | None = None,
    encoder: Encoder | None = None,
    session: EvalSession | None = None,
    return_predictions: bool = False,
    judge: Judge | None = None,
) -> EvalResult | tuple[EvalResult, Predictions]:
    """Grade the rows of `split` (default: every row) and compare with the human scores.

    `data` is a CSV path or a Dataset from load_dataset (pass one to run several settings
    without re-reading the file). `session` (an EvalSession) overrides `scoring` and `encoder`
    and carries graded answers over between calls. Raises EvalError for bad input.
    """
    started = time.perf_counter()
    dataset = data if isinstance(data, Dataset) else load_dataset(data, max_score)
    if exemplars < 0:
        raise EvalError([f"--exemplars must be >= 0 (got {exemplars})"])
    if limit is not None and limit < 1:
        raise EvalError([f"--limit must be >= 1 (got {limit})"])
    from grader.pipeline import model_identity  # lazily, as in EvalSession.grade

    session = session or EvalSession(encoder, scoring, judge)
    notes = list(dataset.notes)
    if isinstance(data, Dataset) and max_score is not None:
        notes.append("max_score ignored: the Dataset was loaded already")
    split_name = resolve_split(dataset, split) if split is not None else None
    questions = questions_of(dataset, max_score if not isinstance(data, Dataset) else None, notes)
    plan = _plan(dataset, split_name, exemplars, seed, limit, notes)
    t0 = time.perf_counter()
    _prime(session, dataset, plan, questions)
    t_encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    graded, fit_graded = _grade_variants(session, dataset, questions, keypoints, plan, exemplars, seed)
    t_grade = time.perf_counter() - t0
    metrics, predictions = _measure(session, dataset, questions, plan, graded, fit_graded)
    if limit is not None:
        notes.append(f"--limit {limit}: a seeded sample of the evaluated rows (and of the fitting rows)")
    result = EvalResult(
        dataset=str(dataset.path),
        split=split_name,
        task=dataset.task,
        n=len(plan.eval_rows),
        n_questions=len({r.question_id for r in plan.eval_rows}),
        n_exemplar_rows=plan.n_exemplar_rows,
        metrics=metrics,
        per_question=per_question(predictions, "grader", _qwk_step(dataset, questions)),
        lead=lead_over_baseline(predictions, seed),
        settings=EvalSettings(
            keypoints=keypoints,
            exemplars=exemplars,
            seed=seed,
            limit=limit,
            max_score=max_score,
            qwk_step=_qwk_step(dataset, questions),
            fit_split=plan.fit_split,
            fit_on_evaluated_rows=plan.fit_is_eval,
            n_fit=len(plan.fit_rows),
            scoring=session.scoring.model_dump(),
            model=model_identity(session.encoder, session.judge),
        ),
        notes=notes,
        timing_s={
            "encode": round(t_encode, 2),
            "grade": round(t_grade, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    )
    return (result, predictions) if return_predictions else result


def _references(questions: dict[str, Question]) -> dict[str, list[str]]:
    return {q.question_id: [q.reference_answer, *q.alternatives] for q in questions.values()}


def _prime(session: EvalSession, dataset: Dataset, plan: _Plan, questions: dict[str, Question]) -> None:
    """One batch for everything the run encodes: answers (sentences and windows) and the baseline texts."""
    references = _references(questions)
    baseline_rows = plan.eval_rows if plan.fit_is_eval else plan.eval_rows + plan.fit_rows
    graded_rows = plan.eval_rows if plan.fit_is_eval or dataset.task == "points" else baseline_rows
    session.encoder.prime(all_answer_texts((r.student_answer for r in graded_rows), session.scoring.window))
    session.baseline_encoder.prime(
        [r.student_answer for r in baseline_rows] + [t for r in baseline_rows for t in references[r.question_id]]
    )


def _grade_variants(
    session: EvalSession,
    dataset: Dataset,
    questions: dict[str, Question],
    keypoints: KeypointMode,
    plan: _Plan,
    exemplars: int,
    seed: int,
) -> tuple[dict[str, list[Graded]], dict[str, list[Graded]]]:
    """The evaluated rows graded with the exemplars (and without them, when there are any); the same for the
    fitting rows when they are other rows."""
    variants = [("grader", True)] + ([("grader_no_exemplars", False)] if exemplars else [])
    graded = {name: _grade(session, questions, keypoints, plan, plan.eval_rows, ex) for name, ex in variants}
    fit_graded = graded
    if not plan.fit_is_eval:  # 2-way: thresholds; points: a line, as the baseline gets, fitted on the fitting rows
        if dataset.task == "points":  # long answers: the grader's line is fitted on a seeded sample
            plan.line_rows = _sample(plan.fit_rows, MAX_LINE_ROWS, seed, 3)
        fit_graded = {
            name: _grade(session, questions, keypoints, plan, plan.line_rows or plan.fit_rows, ex)
            for name, ex in variants
        }
    return graded, fit_graded


def _grade(
    session: EvalSession,
    questions: dict[str, Question],
    keypoints: KeypointMode,
    plan: _Plan,
    rows: list[Row],
    with_exemplars: bool,
) -> list[Graded]:
    qids = sorted({r.question_id for r in rows}, key=_natural)
    rubrics = rubric_set(
        [build_rubric(questions[q], keypoints, plan.chosen.get(q, []) if with_exemplars else []) for q in qids]
    )
    return session.grade(rubrics, [(questions[r.question_id].rubric_id, r.student_answer) for r in rows])


def _qwk_step(dataset: Dataset, questions: dict[str, Question]) -> float:
    """Points data: the scale of the whole file (integers, else halves), so every split rounds alike."""
    if dataset.task != "points":
        return 1.0
    scores = np.array([r.score for r in dataset.rows] + [q.max_score for q in questions.values()])
    return 1.0 if np.allclose(scores, np.round(scores)) else 0.5


def _cosines(session: EvalSession, rows: list[Row], references: dict[str, list[str]]) -> np.ndarray:
    encoder = session.baseline_encoder
    answers = encoder.encode([r.student_answer for r in rows])
    return np.array([float(np.max(encoder.encode(references[r.question_id]) @ a)) for r, a in zip(rows, answers)])


def _measure(
    session: EvalSession,
    dataset: Dataset,
    questions: dict[str, Question],
    plan: _Plan,
    graded: dict[str, list[Graded]],
    fit_graded: dict[str, list[Graded]],
) -> tuple[dict[str, Metrics], Predictions]:
    def arrays(rows: list[Row]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([r.score for r in rows]), np.array([questions[r.question_id].max_score for r in rows])

    gold, tops = arrays(plan.eval_rows)
    fit_gold, fit_tops = arrays(plan.fit_rows)
    references = _references(questions)
    cos_eval = _cosines(session, plan.eval_rows, references)
    cos_fit = cos_eval if plan.fit_is_eval else _cosines(session, plan.fit_rows, references)
    step = _qwk_step(dataset, questions)
    slope, intercept = fit_line(cos_fit, fit_gold / fit_tops)
    systems = {"baseline": np.clip(slope * cos_eval + intercept, 0, 1) * tops}
    systems.update({name: np.array([g.points for g in gs]) for name, gs in graded.items()})
    if dataset.task == "points" and not plan.fit_is_eval:
        # the grader's fractions get what the baseline's cosine gets: a line fitted on the fitting rows
        line_gold, line_tops = arrays(plan.line_rows)
        for name in graded:
            fit_fraction = np.array([g.points for g in fit_graded[name]]) / line_tops
            a, b = fit_line(fit_fraction, line_gold / line_tops)
            systems[name] = np.clip(a * systems[name] / tops + b, 0, 1) * tops
    confidence = np.array([g.confidence for g in graded["grader"]])
    predictions = Predictions(
        plan.eval_rows,
        gold,
        tops,
        systems,
        confidence,
        [g.flags for g in graded["grader"]],
        signals=[g.signals for g in graded["grader"]],
    )
    metrics: dict[str, Metrics] = {}
    for name, points in systems.items():
        m = Metrics(
            pearson=pearson(points, gold),
            spearman=spearman(points, gold),
            rmse=rmse(points, gold),
            mae=mae(points, gold),
        )
        if dataset.task == "2way":
            if name == "baseline":
                t = fit_threshold(cos_fit, fit_gold.astype(int))
                decisions = (cos_eval > t).astype(int)
            else:
                fit_points = np.array([g.points for g in fit_graded[name]])
                t = fit_threshold(fit_points / fit_tops, fit_gold.astype(int))
                decisions = (points / tops > t).astype(int)
            predictions.decisions[name] = decisions
            m.threshold = round(t, 4)
            m.accuracy = m.exact = accuracy(decisions, gold.astype(int))
            m.macro_f1 = macro_f1(decisions, gold.astype(int))
            m.qwk = quadratic_weighted_kappa(decisions, gold.astype(int))
        else:
            rounded, rounded_gold = round_to_step(points, step), round_to_step(gold, step)
            m.qwk = quadratic_weighted_kappa(rounded, rounded_gold)
            m.exact = accuracy(rounded, rounded_gold)
            if np.ptp(tops) > 0:
                m.pearson_fraction = pearson(points / tops, gold / tops)
        if name == "grader":
            m.confidence_auroc = confidence_auroc(confidence, points, gold, tops)
        metrics[name] = m
    return metrics, predictions


def _headline(predictions: Predictions, system: str) -> tuple[np.ndarray, np.ndarray, str]:
    """What a system's lead is measured on: its 2-way decisions against the labels, else its points."""
    if system in predictions.decisions:
        return predictions.decisions[system], predictions.gold.astype(int), "accuracy"
    return predictions.systems[system], predictions.gold, "pearson"


def lead_over_baseline(predictions: Predictions, seed: int = 0) -> Lead | None:
    """The grader's lead over the baseline: accuracy of the decisions (2-way) or Pearson on points."""
    if not predictions.rows:
        return None
    grader, gold, metric = _headline(predictions, "grader")
    baseline, _, _ = _headline(predictions, "baseline")
    return lead([r.question_id for r in predictions.rows], gold, grader, baseline, metric, seed=seed)


def change_between(before: Predictions, after: Predictions, seed: int = 0) -> Lead | None:
    """How far the grader of one run moved from another's on the same rows (a setting against the shipped one)."""
    if [r.row for r in before.rows] != [r.row for r in after.rows]:
        raise ValueError("the two runs graded different rows")
    if not after.rows:
        return None
    new, gold, metric = _headline(after, "grader")
    old, _, _ = _headline(before, "grader")
    return lead([r.question_id for r in after.rows], gold, new, old, metric, seed=seed)


def per_question(predictions: Predictions, system: str, step: float) -> list[QuestionMetrics]:
    """Exact agreement, MAE and QWK of one system, question by question."""
    by_q: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(predictions.rows):
        by_q[row.question_id].append(i)
    out = []
    for qid in sorted(by_q, key=_natural):
        idx = np.array(by_q[qid])
        gold, points = predictions.gold[idx], predictions.systems[system][idx]
        if system in predictions.decisions:
            rated, rated_gold = predictions.decisions[system][idx], gold.astype(int)
        else:
            rated, rated_gold = round_to_step(points, step), round_to_step(gold, step)
        out.append(
            QuestionMetrics(
                question_id=qid,
                n=len(idx),
                exact=accuracy(rated, rated_gold),
                mae=mae(points, gold),
                qwk=quadratic_weighted_kappa(rated, rated_gold) if len(idx) > 1 else None,
            )
        )
    return out


def write_predictions(predictions: Predictions, path: Path) -> None:
    """One CSV row per evaluated answer: gold, each system's points (and decision), confidence, flags,
    and what the confidence model read (training/fit_confidence.py fits it on these columns)."""
    systems = list(predictions.systems)
    read = [s or {} for s in predictions.signals] or [{} for _ in predictions.rows]
    names = [n for n in (*SIGNALS, HAND_MADE) if any(n in s for s in read)]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        header = ["row", "split", "question_id", "student_answer", "gold", "max_points", "confidence", "flags"]
        header += [f"{s}_points" for s in systems] + [f"{s}_decision" for s in systems if s in predictions.decisions]
        header += [f"signal_{n}" for n in names]
        writer.writerow(header)
        for i, row in enumerate(predictions.rows):
            record = [
                row.row,
                row.split,
                row.question_id,
                row.student_answer,
                f"{predictions.gold[i]:g}",
                f"{predictions.max_points[i]:g}",
                f"{predictions.confidence[i]:.3f}",
                " ".join(predictions.flags[i]),
            ]
            record += [f"{predictions.systems[s][i]:.4f}" for s in systems]
            record += [int(predictions.decisions[s][i]) for s in systems if s in predictions.decisions]
            record += [f"{read[i][n]:.4f}" if n in read[i] else "" for n in names]
            writer.writerow(record)


METRIC_ORDER = (
    "accuracy",
    "macro_f1",
    "exact",
    "mae",
    "qwk",
    "pearson",
    "spearman",
    "rmse",
    "pearson_fraction",
    "confidence_auroc",
    "threshold",
)


def metric_rows(result: EvalResult) -> list[tuple[str, list[float | None]]]:
    """(metric, [value per system in result.metrics order]) for the metrics this task reports."""
    names = [m for m in METRIC_ORDER if any(getattr(v, m) is not None for v in result.metrics.values())]
    if result.task == "2way":
        names = [m for m in names if m != "exact"]  # the accuracy, under its own name
    return [(m, [getattr(v, m) for v in result.metrics.values()]) for m in names]
