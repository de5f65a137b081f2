"""Submissions from an LMS export: one CSV, turned into one submission per student.

The native layout is long: one row per student and part, columns ``student_id``, ``part_id``,
``answer``. A column map (``grader grade answers.csv --columns SPEC``) reads two LMS exports
as they are downloaded:

* ``layout=canvas``: Canvas's quiz "Student Analysis" report (classic quizzes). Identity
  columns ``name, id, sis_id, [root_account,] section, section_id, section_sis_id,
  submitted, [attempt]``, then per question a ``<question id>: <question text>`` column
  (the answer, HTML for essay questions) followed by its score column, then ``n correct,
  n incorrect, score``. Map questions by Canvas question id (``1034=q1.a``) or by position
  (``#1=q1.a``). The student id is ``sis_id``, else Canvas's ``id``; of several attempts
  the highest ``attempt`` is graded.
* ``layout=moodle``: Moodle's quiz "Responses" report. Identity columns ``Surname, First
  name, [Institution, Department,] Email address, [ID number,] State, Started on,
  Completed, Time taken, Grade/<max>``, then ``Response 1``, ``Response 2``, ... (and
  ``Right answer N`` when shown). Map responses by number (``1=q1.a``). The student id is
  ``ID number``, else ``Username``, else ``Email address``; of several attempts the last
  row is graded.

SPEC is ``key=value`` pairs separated by commas, or a YAML/JSON file of the same keys:
``layout`` (long, canvas or moodle), ``student`` (the column holding the student id),
``part`` and ``answer`` (long layout: the part and answer columns), and every other key a
question mapped to a part id. Text from the LMS is student text: each answer is cut at
``max_bytes`` (with a warning), HTML is reduced to its text, and a row that names an unknown
part or student is reported, never guessed at.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable, Sequence
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from grader.intake.discover import discover
from grader.submission import MAX_FILE_BYTES, Answer, Submission, SubmissionError, SubmissionSource

Layout = Literal["long", "canvas", "moodle"]
ROSTER_NAME = "roster.json"

CANVAS_IDENTITY = (
    "name",
    "id",
    "sis_id",
    "root_account",
    "section",
    "section_id",
    "section_sis_id",
    "submitted",
    "attempt",
)
CANVAS_SUMMARY = ("n correct", "n incorrect", "score")
_CANVAS_QUESTION = re.compile(r"^(\d+):\s*(.*)$", re.S)
_MOODLE_RESPONSE = re.compile(r"^response\s+(\d+)$", re.I)


class LmsError(Exception):
    """A CSV or column map that cannot be read: every line says file, row or column, and why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ColumnMap(BaseModel):
    """How to read an LMS CSV (see the module docstring for the layouts)."""

    layout: Layout = "long"
    student: str | None = Field(default=None, description="Column with the student id [default: per layout].")
    part: str = Field(default="part_id", description="Long layout: the column with the part id.")
    answer: str = Field(default="answer", description="Long layout: the column with the answer text.")
    questions: dict[str, str] = Field(
        default_factory=dict, description="Wide layouts: question (Canvas id, #position, Moodle number) -> part id."
    )

    @classmethod
    def parse(cls, spec: str | None) -> ColumnMap:
        """From `--columns`: a YAML/JSON file, or inline ``key=value,...``; None is the long layout."""
        if not spec:
            return cls()
        path = Path(spec)
        if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise LmsError([f"{spec}: a column map is a mapping of keys to values"])
        else:
            data = {}
            for item in spec.split(","):
                key, sep, value = item.partition("=")
                if not sep:
                    if item.strip() in ("long", "canvas", "moodle"):
                        data["layout"] = item.strip()
                        continue
                    raise LmsError([f"--columns: '{item}' is not key=value (e.g. layout=canvas,1034=q1.a)"])
                data[key.strip()] = value.strip()
        fields = {k: data.pop(k) for k in ("layout", "student", "part", "answer") if k in data}
        questions = {str(k): str(v) for k, v in (data.pop("questions", None) or {}).items()}
        questions.update({str(k): str(v) for k, v in data.items()})
        try:
            return cls(**fields, questions=questions)
        except ValidationError as exc:
            raise LmsError([f"--columns: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None


class RosterEntry(BaseModel):
    """Who a student is in the LMS, for exports back to it."""

    student_id: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    lms_id: str | None = None
    sis_id: str | None = None
    email: str | None = None
    section: str | None = None


class LmsImport(BaseModel):
    sources: list[SubmissionSource]
    roster: list[RosterEntry]
    warnings: list[str] = Field(default_factory=list)


class _Text(HTMLParser):
    BREAKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001
        if tag in self.BREAKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BREAKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        self.out.append(data)


def html_to_text(value: str) -> str:
    """The text of an HTML answer (Canvas stores essay answers as HTML); plain text passes through."""
    if "<" not in value:
        return html.unescape(value)
    parser = _Text()
    parser.feed(value)
    parser.close()
    text = "".join(parser.out)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()


def _decode(path: Path, warnings: list[str]) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        warnings.append(f"{path.name}: not UTF-8; read as Windows-1252")
        return data.decode("cp1252", errors="replace")


def _rows(path: Path, warnings: list[str]) -> list[list[str]]:
    text = _decode(path, warnings)
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(1 << 30)
    return [row for row in csv.reader(io.StringIO(text, newline=""), dialect) if any(cell.strip() for cell in row)]


def _cut(text: str, max_bytes: int, where: str, notes: list[str]) -> str:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    notes.append(f"{where}: answer longer than {max_bytes} bytes; cut to that length")
    return data[:max_bytes].decode("utf-8", "ignore")


def _column(header: list[str], name: str) -> int | None:
    wanted = name.strip().lower()
    for i, h in enumerate(header):
        if h.strip().lower() == wanted:
            return i
    return None


def read_lms_csv(
    path: Path, columns: ColumnMap, part_ids: Sequence[str], *, max_bytes: int = MAX_FILE_BYTES
) -> LmsImport:
    """One submission per student from an LMS CSV (see the module docstring)."""
    warnings: list[str] = []
    rows = _rows(path, warnings)
    if not rows:
        raise LmsError([f"{path}: no rows"])
    header, body = rows[0], rows[1:]
    reader = {"long": _long, "canvas": _canvas, "moodle": _moodle}[columns.layout]
    per_student, roster, problems = reader(path, header, body, columns, set(part_ids))
    if problems:
        raise LmsError(problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else []))
    sources = []
    for sid, answers in per_student.items():
        notes: list[str] = []
        kept = [
            Answer(part_id=pid, text=_cut(text, max_bytes, origin, notes), origin=origin)
            for pid, (text, origin) in answers.items()
        ]
        sources.append(SubmissionSource(student_id=sid, paths=[path], answers=kept, notes=notes))
    return LmsImport(sources=sources, roster=list(roster.values()), warnings=warnings)


Rows = tuple[dict[str, dict[str, tuple[str, str]]], dict[str, RosterEntry], list[str]]


def _long(path: Path, header: list[str], body: list[list[str]], cm: ColumnMap, parts: set[str]) -> Rows:
    names = {"student": cm.student or "student_id", "part": cm.part, "answer": cm.answer}
    found = {k: _column(header, v) for k, v in names.items()}
    missing = [
        f"{path}: column '{names[k]}' not found (columns: {', '.join(header)})" for k, v in found.items() if v is None
    ]
    if missing:
        return {}, {}, missing
    idx = {k: v for k, v in found.items() if v is not None}
    out: dict[str, dict[str, tuple[str, str]]] = {}
    roster: dict[str, RosterEntry] = {}
    problems: list[str] = []
    for n, row in enumerate(body, 2):
        sid, pid = (row[idx[k]].strip() if idx[k] < len(row) else "" for k in ("student", "part"))
        text = row[idx["answer"]] if idx["answer"] < len(row) else ""
        if not sid:
            problems.append(f"{path}: row {n}: {names['student']}: empty")
            continue
        if pid not in parts:
            problems.append(
                f"{path}: row {n}: {names['part']}: unknown part '{pid}' (parts: {', '.join(sorted(parts))})"
            )
            continue
        roster.setdefault(sid, RosterEntry(student_id=sid))
        if text.strip():
            if pid in out.get(sid, {}):
                problems.append(f"{path}: row {n}: a second answer from {sid} to {pid}")
                continue
            out.setdefault(sid, {})[pid] = (text, f"{path.name} row {n}")
        else:
            out.setdefault(sid, {})
    return out, roster, problems


def _question_map(
    path: Path, found: list[tuple[int, str, str]], cm: ColumnMap, parts: set[str], how: str
) -> tuple[dict[int, str], list[str]]:
    """Column index -> part id for the question columns found ((index, key, shown name))."""
    problems = [
        f"{path}: --columns maps {k}={v}, but {v} is not a rubric part"
        for k, v in cm.questions.items()
        if v not in parts
    ]
    if not cm.questions:
        listed = "; ".join(f"{key} ({name[:50]})" for _, key, name in found) or "none"
        return {}, [f"{path}: map its questions to rubric parts with --columns ({how}); questions found: {listed}"]
    mapping: dict[int, str] = {}
    keys = {key for _, key, _ in found}
    for position, (col, key, _) in enumerate(found, 1):
        part = cm.questions.get(key) or cm.questions.get(f"#{position}")
        if part is not None:
            mapping[col] = part
    unknown = [
        k
        for k in cm.questions
        if k not in keys and not (k.startswith("#") and k[1:].isdigit() and 1 <= int(k[1:]) <= len(found))
    ]
    problems += [f"{path}: --columns names question {k}, which is not in the file" for k in unknown]
    return mapping, problems


def _wide(
    path: Path,
    body: list[list[str]],
    mapping: dict[int, str],
    identify: Callable[[list[str]], RosterEntry | None],
    attempt_col: int | None,
    html_answers: bool,
) -> Rows:
    out: dict[str, dict[str, tuple[str, str]]] = {}
    roster: dict[str, RosterEntry] = {}
    best: dict[str, float] = {}
    problems: list[str] = []
    for n, row in enumerate(body, 2):
        entry = identify(row)
        if entry is None:
            problems.append(f"{path}: row {n}: no student id")
            continue
        sid = entry.student_id
        attempt = (
            float(row[attempt_col])
            if attempt_col is not None and attempt_col < len(row) and _number(row[attempt_col])
            else float(n)
        )
        if sid in best and attempt < best[sid]:
            continue  # an earlier attempt: the latest one is graded
        best[sid] = attempt
        roster[sid] = entry
        answers: dict[str, tuple[str, str]] = {}
        for col, pid in mapping.items():
            raw = row[col] if col < len(row) else ""
            text = html_to_text(raw) if html_answers else raw
            if text.strip() and text.strip() != "-":
                answers[pid] = (text, f"{path.name} row {n}")
        out[sid] = answers
    return out, roster, problems


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _IdentityCells:
    """Who a row of a wide export is: its identity columns by name, and the student id, taken from
    the column `--columns student=` names, else from the layout's columns in order."""

    def __init__(
        self, path: Path, header: list[str], names: Sequence[str], student: str | None, problems: list[str]
    ) -> None:
        self.columns = {name: _column(header, name) for name in names}
        self.student = _column(header, student) if student else None
        if student and self.student is None:
            problems.append(f"{path}: student column '{student}' not found")

    @staticmethod
    def _cell(row: list[str], i: int | None) -> str | None:
        return row[i].strip() or None if i is not None and i < len(row) else None

    def get(self, row: list[str], name: str) -> str | None:
        return self._cell(row, self.columns.get(name))

    def student_id(self, row: list[str], *fallbacks: str) -> str | None:
        return self._cell(row, self.student) or next((v for name in fallbacks if (v := self.get(row, name))), None)


def _canvas(path: Path, header: list[str], body: list[list[str]], cm: ColumnMap, parts: set[str]) -> Rows:
    found = []
    for i, h in enumerate(header):
        m = _CANVAS_QUESTION.match(h.strip())
        if m and h.strip().lower() not in CANVAS_SUMMARY:
            found.append((i, m.group(1), m.group(2)))
    mapping, problems = _question_map(path, found, cm, parts, "e.g. layout=canvas,1034=q1.a or #1=q1.a")
    cells = _IdentityCells(path, header, CANVAS_IDENTITY, cm.student, problems)
    if problems:
        return {}, {}, problems

    def identify(row: list[str]) -> RosterEntry | None:
        sid = cells.student_id(row, "sis_id", "id")
        if not sid:
            return None
        get = partial(cells.get, row)
        return RosterEntry(
            student_id=sid, name=get("name"), lms_id=get("id"), sis_id=get("sis_id"), section=get("section")
        )

    return _wide(path, body, mapping, identify, cells.columns["attempt"], html_answers=True)


def _moodle(path: Path, header: list[str], body: list[list[str]], cm: ColumnMap, parts: set[str]) -> Rows:
    found = [(i, m.group(1), h) for i, h in enumerate(header) if (m := _MOODLE_RESPONSE.match(h.strip()))]
    mapping, problems = _question_map(path, found, cm, parts, "e.g. layout=moodle,1=q1.a")
    names = ("surname", "first name", "email address", "id number", "username")
    cells = _IdentityCells(path, header, names, cm.student, problems)
    if problems:
        return {}, {}, problems
    body = [row for row in body if not (row and row[0].strip().lower().startswith("overall average"))]

    def identify(row: list[str]) -> RosterEntry | None:
        sid = cells.student_id(row, "id number", "username", "email address")
        if not sid:
            return None
        get = partial(cells.get, row)
        first, last = get("first name"), get("surname")
        return RosterEntry(
            student_id=sid,
            first_name=first,
            last_name=last,
            sis_id=get("id number"),
            email=get("email address"),
            name=" ".join(x for x in (first, last) if x) or None,
        )

    return _wide(path, body, mapping, identify, None, html_answers=False)


def submission_of(source: SubmissionSource) -> Submission:
    """The submission an LMS row set already is (Grader.parse hands such sources here)."""
    if not source.answers:
        raise SubmissionError(f"{source.student_id}: no answers in {', '.join(p.name for p in source.paths)}")
    return Submission(
        student_id=source.student_id,
        files=[str(p) for p in source.paths],
        format="lms",
        answers=list(source.answers),
        warnings=list(source.notes),
    )


def gather_sources(
    inputs: Sequence[Path], columns: str | None, part_ids: Sequence[str], *, max_bytes: int = MAX_FILE_BYTES
) -> tuple[list[SubmissionSource], list[RosterEntry], list[str]]:
    """Every submission named on the command line: files and folders discovered, CSV files read as LMS exports."""
    csvs = [p for p in inputs if p.is_file() and p.suffix.lower() == ".csv"]
    others = [p for p in inputs if p not in csvs]
    sources, warnings = discover(list(others)) if others else ([], [])
    roster: list[RosterEntry] = []
    if csvs:
        cm = ColumnMap.parse(columns)
        for path in csvs:
            imported = read_lms_csv(path, cm, part_ids, max_bytes=max_bytes)
            sources += imported.sources
            roster += imported.roster
            warnings += imported.warnings
    seen: dict[str, int] = {}
    for s in sources:
        seen[s.student_id] = seen.get(s.student_id, 0) + 1
    twice = sorted(sid for sid, n in seen.items() if n > 1)
    if twice:
        raise LmsError([f"student id {sid} appears in more than one input" for sid in twice])
    return sources, roster, warnings


def write_roster(out: Path, roster: Sequence[RosterEntry]) -> None:
    """OUT/roster.json: who each student is in the LMS, for `grader export`."""
    from grader.export.files import atomic_write

    data = "[\n" + ",\n".join(r.model_dump_json() for r in roster) + "\n]\n"
    atomic_write(Path(out) / ROSTER_NAME, data)


def read_roster(out: Path) -> dict[str, RosterEntry]:
    path = Path(out) / ROSTER_NAME
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text(encoding="utf-8")) or []
    return {e["student_id"]: RosterEntry.model_validate(e) for e in entries}
