"""Measure agreement with human graders on a CSV of graded answers (``grader eval``).

The harness turns a table of human-graded short answers into rubrics in memory,
grades every answer with the code ``grader grade`` uses (``Grader`` +
``written_result``), and reports how well the grader's points agree with the
human scores, beside a plain-cosine baseline measured in the same run.

Input
-----
A CSV (comma, semicolon or tab separated; UTF-8, a BOM is fine) with the columns
``question_id, question, reference_answer, student_answer`` and either ``score``
(points) or ``label_2way`` (``correct``/``incorrect``, read as 1/0 points out of 1).
Optional: ``max_score`` (SAF's ``max_score_observed`` is accepted as the same
thing), ``split``, ``reference_answers`` (alternative reference answers joined
by " || "). Column names are matched case-insensitively, spaces as underscores.
The maximum per question is ``--max-score`` if given, else the largest
``max_score`` of the question's rows, else the largest score observed for that
question. Missing columns, unparseable or out-of-range scores are reported as
``file: row N: column: reason`` (N as a spreadsheet shows it: the header is row 1).

Rubrics
-------
One rubric per question, one written part, ``max_points`` = the question's
maximum; the part prompt is the question, key-point labels a short version of
the question. ``--keypoints``:

* ``sentences`` (default): one key point per sentence of the reference
  answer, points split evenly. A one-sentence reference is one key point with
  the alternatives (``reference_answers``) as its paraphrases; a multi-sentence
  one drops the alternatives (an alternative is a whole answer, not a
  paraphrase of one of its sentences).
* ``whole``: one key point = the whole reference answer, the alternatives as
  its paraphrases.

``sentences`` is the default because it did better on the headline metrics of
every train split (whole train splits, no --limit, seed 0, the ScoringConfig
defaults of 2026-11-26; whole -> sentences): SciEntsBank train accuracy 0.643 ->
0.655, Beetle train accuracy 0.681 -> 0.681 (nearly all Beetle references are
one sentence), SAF training Pearson 0.531 -> 0.546, Spearman 0.427 -> 0.448,
Pearson on fractions 0.189 -> 0.233. Its cost: uncalibrated SAF points run
lower (RMSE 0.720 -> 0.797, QWK 0.481 -> 0.371), since a student must match
every sentence of a long reference, grading notes included, for full credit.

The rubrics of one run form one in-memory RubricSet per split (the questions
that split's rows ask), like an assignment: the scorer's off-topic guard compares
an answer with the other questions of the same set.

Exemplars (``--exemplars K``)
-----------------------------
For each question K graded answers are drawn with the seed (one generator per
question, seeded by (seed, question id), so the draw does not depend on which
other questions are present). They come from the question's rows in the train
split when the question appears there (an unseen-answers test split then keeps
all its rows), else from the evaluated rows. Either way, exemplar rows are
removed from the evaluated rows and from the rows the baseline and thresholds
are fitted on. The draw spreads over the human scores: the question's candidate
rows, sorted by score (ties in random order), are cut into K equal slices and
one answer is drawn from each, as a TA picking a few answers across the range
would. With K > 0 the result also holds ``grader_no_exemplars``: the same rows
graded without exemplars, so the gain is measured on identical rows.

Metrics
-------
Each system gives points per answer: the grader its ``PartResult.points``; the
baseline, the cosine of the all-MiniLM-L6-v2 embeddings of the whole student
answer and the whole reference answer (max over the alternatives), mapped to a
fraction of the maximum by a least-squares line fitted on the train split,
clipped to [0, 1] and multiplied by the maximum.

* Pearson, Spearman and RMSE on points (the dataset's units), pooled over all rows.
* QWK (quadratic weighted kappa) on rounded points: points are rounded to the
  dataset's scale, integers when every human score is an integer, else halves
  (SAF: 0, 0.5, ..., max), and the halves doubled to integers for the kappa.
  For ``label_2way`` data QWK is taken on the 2-way decisions below (with two
  classes it is Cohen's kappa).
* ``pearson_fraction`` (points data whose questions have different maxima):
  Pearson on points / max. SAF's maxima run from 0.5 to 3.5, so the pooled
  Pearson on points mostly rewards knowing each question's maximum (the
  baseline's fitted line reaches 0.85 on SAF training that way, 0.20 on fractions).
* ``label_2way`` data: accuracy and macro-F1 of "correct iff predicted fraction
  > t", with t fitted on the train split (``train``/``training``) by maximising
  accuracy; the baseline's threshold is fitted the same way on its cosine. With
  no train split the thresholds and lines are fitted on the evaluated rows
  themselves (optimistic), and the result says so in ``notes``.

``--limit N`` evaluates a seeded sample of N rows and fits on at most N train
rows (for quick looks and sweeps; report numbers without it).
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field

from grader.embedding import DEFAULT_MODEL, Encoder
from grader.rubric import Exemplar, KeyPoint, Part, Rubric, RubricSet
from grader.scoring import ScoringConfig, all_answer_texts
from grader.sentences import split_sentences

if TYPE_CHECKING:
    from grader.judge import Judge

KeypointMode = Literal["whole", "sentences"]
Task = Literal["points", "2way"]

REQUIRED = ("question_id", "question", "reference_answer", "student_answer")
COLUMN_ALIASES = {"max_score_observed": "max_score", "label": "label_2way"}
TRAIN_SPLITS = {"train", "training"}
SPLIT_ALIASES = {"ua": "unseen_answers", "uq": "unseen_questions", "ud": "unseen_domains"}
ALT_SEPARATOR = " || "
LABELS = {"correct": 1.0, "incorrect": 0.0, "1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0}
MAX_REPORTED_PROBLEMS = 20


class EvalError(Exception):
    """A dataset problem, phrased as ``file: row N: column: reason`` lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# -- loading ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One graded answer."""

    row: int
    """Spreadsheet row number (the header is row 1)."""
    split: str
    question_id: str
    question: str
    reference_answer: str
    alternatives: list[str]
    student_answer: str
    score: float
    max_score: float | None


@dataclass
class Dataset:
    path: Path
    rows: list[Row]
    task: Task
    splits: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def train_split(self) -> str | None:
        for name in self.splits:
            if name.strip().lower() in TRAIN_SPLITS:
                return name
        return None


def _norm_column(name: str) -> str:
    key = re.sub(r"\s+", "_", (name or "").strip().lower())
    return COLUMN_ALIASES.get(key, key)


def _sniff_delimiter(sample: str) -> str:
    header = sample.splitlines()[0] if sample else ""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _parse_number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def load_dataset(path: Path | str, max_score: float | None = None) -> Dataset:
    """Read and validate a graded-answers CSV; raise EvalError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError([f"{path}: cannot read as UTF-8 text: {exc}"]) from None
    if max_score is not None and not max_score > 0:
        raise EvalError([f"--max-score must be positive (got {max_score:g})"])
    reader = csv.reader(text.splitlines(keepends=True), delimiter=_sniff_delimiter(text))
    try:
        header = next(reader)
    except StopIteration:
        raise EvalError([f"{path}: empty file (expected a header row)"]) from None
    columns = [_norm_column(c) for c in header]
    index = {}
    for i, c in enumerate(columns):
        index.setdefault(c, i)
    missing = [c for c in REQUIRED if c not in index]
    if "score" not in index and "label_2way" not in index:
        missing.append("score (or label_2way)")
    if missing:
        raise EvalError(
            [f"{path}: row 1: missing column(s): {', '.join(missing)} (found: {', '.join(h.strip() for h in header)})"]
        )
    task: Task = "points" if "score" in index else "2way"

    problems: list[str] = []
    rows: list[Row] = []

    def cell(record: list[str], column: str) -> str:
        i = index.get(column)
        return record[i].strip() if i is not None and i < len(record) else ""

    for n, record in enumerate(reader, start=2):
        if not any(c.strip() for c in record):
            continue  # blank line
        where = f"{path}: row {n}"
        if len(record) < len(header):
            problems.append(f"{where}: has {len(record)} cells, the header has {len(header)} (unquoted comma or newline?)")
            continue
        qid = cell(record, "question_id")
        if not qid:
            problems.append(f"{where}: question_id: empty")
        reference = cell(record, "reference_answer")
        if not reference:
            problems.append(f"{where}: reference_answer: empty")
        if task == "points":
            raw = cell(record, "score")
            score = _parse_number(raw)
            if score is None:
                problems.append(f"{where}: score: not a number: {raw!r}")
                continue
            if score < 0:
                problems.append(f"{where}: score: negative ({raw})")
                continue
        else:
            raw = cell(record, "label_2way")
            label = LABELS.get(raw.lower())
            if label is None:
                problems.append(f"{where}: label_2way: expected correct or incorrect, got {raw!r}")
                continue
            score = label
        row_max: float | None = None
        if task == "2way":
            row_max = 1.0
        elif max_score is not None:
            row_max = max_score
        elif "max_score" in index and cell(record, "max_score"):
            raw_max = cell(record, "max_score")
            row_max = _parse_number(raw_max)
            if row_max is None or row_max <= 0:
                problems.append(f"{where}: max_score: not a positive number: {raw_max!r}")
                continue
        if row_max is not None and score > row_max + 1e-9:
            what = "--max-score" if max_score is not None else "max_score"
            problems.append(f"{where}: score: {score:g} exceeds {what} {row_max:g}")
            continue
        alternatives = [a.strip() for a in cell(record, "reference_answers").split(ALT_SEPARATOR.strip())]
        alternatives = [a for a in alternatives if a and a != reference]
        rows.append(
            Row(
                row=n,
                split=cell(record, "split"),
                question_id=qid,
                question=cell(record, "question") or qid,
                reference_answer=reference,
                alternatives=list(dict.fromkeys(alternatives)),
                student_answer=cell(record, "student_answer"),
                score=score,
                max_score=row_max,
            )
        )
    if problems:
        extra = len(problems) - MAX_REPORTED_PROBLEMS
        shown = problems[:MAX_REPORTED_PROBLEMS]
        if extra > 0:
            shown.append(f"{path}: ... and {extra} more problem(s)")
        raise EvalError(shown)
    if not rows:
        raise EvalError([f"{path}: no data rows after the header"])
    splits = list(dict.fromkeys(r.split for r in rows))
    return Dataset(path=path, rows=rows, task=task, splits=splits)


def _normalize_split(name: str) -> str:
    key = re.sub(r"[\s-]+", "_", name.strip().lower())
    key = SPLIT_ALIASES.get(key, key)
    return key[5:] if key.startswith("test_") else key


def resolve_split(dataset: Dataset, name: str) -> str:
    """The split a user named: exact, or up to case, '-'/'_' and a 'test_' prefix (UA/UQ/UD accepted)."""
    if name in dataset.splits:
        return name
    matches = [s for s in dataset.splits if _normalize_split(s) == _normalize_split(name)]
    if len(matches) == 1:
        return matches[0]
    available = ", ".join(repr(s) for s in dataset.splits if s) or "none (the CSV has no split column)"
    raise EvalError([f"{dataset.path}: split {name!r} not found; available: {available}"])


# -- rubrics ------------------------------------------------------------------------------------


@dataclass
class Question:
    question_id: str
    rubric_id: str
    question: str
    reference_answer: str
    alternatives: list[str]
    max_score: float


def _rubric_id(question_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", question_id).strip("_-")[:40] or "q"
    rid = base if base[0].isalnum() else f"q{base}"
    if rid in taken:
        rid = f"{rid[:40]}-{zlib.crc32(question_id.encode()):08x}"
    taken.add(rid)
    return rid


def short_label(question: str, limit: int = 60) -> str:
    """The question, cut at a word boundary to about `limit` characters."""
    text = re.sub(r"\s+", " ", question).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "..."


def questions_of(
    dataset: Dataset, max_score: float | None = None, notes: list[str] | None = None
) -> dict[str, Question]:
    """One Question per question_id: most frequent reference answer, union of alternatives, the maximum.

    How a maximum was guessed goes to `notes` when given.
    """
    notes = notes if notes is not None else []
    by_q: dict[str, list[Row]] = defaultdict(list)
    for r in dataset.rows:
        by_q[r.question_id].append(r)
    taken: set[str] = set()
    out: dict[str, Question] = {}
    for qid in sorted(by_q, key=_natural):
        rows = by_q[qid]
        reference = Counter(r.reference_answer for r in rows).most_common(1)[0][0]
        alternatives = list(dict.fromkeys(a for r in rows for a in r.alternatives if a != reference))
        question = Counter(r.question for r in rows).most_common(1)[0][0]
        if max_score is not None:
            top = max_score
        else:
            declared = [r.max_score for r in rows if r.max_score is not None]
            top = max(declared) if declared else max(r.score for r in rows)
            if top <= 0:
                top = max((r.score for r in dataset.rows), default=0.0)
                if top <= 0:
                    raise EvalError([f"{dataset.path}: every score is 0 and there is no max_score: pass --max-score"])
                notes.append(f"question {qid}: no positive score or max_score; maximum taken as {top:g}")
        out[qid] = Question(qid, _rubric_id(qid, taken), question, reference, alternatives, float(top))
    if max_score is None and dataset.task == "points" and any(r.max_score is None for r in dataset.rows):
        notes.append("maximum per question = highest score observed for it (no max_score column)")
    return out


def _natural(text: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t)


def key_points_for(question: Question, mode: KeypointMode) -> list[KeyPoint]:
    label = short_label(question.question)
    sentences = split_sentences(question.reference_answer) if mode == "sentences" else []
    if len(sentences) <= 1:
        return [
            KeyPoint(
                id="kp1", label=label, text=question.reference_answer, points=question.max_score,
                paraphrases=question.alternatives,
            )
        ]
    share = question.max_score / len(sentences)
    points = [share] * len(sentences)
    points[-1] = question.max_score - share * (len(sentences) - 1)  # exact total despite float rounding
    return [
        KeyPoint(id=f"kp{i}", label=f"{label} ({i}/{len(sentences)})", text=s, points=p)
        for i, (s, p) in enumerate(zip(sentences, points), 1)
    ]


def build_rubric(question: Question, mode: KeypointMode, exemplars: Sequence[Row] = ()) -> Rubric:
    part = Part(
        id="a",
        kind="written",
        prompt=question.question,
        max_points=question.max_score,
        reference_answer=question.reference_answer,
        key_points=key_points_for(question, mode),
        exemplars=[Exemplar(answer=r.student_answer, points=min(r.score, question.max_score)) for r in exemplars],
    )
    return Rubric(id=question.rubric_id, title=short_label(question.question), parts=[part])


def rubric_set(rubrics: list[Rubric], name: str = "eval") -> RubricSet:
    """An in-memory RubricSet (no files): sources point at a virtual directory, the hash covers the models."""
    digest = hashlib.sha256()
    for r in rubrics:
        digest.update(r.model_dump_json().encode())
    directory = Path(f"<{name}>")
    return RubricSet(
        directory=directory,
        rubrics=rubrics,
        sources={r.id: directory / f"{r.id}.yaml" for r in rubrics},
        sha256=digest.hexdigest(),
    )


# -- exemplars ----------------------------------------------------------------------------------


def _question_rng(seed: int, question_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(question_id.encode("utf-8"))])


def choose_exemplars(pool: Sequence[Row], k: int, seed: int, question_id: str) -> list[Row]:
    """K rows of a question's pool spread over its human scores, drawn with (seed, question id)."""
    pool = [r for r in pool if r.student_answer.strip()]
    if k <= 0 or not pool:
        return []
    rng = _question_rng(seed, question_id)
    position = np.empty(len(pool), dtype=int)
    position[rng.permutation(len(pool))] = np.arange(len(pool))
    ranked = sorted(range(len(pool)), key=lambda i: (pool[i].score, int(position[i])))
    k = min(k, len(pool))
    slices = np.array_split(np.array(ranked), k)
    picked = [int(s[rng.integers(len(s))]) for s in slices]
    return [pool[i] for i in sorted(picked, key=lambda i: pool[i].row)]


# -- metrics ------------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    from scipy.stats import pearsonr

    return _finite(pearsonr(x, y)[0])


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    from scipy.stats import spearmanr

    return _finite(spearmanr(x, y)[0])


def rmse(pred: Sequence[float], gold: Sequence[float]) -> float | None:
    p, g = np.asarray(pred, float), np.asarray(gold, float)
    return float(np.sqrt(np.mean((p - g) ** 2))) if len(p) else None


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa with quadratic weights over the integer ratings min(a, b)..max(a, b)."""
    a, b = np.asarray(a, int), np.asarray(b, int)
    if len(a) == 0:
        return None
    lo, hi = int(min(a.min(), b.min())), int(max(a.max(), b.max()))
    n = hi - lo + 1
    if n == 1:
        return 1.0  # every rating identical in both: perfect agreement
    observed = np.zeros((n, n))
    np.add.at(observed, (a - lo, b - lo), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(a)
    i, j = np.indices((n, n))
    weights = (i - j) ** 2 / (n - 1) ** 2
    denominator = (weights * expected).sum()
    if denominator == 0:
        return None
    return float(1 - (weights * observed).sum() / denominator)


def round_to_step(values: Sequence[float], step: float) -> np.ndarray:
    """Integer ratings: values rounded to the nearest multiple of `step` (halves up), in units of `step`."""
    return np.floor(np.asarray(values, float) / step + 0.5 + 1e-9).astype(int)


def accuracy(pred: Sequence[int], gold: Sequence[int]) -> float | None:
    p, g = np.asarray(pred), np.asarray(gold)
    return float(np.mean(p == g)) if len(p) else None


def macro_f1(pred: Sequence[int], gold: Sequence[int]) -> float | None:
    p, g = np.asarray(pred, int), np.asarray(gold, int)
    if not len(p):
        return None
    scores = []
    for c in (0, 1):
        tp = np.sum((p == c) & (g == c))
        fp = np.sum((p == c) & (g != c))
        fn = np.sum((p != c) & (g == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def fit_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The t maximising accuracy of `score > t` (ties: the middle of the best candidates)."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    values = np.unique(s)
    if len(values) == 0:
        return 0.5
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    accs = np.array([np.mean((s > t) == (y == 1)) for t in candidates])
    best = np.flatnonzero(accs >= accs.max() - 1e-12)
    return float(candidates[best[len(best) // 2]])


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x (slope 0 at the mean when x is constant)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0, float(np.mean(y)) if len(y) else 0.0
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


# -- results ------------------------------------------------------------------------------------


class Metrics(BaseModel):
    """Agreement of one system with the human scores on the evaluated rows."""

    pearson: float | None = None
    spearman: float | None = None
    rmse: float | None = Field(default=None, description="In the dataset's units (points).")
    qwk: float | None = Field(default=None, description="Quadratic weighted kappa on rounded points (2-way: on the decisions).")
    pearson_fraction: float | None = Field(
        default=None,
        description=(
            "Points data whose questions have different maxima: Pearson on points / max, which a system "
            "cannot raise by knowing each question's maximum."
        ),
    )
    accuracy: float | None = Field(default=None, description="2-way data only.")
    macro_f1: float | None = Field(default=None, description="2-way data only.")
    threshold: float | None = Field(
        default=None, description="2-way: fitted threshold (grader: on the fraction of points; baseline: on the cosine)."
    )


class EvalSettings(BaseModel):
    keypoints: KeypointMode
    exemplars: int
    seed: int
    limit: int | None
    max_score: float | None = Field(description="--max-score, when given.")
    qwk_step: float = Field(description="Points are rounded to multiples of this before the QWK.")
    fit_split: str | None = Field(description="Split the thresholds / baseline line were fitted on (None: the evaluated rows).")
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
    settings: EvalSettings
    notes: list[str] = Field(default_factory=list)
    timing_s: dict[str, float] = Field(default_factory=dict)


@dataclass
class Predictions:
    """Per-row outputs of one run (kept out of the JSON)."""

    rows: list[Row]
    gold: np.ndarray
    max_points: np.ndarray
    systems: dict[str, np.ndarray]
    """System name -> predicted points per evaluated row."""


# -- the run ------------------------------------------------------------------------------------


class EvalSession:
    """One encoder and one ScoringConfig shared by several evaluate() calls (a benchmark, a sweep).

    Keeps a Grader per rubric set and the points of every (rubric set, question, answer) graded,
    so answers graded again under the same rubrics (the train rows a threshold is fitted on) are
    not scored twice.
    """

    def __init__(self, encoder: Encoder | None = None, scoring: ScoringConfig | None = None, judge: "Judge | None" = None):
        self.encoder = encoder or Encoder()
        self.scoring = scoring or ScoringConfig()
        self.judge = judge
        # the reference point is always plain all-MiniLM-L6-v2, whatever model the grader uses
        self.baseline_encoder = self.encoder if self.encoder.identity.startswith(f"{DEFAULT_MODEL}@") else Encoder()
        self._graders: dict[str, object] = {}
        self._points: dict[tuple[str, str, str], float] = {}

    def grade(self, rubrics: RubricSet, items: Sequence[tuple[str, str]]) -> np.ndarray:
        """Points for (rubric id, answer) pairs, through the same Grader.score_answers that `grader grade` uses."""
        from grader.pipeline import GradeOptions, Grader

        grader = self._graders.get(rubrics.sha256)
        if grader is None:
            grader = Grader(rubrics, GradeOptions(scoring=self.scoring, run_code=False), encoder=self.encoder,
                            judge=self.judge)
            self._graders[rubrics.sha256] = grader
        todo = list(dict.fromkeys((rid, text) for rid, text in items if (rubrics.sha256, rid, text) not in self._points))
        results = grader.score_answers([(f"{rid}.a", text) for rid, text in todo])  # type: ignore[attr-defined]
        for (rid, text), result in zip(todo, results):
            self._points[(rubrics.sha256, rid, text)] = result.points
        return np.array([self._points[(rubrics.sha256, rid, text)] for rid, text in items], dtype=float)


def _sample(rows: list[Row], limit: int | None, seed: int, salt: int) -> list[Row]:
    if limit is None or len(rows) <= limit:
        return rows
    rng = np.random.default_rng([seed, salt])
    keep = sorted(rng.choice(len(rows), size=limit, replace=False))
    return [rows[i] for i in keep]


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
    judge: "Judge | None" = None,
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
    scoring, encoder = session.scoring, session.encoder
    notes = list(dataset.notes)
    if isinstance(data, Dataset) and max_score is not None:
        notes.append("max_score ignored: the Dataset was loaded already")
    split_name = resolve_split(dataset, split) if split is not None else None
    eval_rows = [r for r in dataset.rows if split_name is None or r.split == split_name]
    train_name = dataset.train_split
    train_rows = [r for r in dataset.rows if train_name is not None and r.split == train_name]
    questions = questions_of(dataset, max_score if not isinstance(data, Dataset) else None, notes)
    if split_name is None and train_name is not None:
        notes.append(f"evaluating every row, the {train_name!r} rows included (pass --split to hold them out)")

    # exemplars: from the question's train rows when it has some, else from the evaluated rows
    by_q_train: dict[str, list[Row]] = defaultdict(list)
    for r in train_rows:
        by_q_train[r.question_id].append(r)
    by_q_eval: dict[str, list[Row]] = defaultdict(list)
    for r in eval_rows:
        by_q_eval[r.question_id].append(r)
    chosen: dict[str, list[Row]] = {}
    if exemplars:
        for qid in set(by_q_train) | set(by_q_eval):
            if by_q_train.get(qid):
                chosen[qid] = choose_exemplars(by_q_train[qid], exemplars, seed, qid)
            else:
                pool = by_q_eval[qid]
                chosen[qid] = choose_exemplars(pool, min(exemplars, len(pool) - 1), seed, qid)
        if split_name is not None and split_name != train_name and train_rows:
            n_from_train = sum(1 for q in by_q_eval if by_q_train.get(q))
            if n_from_train:
                notes.append(
                    f"exemplars of the {n_from_train} evaluated question(s) that appear in {train_name!r} "
                    f"were drawn from {train_name!r}; the others from the evaluated rows"
                )
    exemplar_ids = {id(r) for rows in chosen.values() for r in rows}

    eval_rows = _sample([r for r in eval_rows if id(r) not in exemplar_ids], limit, seed, 1)
    if not eval_rows:
        raise EvalError([f"{dataset.path}: no rows left to evaluate (split {split!r}, exemplars {exemplars})"])
    if train_rows and split_name == train_name:
        fit_rows, fit_split = eval_rows, train_name
        notes.append("evaluating the train split: thresholds and the baseline line are fitted on these same rows")
    elif train_rows:
        fit_rows = _sample([r for r in train_rows if id(r) not in exemplar_ids], limit, seed, 2)
        fit_split = train_name
    else:
        fit_rows = eval_rows
        fit_split = None
        notes.append("no train split: thresholds and the baseline line are fitted on the evaluated rows (optimistic)")
    fit_is_eval = fit_rows is eval_rows or [id(r) for r in fit_rows] == [id(r) for r in eval_rows]

    def rubric_sets(rows: list[Row], with_exemplars: bool) -> RubricSet:
        qids = sorted({r.question_id for r in rows}, key=_natural)
        return rubric_set(
            [build_rubric(questions[q], keypoints, chosen.get(q, []) if with_exemplars else []) for q in qids]
        )

    t0 = time.perf_counter()
    # one batch for everything the run encodes: answers (sentences and windows) and the baseline texts
    references = {q.question_id: [q.reference_answer, *q.alternatives] for q in questions.values()}
    baseline_rows = eval_rows if fit_is_eval else eval_rows + fit_rows
    graded_rows = eval_rows if fit_is_eval or dataset.task == "points" else baseline_rows
    encoder.prime(all_answer_texts((r.student_answer for r in graded_rows), scoring.window))
    baseline_encoder = session.baseline_encoder
    baseline_encoder.prime(
        [r.student_answer for r in baseline_rows] + [t for r in baseline_rows for t in references[r.question_id]]
    )
    t_encode = time.perf_counter() - t0

    def grade(rows: list[Row], with_exemplars: bool) -> np.ndarray:
        rs = rubric_sets(rows, with_exemplars)
        return session.grade(rs, [(questions[r.question_id].rubric_id, r.student_answer) for r in rows])

    def cosine(rows: list[Row]) -> np.ndarray:
        answers = baseline_encoder.encode([r.student_answer for r in rows])
        return np.array(
            [float(np.max(baseline_encoder.encode(references[r.question_id]) @ a)) for r, a in zip(rows, answers)]
        )

    t0 = time.perf_counter()
    variants = [("grader", True)] + ([("grader_no_exemplars", False)] if exemplars else [])
    eval_points = {name: grade(eval_rows, ex) for name, ex in variants}
    if dataset.task == "2way":  # thresholds are fitted on the grader's points for the fitting rows
        fit_points = eval_points if fit_is_eval else {name: grade(fit_rows, ex) for name, ex in variants}
    t_grade = time.perf_counter() - t0

    def arrays(rows: list[Row]) -> tuple[np.ndarray, np.ndarray]:
        tops = np.array([questions[r.question_id].max_score for r in rows])
        return np.array([r.score for r in rows]), tops

    gold, tops = arrays(eval_rows)
    fit_gold, fit_tops = arrays(fit_rows)
    cos_eval = cosine(eval_rows)
    cos_fit = cos_eval if fit_is_eval else cosine(fit_rows)

    if dataset.task == "points":  # the scale of the whole file, so every split rounds alike
        scores = np.array([r.score for r in dataset.rows] + [q.max_score for q in questions.values()])
        step = 1.0 if np.allclose(scores, np.round(scores)) else 0.5
    else:
        step = 1.0

    metrics: dict[str, Metrics] = {}
    slope, intercept = fit_line(cos_fit, fit_gold / fit_tops)
    baseline_points = np.clip(slope * cos_eval + intercept, 0, 1) * tops
    systems = {"baseline": baseline_points, **eval_points}
    for name, points in systems.items():
        m = Metrics(pearson=pearson(points, gold), spearman=spearman(points, gold), rmse=rmse(points, gold))
        if dataset.task == "2way":
            labels = gold.astype(int)
            if name == "baseline":
                t = fit_threshold(cos_fit, fit_gold.astype(int))
                decisions = (cos_eval > t).astype(int)
            else:
                t = fit_threshold(fit_points[name] / fit_tops, fit_gold.astype(int))
                decisions = (points / tops > t).astype(int)
            m.threshold = round(t, 4)
            m.accuracy = accuracy(decisions, labels)
            m.macro_f1 = macro_f1(decisions, labels)
            m.qwk = quadratic_weighted_kappa(decisions, labels)
        else:
            m.qwk = quadratic_weighted_kappa(round_to_step(points, step), round_to_step(gold, step))
            if np.ptp(tops) > 0:
                m.pearson_fraction = pearson(points / tops, gold / tops)
        metrics[name] = m
    if limit is not None:
        notes.append(f"--limit {limit}: a seeded sample of the evaluated rows (and of the fitting rows)")

    result = EvalResult(
        dataset=str(dataset.path),
        split=split_name,
        task=dataset.task,
        n=len(eval_rows),
        n_questions=len({r.question_id for r in eval_rows}),
        n_exemplar_rows=sum(len(chosen.get(q, [])) for q in by_q_eval),
        metrics=metrics,
        settings=EvalSettings(
            keypoints=keypoints,
            exemplars=exemplars,
            seed=seed,
            limit=limit,
            max_score=max_score,
            qwk_step=step,
            fit_split=fit_split,
            n_fit=len(fit_rows),
            scoring=scoring.model_dump(),
            model=model_identity(encoder, session.judge),
        ),
        notes=notes,
        timing_s={
            "encode": round(t_encode, 2),
            "grade": round(t_grade, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    )
    if return_predictions:
        return result, Predictions(rows=eval_rows, gold=gold, max_points=tops, systems=systems)
    return result


METRIC_ORDER = ("accuracy", "macro_f1", "qwk", "pearson", "spearman", "rmse", "pearson_fraction", "threshold")


def metric_rows(result: EvalResult) -> list[tuple[str, list[float | None]]]:
    """(metric, [value per system in result.metrics order]) for the metrics this task reports."""
    names = [m for m in METRIC_ORDER if any(getattr(v, m) is not None for v in result.metrics.values())]
    return [(m, [getattr(v, m) for v in result.metrics.values()]) for m in names]
