"""One reader per file format (text and Markdown, notebooks, PDF, Python), each -> answers by part.

Every reader raises SubmissionError, and nothing else, for a file that cannot be graded at all.
"""

from __future__ import annotations

import io
import json
import logging
import re
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path

from grader.intake.decode import clean_text, decode
from grader.intake.discover import part_from_filename
from grader.intake.filetypes import FORMATS
from grader.intake.segment import question_map, segment, segment_units
from grader.submission import Answer, Layout, SubmissionError, Unassigned

_FM_LINE = re.compile(r"^\s*(?:(?P<key>[A-Za-z_][\w\-]*)\s*:.*)?$")
_FM_KEYS = {
    "student",
    "student_id",
    "student-id",
    "id",
    "name",
    "author",
    "title",
    "date",
    "course",
    "email",
    "assignment",
    "homework",
    "section",
    "group",
    "semester",
    "term",
    "class",
    "subject",
    "version",
}


def _front_matter(text: str) -> tuple[str, str | None]:
    """Strip a leading ``---`` block of ``key: value`` lines; return (text with blank lines there, student)."""
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start >= len(lines) or lines[start].strip() != "---":
        return text, None
    keys: set[str] = set()
    for end in range(start + 1, min(len(lines), start + 42)):
        if lines[end].strip() == "---":
            break
        m = _FM_LINE.match(lines[end])
        if not m:
            return text, None
        if m.group("key"):
            keys.add(m.group("key").lower())
    else:
        return text, None
    if not keys or not keys <= _FM_KEYS:  # "---" rules around answers are not metadata
        return text, None
    student = None
    for line in lines[start + 1 : end]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("student", "student_id", "student-id"):
            value = value.strip().strip("\"'").strip()
            if value:
                student = value
                break
    blanked = [""] * (end + 1) + lines[end + 1 :]
    return "\n".join(blanked), student


@dataclass
class FileResult:
    fmt: str
    answers: list[Answer] = field(default_factory=list)
    unassigned: list[Unassigned] = field(default_factory=list)
    student: str | None = None


def read_text_file(data: bytes, path: Path, name: str, fmt: str, layout: Layout, notes: list[str]) -> FileResult:
    text = decode(data, name, path.suffix.lower(), notes)
    text, student = _front_matter(text)
    if not text.strip():
        raise SubmissionError(f"{name}: empty file (only a front matter block)")
    answers, unassigned = segment(text, layout, name)
    return FileResult(fmt, answers, unassigned, student)


def _cell_source(cell: dict) -> str:
    src = cell.get("source", cell.get("input", ""))
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return clean_text(src) if isinstance(src, str) else ""


def read_notebook(data: bytes, name: str, layout: Layout, notes: list[str]) -> FileResult:
    text = decode(data, name, ".ipynb", notes)
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError) as exc:
        why = str(exc).split(":")[0] if isinstance(exc, ValueError) else "nested too deeply"
        raise SubmissionError(
            f"{name}: cannot read the notebook: it is not valid notebook JSON ({why}); "
            "re-save it from Jupyter and submit it again"
        ) from None
    if not isinstance(nb, dict):
        raise SubmissionError(f"{name}: cannot read the notebook: the file is JSON but not a Jupyter notebook")
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in (ws.get("cells") or [])]
    if not isinstance(cells, list):
        raise SubmissionError(f"{name}: cannot read the notebook: it has no list of cells")

    units: list[tuple[int, str]] = []
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        src = _cell_source(cell)
        if not src.strip():
            continue
        if kind == "code":
            longest = max((len(m) for m in re.findall(r"`{3,}", src)), default=0)
            fence = "`" * max(3, longest + 1)
            lines = [f"{fence}python", *src.rstrip("\n").split("\n"), fence]
        else:  # markdown, raw, or an nbformat-3 heading cell
            level = cell.get("level") if kind == "heading" else None
            prefix = "#" * level + " " if isinstance(level, int) and 0 < level < 7 else ""
            lines = (prefix + src).split("\n")
        units.extend((number, line) for line in lines)
        units.append((number, ""))
    if not units:
        raise SubmissionError(f"{name}: empty notebook (no markdown or code in its cells)")

    answers, unassigned = segment_units(units, layout, name, ("cell", "cells"))
    return FileResult("notebook", answers, unassigned, _notebook_student(nb))


def _notebook_student(nb: dict) -> str | None:
    """The student a notebook names in its metadata (``metadata.grader.student``), if any."""
    meta = nb.get("metadata")
    grader_meta = meta.get("grader") if isinstance(meta, dict) else None
    if isinstance(grader_meta, dict) and isinstance(grader_meta.get("student"), str):
        return grader_meta["student"].strip() or None
    return None


def file_student(data: bytes, path: Path, name: str) -> str | None:
    """The student id a text, Markdown or notebook file claims, read as its reader reads it (no segmenting).

    Cheap, so that a batch can check every claim before grading anyone; None for other formats
    and for a file that cannot be read (its reader says why later).
    """
    fmt = FORMATS.get(path.suffix.lower(), "text")
    if fmt not in ("text", "markdown", "notebook"):
        return None
    try:
        text = decode(data, name, path.suffix.lower(), [])
        if fmt != "notebook":
            return _front_matter(text)[1]
        nb = json.loads(text)
    except (SubmissionError, ValueError, RecursionError):
        return None
    return _notebook_student(nb) if isinstance(nb, dict) else None


def read_pdf(data: bytes, name: str, layout: Layout, notes: list[str]) -> FileResult:
    from pypdf import PdfReader

    logger = logging.getLogger("pypdf")
    old_level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            try:
                reader = PdfReader(io.BytesIO(data), strict=False)
                if reader.is_encrypted:
                    try:
                        opened = bool(reader.decrypt(""))  # PasswordType.NOT_DECRYPTED is 0
                    except Exception:  # noqa: BLE001 - any failure means we cannot open it
                        opened = False
                    if not opened:
                        raise SubmissionError(f"{name}: the PDF is password-protected; ask for an unprotected copy")
                pages = list(reader.pages)
            except SubmissionError:
                raise
            except Exception as exc:  # noqa: BLE001 - pypdf raises many types on broken files
                raise SubmissionError(
                    f"{name}: cannot read the PDF ({type(exc).__name__}: {str(exc)[:200]}); is it a complete PDF file?"
                ) from None
            units: list[tuple[int, str]] = []
            for number, page in enumerate(pages, 1):
                try:
                    text = page.extract_text() or ""
                except Exception as exc:  # noqa: BLE001
                    notes.append(f"{name}: could not read the text of page {number} ({type(exc).__name__})")
                    continue
                text = clean_text(text).replace("\r\n", "\n").replace("\r", "\n")
                units.extend((number, line) for line in text.split("\n"))
                units.append((number, ""))
    finally:
        logger.setLevel(old_level)
    if not any(line.strip() for _, line in units):
        n = len(pages)
        raise SubmissionError(
            f"{name}: the PDF has no text layer ({n} page{'s' if n != 1 else ''}, no selectable text); "
            "it is probably a scanned image or a photo -- ask for a typed PDF, or run OCR on it first"
        )
    answers, unassigned = segment_units(units, layout, name, ("page", "pages"))
    return FileResult("pdf", answers, unassigned)


def read_python(data: bytes, path: Path, name: str, layout: Layout, notes: list[str]) -> FileResult:
    src = decode(data, name, ".py", notes)
    body = src.strip("\n")
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=0)
    fence = "`" * max(3, longest + 1)
    text = f"{fence}python\n{body}\n{fence}"
    named = part_from_filename(path)
    result = FileResult("python")
    if named is None:
        result.unassigned.append(
            Unassigned(
                text=text,
                origin=f"{name}: a Python file whose name names no part (name it like q5b.py or alice_q5b.py)",
            )
        )
        notes.append(f"{name}: a Python file whose name names no part; kept as unassigned text")
        return result
    _, question, letter = named
    qkey = question_map(layout).get(question)
    if qkey is None:
        origin = f"{name}: Question {question} is not in the rubrics"
    elif letter not in layout[qkey]:
        origin = f"{name}: Question {question} has no part {letter} in the rubrics"
    else:
        result.answers.append(Answer(part_id=f"{qkey}.{letter}", text=text, code=[body], origin=name))
        return result
    result.unassigned.append(Unassigned(text=text, origin=origin))
    return result
