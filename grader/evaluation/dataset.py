"""A graded-answers CSV as rows, and the rubrics and exemplars built from it (see grader.evaluation)."""

from __future__ import annotations

import csv
import hashlib
import math
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from grader.rubric import Exemplar, KeyPoint, Part, Rubric, RubricSet
from grader.written import split_sentences

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

    def __init__(self, problems: list[str]) -> None:
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
    text = _read_text(path)
    if max_score is not None and not max_score > 0:
        raise EvalError([f"--max-score must be positive (got {max_score:g})"])
    reader = csv.reader(text.splitlines(keepends=True), delimiter=_sniff_delimiter(text))
    try:
        header = next(reader)
    except StopIteration:
        raise EvalError([f"{path}: empty file (expected a header row)"]) from None
    table = _Table.from_header(path, header, max_score)
    rows: list[Row] = []
    for n, record in enumerate(reader, start=2):
        if not any(c.strip() for c in record):
            continue  # blank line
        row = table.read_row(n, record)
        if row is not None:
            rows.append(row)
    if table.problems:
        extra = len(table.problems) - MAX_REPORTED_PROBLEMS
        shown = table.problems[:MAX_REPORTED_PROBLEMS]
        if extra > 0:
            shown.append(f"{path}: ... and {extra} more problem(s)")
        raise EvalError(shown)
    if not rows:
        raise EvalError([f"{path}: no data rows after the header"])
    splits = list(dict.fromkeys(r.split for r in rows))
    return Dataset(path=path, rows=rows, task=table.task, splits=splits)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError([f"{path}: cannot read as UTF-8 text: {exc}"]) from None


class _BadCell(Exception):
    """A cell that makes its row unreadable; the problem is recorded in _Table.problems."""


@dataclass
class _Table:
    """The CSV's columns, and the problems found in its rows so far."""

    path: Path
    header: list[str]
    index: dict[str, int]
    """Normalised column name -> its first position."""
    task: Task
    max_score: float | None
    """--max-score, when given."""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_header(cls, path: Path, header: list[str], max_score: float | None) -> _Table:
        """Raise EvalError when a required column is missing."""
        index: dict[str, int] = {}
        for i, c in enumerate(_norm_column(c) for c in header):
            index.setdefault(c, i)
        missing = [c for c in REQUIRED if c not in index]
        if "score" not in index and "label_2way" not in index:
            missing.append("score (or label_2way)")
        if missing:
            found = ", ".join(h.strip() for h in header)
            raise EvalError([f"{path}: row 1: missing column(s): {', '.join(missing)} (found: {found})"])
        return cls(path, header, index, "points" if "score" in index else "2way", max_score)

    def cell(self, record: list[str], column: str) -> str:
        i = self.index.get(column)
        return record[i].strip() if i is not None and i < len(record) else ""

    def read_row(self, n: int, record: list[str]) -> Row | None:
        """Row n (as a spreadsheet numbers it), or None when it cannot be read; its problems are recorded."""
        where = f"{self.path}: row {n}"
        if len(record) < len(self.header):
            self.problems.append(
                f"{where}: has {len(record)} cells, the header has {len(self.header)} (unquoted comma or newline?)"
            )
            return None
        qid = self.cell(record, "question_id")
        if not qid:
            self.problems.append(f"{where}: question_id: empty")
        reference = self.cell(record, "reference_answer")
        if not reference:
            self.problems.append(f"{where}: reference_answer: empty")
        try:
            score = self._score(where, record)
            row_max = self._row_max(where, record)
        except _BadCell:
            return None
        if row_max is not None and score > row_max + 1e-9:
            what = "--max-score" if self.max_score is not None else "max_score"
            self.problems.append(f"{where}: score: {score:g} exceeds {what} {row_max:g}")
            return None
        alternatives = [a.strip() for a in self.cell(record, "reference_answers").split(ALT_SEPARATOR.strip())]
        alternatives = [a for a in alternatives if a and a != reference]
        return Row(
            row=n,
            split=self.cell(record, "split"),
            question_id=qid,
            question=self.cell(record, "question") or qid,
            reference_answer=reference,
            alternatives=list(dict.fromkeys(alternatives)),
            student_answer=self.cell(record, "student_answer"),
            score=score,
            max_score=row_max,
        )

    def _bad(self, problem: str) -> _BadCell:
        self.problems.append(problem)
        return _BadCell(problem)

    def _score(self, where: str, record: list[str]) -> float:
        """Points (or 1/0 for label_2way)."""
        if self.task == "points":
            raw = self.cell(record, "score")
            score = _parse_number(raw)
            if score is None:
                raise self._bad(f"{where}: score: not a number: {raw!r}")
            if score < 0:
                raise self._bad(f"{where}: score: negative ({raw})")
            return score
        raw = self.cell(record, "label_2way")
        label = LABELS.get(raw.lower())
        if label is None:
            raise self._bad(f"{where}: label_2way: expected correct or incorrect, got {raw!r}")
        return label

    def _row_max(self, where: str, record: list[str]) -> float | None:
        """The row's maximum: 1 for label_2way, --max-score, the max_score cell, else None (the question's
        largest score decides)."""
        if self.task == "2way":
            return 1.0
        if self.max_score is not None:
            return self.max_score
        if "max_score" in self.index and self.cell(record, "max_score"):
            raw_max = self.cell(record, "max_score")
            row_max = _parse_number(raw_max)
            if row_max is None or row_max <= 0:
                raise self._bad(f"{where}: max_score: not a positive number: {raw_max!r}")
            return row_max
        return None


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
                id="kp1",
                label=label,
                text=question.reference_answer,
                points=question.max_score,
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
