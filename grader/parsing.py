"""Submission parsing: find each student's files, read them, split them into part answers.

Three stages, each usable alone:

* :func:`discover` turns the paths a TA gives into one :class:`SubmissionSource` per
  student (plus warnings for every file it skipped, never silently);
* :func:`parse_source` reads a student's files (text, Markdown, notebook, PDF, Python)
  and raises :class:`SubmissionError` -- and nothing else -- for a file that cannot be
  graded at all (empty, binary, too large, scanned PDF, broken notebook);
* :func:`segment` is a pure function that splits one document into part answers.

Label rules of :func:`segment`, in order of precedence (only at the start of a line,
after Markdown decoration -- ``#`` headings, ``-``/``*`` bullets, ``>`` quotes, ``**bold**``
-- and never inside a fenced code block or a ``$$ ... $$`` / ``\\begin ... \\end`` math block):

1. A *qualified* label names question and part: ``Q5b:``, ``Q5 b)``, ``Q5.b``, ``Q5(b)``,
   ``Question 5 b``, ``Question 5 (b)``, ``Question 5, part b``, ``5b)``, ``5(b)``. It is
   always accepted (the student said exactly what it is).
2. A *question heading*: ``Question N``, ``Problem N``, ``Exercise N``, ``Task N``, ``Q N``,
   ``**Question N**``, ``## Question N``; the number must be followed by the end of the line, a
   delimiter (``: . ) - ( [``) or closing bold, or the line must be a Markdown heading -- so a
   sentence such as "Question 2 asks ..." is not a heading. A Markdown heading that is only a
   number (``## 3``) is a heading; a bare ``3.`` / ``3)`` alone on its line is one only when it is
   a later question than the last heading (an enumerated list ``1. first`` never is).
3. A *part label* alone: ``a)``, ``(a)``, ``a.``, ``a:``, ``[a]``, ``Part a``, decorated
   or not (``- a)``, ``### (a)``, ``**a)**``). It is accepted only inside a known question and
   only if it advances: the letter is the expected next part of the question (or a later
   one, when the student skipped a part); an earlier or the current letter is content
   (e.g. ``- b)`` inside q10 c). A label written in another style than the question's
   previous label (``(b)`` after ``a)``) is accepted only if it is the expected next part
   and stands out (alone on its line, a heading, or bold) -- otherwise it is a list inside
   the answer. ``a.`` followed by another single-letter abbreviation (``a. k. a.``, ``e. g.``)
   is never a label.

Anything else is content of the open part. Unknown questions (``Question 11``) and parts
the layout lacks (``d)`` after ``c)`` in a three-part question, when it is not the
continuation of a list inside the answer) open an *unassigned* block whose origin says why.
Text under a heading before any part label belongs to the question's only part when it has
one, and is unassigned (question noted) when it has several. Text before the first question
is unassigned. Lines that are only a bullet or rule (``-``, ``*``, ``---``) are dropped; a part
answered twice is joined, its origin saying so. Fenced ``python`` (or unlabelled) code blocks
are copied into ``Answer.code`` and kept in the text.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import textwrap
import unicodedata
import warnings as _warnings
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from grader.submission import (
    Answer,
    Layout,
    Submission,
    SubmissionError,
    SubmissionSource,
    Unassigned,
)

__all__ = ["discover", "parse_source", "segment", "SUPPORTED_EXTENSIONS", "part_from_filename"]

FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".ipynb": "notebook",
    ".pdf": "pdf",
    ".py": "python",
}
SUPPORTED_EXTENSIONS = tuple(FORMATS)
_SUPPORTED_TEXT = ".txt, .md, .ipynb, .pdf, .py"
_BINARY_HINTS = {
    ".docx": "a Word document: export it as PDF or text",
    ".doc": "a Word document: export it as PDF or text",
    ".odt": "an OpenDocument file: export it as PDF or text",
    ".pages": "a Pages document: export it as PDF or text",
    ".rtf": "an RTF document: export it as PDF or text",
    ".zip": "an archive: unpack it first",
    ".png": "an image: it has no text to grade",
    ".jpg": "an image: it has no text to grade",
    ".jpeg": "an image: it has no text to grade",
    ".heic": "an image: it has no text to grade",
}

# ---------------------------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------------------------

_PART_FILE_RE = re.compile(
    r"^(?P<prefix>.*?)[\s_.\-]*(?:question|q)[\s_.\-]*(?P<num>\d{1,3})[\s_.\-]*"
    r"(?:\((?P<l1>[a-z])\)|(?P<l2>[a-z]))$",
    re.I | re.A,
)


@dataclass(frozen=True)
class _PartFile:
    prefix: str
    question: int
    letter: str


def part_from_filename(path: Path | str) -> tuple[str, int, str] | None:
    """``alice_q5b.py`` -> ("alice", 5, "b"); ``q5.b.py`` -> ("", 5, "b"); None if no part label."""
    pf = _part_file(Path(path))
    return (pf.prefix, pf.question, pf.letter) if pf else None


def _part_file(path: Path) -> _PartFile | None:
    m = _PART_FILE_RE.match(path.stem)
    if not m:
        return None
    prefix = m.group("prefix").rstrip(" _.-")
    letter = (m.group("l1") or m.group("l2")).lower()
    return _PartFile(prefix, int(m.group("num")), letter)


def _hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name == "__pycache__"


def _link_problem(entry: Path, root: Path) -> str | None:
    """Why a symlink found in a submission folder is not followed (None for a plain entry).

    A link to a file inside the folder is fine; a link that leaves it (to a rubric, a reference,
    another student's work) or to a directory (loops) is never followed.
    """
    if not entry.is_symlink():
        return None
    try:
        target = entry.resolve(strict=True)
    except (OSError, RuntimeError):
        return f"{entry}: a broken or looping symbolic link; skipped"
    if target.is_dir():
        return f"{entry}: a symbolic link to a directory; not followed"
    if not target.is_relative_to(root.resolve()):
        return f"{entry}: a symbolic link to a file outside the submission folder; not followed"
    return None


def _path_key(path: Path) -> tuple:
    # written answers before code files, then by name: answers are merged in this order
    return (path.suffix.lower() == ".py", str(path).lower(), str(path))


def discover(inputs: list[Path]) -> tuple[list[SubmissionSource], list[str]]:
    """Expand files and directories into one source per student, plus warnings for what was skipped.

    * a file given directly, or sitting directly in an input directory, is one student (id = stem);
    * a subdirectory of an input directory is one student (id = its name); its supported files,
      at any depth, are merged;
    * a ``.py`` file named after a part (``alice_q5b.py``, ``q5.b.py``) is the code answer to that
      part and joins the student named by its prefix (``alice``); an input directory holding
      such files with no name prefix (``q5b.py``) and no subdirectories is one student's folder;
    * hidden files, unsupported extensions and empty folders are skipped with a warning.
    """
    warnings: list[str] = []
    groups: dict[str, list[Path]] = {}
    where: dict[str, list[str]] = {}

    def add(student: str, paths: list[Path], origin: str, *, join: bool = False) -> None:
        if student in groups and not join and origin not in where[student]:
            warnings.append(
                f"student '{student}': files from {', '.join(where[student])} and {origin} are merged into one "
                "submission (same student id); rename one if they are different students"
            )
        groups.setdefault(student, [])
        where.setdefault(student, [])
        for p in paths:
            if p not in groups[student]:
                groups[student].append(p)
        if origin not in where[student]:
            where[student].append(origin)

    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            warnings.append(f"{path}: no such file or directory; skipped")
        elif path.is_dir():
            _discover_dir(path, add, warnings)
        elif path.is_file():
            pf = _part_file(path) if path.suffix.lower() == ".py" else None
            if pf is not None and pf.prefix:
                add(pf.prefix, [path], str(path.parent / pf.prefix), join=True)
            elif pf is not None:
                student = path.parent.resolve().name or path.stem
                warnings.append(
                    f"{path}: a code file with no student name in its name; graded as student '{student}' "
                    "(its folder's name)"
                )
                add(student, [path], str(path.parent), join=True)
            else:
                add(path.stem, [path], str(path))
        else:
            warnings.append(f"{path}: not a regular file or directory; skipped")

    sources = [
        SubmissionSource(student_id=sid, paths=sorted(paths, key=_path_key))
        for sid, paths in sorted(groups.items(), key=lambda kv: (kv[0].lower(), kv[0]))
    ]
    return sources, warnings


def _discover_dir(directory: Path, add, warnings: list[str]) -> None:  # noqa: ANN001
    try:
        entries = sorted(directory.iterdir(), key=lambda p: (p.name.lower(), p.name))
    except OSError as exc:
        warnings.append(f"{directory}: cannot list the directory ({exc.strerror or exc}); skipped")
        return
    files: list[Path] = []
    subdirs: list[Path] = []
    for entry in entries:
        link = _link_problem(entry, directory)
        if link:
            warnings.append(link)
        elif _hidden(entry):
            kind = "directory" if entry.is_dir() else "file"
            warnings.append(f"{entry}: hidden {kind}; skipped")
        elif entry.is_dir():
            subdirs.append(entry)
        elif entry.is_file():
            if entry.suffix.lower() in FORMATS:
                files.append(entry)
            else:
                warnings.append(_unsupported(entry))
        else:
            warnings.append(f"{entry}: not a regular file; skipped")

    for sub in subdirs:
        found = _student_dir_files(sub, warnings, sub)
        if found:
            add(sub.name, found, str(sub))
        else:
            warnings.append(f"{sub}: no submission files ({_SUPPORTED_TEXT}) inside; skipped")

    part_files = {f: _part_file(f) for f in files if f.suffix.lower() == ".py"}
    part_files = {f: pf for f, pf in part_files.items() if pf is not None}
    if not subdirs and any(not pf.prefix for pf in part_files.values()):
        # q5b.py with no student name beside other files: this folder is one student's submission
        student = directory.resolve().name or directory.name
        names = ", ".join(f.name for f, pf in part_files.items() if not pf.prefix)
        warnings.append(
            f"{directory}: holds code files without a student name ({names}); read as one student's "
            f"folder, student '{student}'"
        )
        add(student, files, str(directory))
        return

    stems = {f.stem.lower(): f.stem for f in files if f not in part_files}
    for f in files:
        pf = part_files.get(f)
        if pf is None:
            add(f.stem, [f], str(f))
        else:
            student = stems.get(pf.prefix.lower(), pf.prefix) if pf.prefix else f.stem
            add(student, [f], str(f.parent / student), join=True)


def _student_dir_files(directory: Path, warnings: list[str], root: Path) -> list[Path]:
    found: list[Path] = []
    try:
        entries = sorted(directory.iterdir(), key=lambda p: (p.name.lower(), p.name))
    except OSError as exc:
        warnings.append(f"{directory}: cannot list the directory ({exc.strerror or exc}); skipped")
        return found
    for entry in entries:
        link = _link_problem(entry, root)
        if link:
            warnings.append(link)
        elif _hidden(entry):
            kind = "directory" if entry.is_dir() else "file"
            warnings.append(f"{entry}: hidden {kind}; skipped")
        elif entry.is_dir():
            found.extend(_student_dir_files(entry, warnings, root))
        elif entry.is_file():
            if entry.suffix.lower() in FORMATS:
                found.append(entry)
            else:
                warnings.append(_unsupported(entry))
        else:
            warnings.append(f"{entry}: not a regular file; skipped")
    return found


def _unsupported(path: Path) -> str:
    ext = path.suffix.lower()
    what = f"unsupported file type '{ext}'" if ext else "file without an extension"
    hint = _BINARY_HINTS.get(ext)
    return f"{path}: {what}; skipped (graded: {_SUPPORTED_TEXT})" + (f" -- {hint}" if hint else "")


# ---------------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------------


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    if n >= 1_000:
        return f"{n / 1_000:.1f} kB"
    return f"{n} bytes"


def _clean(text: str, *, drop_nul: bool = True) -> str:
    """Drop NUL characters (PDF junk) and replace lone surrogates (from JSON escapes), which no report can encode."""
    if drop_nul and "\x00" in text:
        text = text.replace("\x00", "")
    return re.sub(r"[\ud800-\udfff]", "\ufffd", text)


def _read_bytes(path: Path, name: str, max_bytes: int) -> bytes:
    try:
        if path.is_dir():
            raise SubmissionError(f"{name}: is a directory, not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise SubmissionError(
                f"{name}: file is {_size(size)}; the limit for a submission is {_size(max_bytes)} (--max-bytes)"
            )
        data = path.read_bytes()
    except SubmissionError:
        raise
    except OSError as exc:
        raise SubmissionError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:  # the file grew while we looked
        raise SubmissionError(
            f"{name}: file is {_size(len(data))}; the limit for a submission is {_size(max_bytes)} (--max-bytes)"
        )
    if not data.strip():
        raise SubmissionError(f"{name}: empty file" + (" (0 bytes)" if not data else " (only whitespace)"))
    return data


def _binary_error(name: str, ext: str, why: str) -> SubmissionError:
    hint = _BINARY_HINTS.get(ext)
    tail = f"; it looks like {hint}" if hint else "; is this the right file?"
    return SubmissionError(f"{name}: binary content, not text ({why}){tail}")


def _decode(data: bytes, name: str, ext: str, notes: list[str]) -> str:
    """Bytes -> text: UTF-8 (BOM allowed), UTF-16 with a BOM, else cp1252 then latin-1, with a warning."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _binary_error(name, ext, "it starts like UTF-16 text but does not decode as such") from None
        notes.append(f"{name}: saved as UTF-16; read as UTF-16")
        return _check_text(_clean(text), name, ext)
    if b"\x00" in data:
        raise _binary_error(name, ext, "it contains NUL bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        try:
            text = data.decode("cp1252")
            enc = "Windows-1252 (cp1252)"
        except UnicodeDecodeError:
            text = data.decode("latin-1")
            enc = "Latin-1"
        notes.append(
            f"{name}: not valid UTF-8 (first bad {where}); read as {enc}, so check accented or special "
            "characters in its answers"
        )
    return _check_text(text, name, ext)


_ALLOWED_CONTROLS = set("\t\n\r\f\v")


def _check_text(text: str, name: str, ext: str) -> str:
    controls = sum(1 for c in text if c not in _ALLOWED_CONTROLS and unicodedata.category(c) == "Cc")
    if controls and controls > 0.05 * len(text):
        raise _binary_error(name, ext, "it is mostly control characters")
    if not text.strip():
        raise SubmissionError(f"{name}: empty file (only whitespace)")
    return text


_FM_LINE = re.compile(r"^\s*(?:(?P<key>[A-Za-z_][\w\-]*)\s*:.*)?$")
_FM_KEYS = {
    "student", "student_id", "student-id", "id", "name", "author", "title", "date", "course", "email",
    "assignment", "homework", "section", "group", "semester", "term", "class", "subject", "version",
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
class _FileResult:
    fmt: str
    answers: list[Answer] = field(default_factory=list)
    unassigned: list[Unassigned] = field(default_factory=list)
    student: str | None = None


def _read_text_file(data: bytes, path: Path, name: str, fmt: str, layout: Layout, notes: list[str]) -> _FileResult:
    text = _decode(data, name, path.suffix.lower(), notes)
    text, student = _front_matter(text)
    if not text.strip():
        raise SubmissionError(f"{name}: empty file (only a front matter block)")
    answers, unassigned = segment(text, layout, name)
    return _FileResult(fmt, answers, unassigned, student)


def _cell_source(cell: dict) -> str:
    src = cell.get("source", cell.get("input", ""))
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return _clean(src) if isinstance(src, str) else ""


def _read_notebook(data: bytes, name: str, layout: Layout, notes: list[str]) -> _FileResult:
    text = _decode(data, name, ".ipynb", notes)
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

    student = None
    meta = nb.get("metadata")
    grader_meta = meta.get("grader") if isinstance(meta, dict) else None
    if isinstance(grader_meta, dict) and isinstance(grader_meta.get("student"), str):
        student = grader_meta["student"].strip() or None
    answers, unassigned = _segment_units(units, layout, name, ("cell", "cells"))
    return _FileResult("notebook", answers, unassigned, student)


def _read_pdf(data: bytes, name: str, layout: Layout, notes: list[str]) -> _FileResult:
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
                        ok = reader.decrypt("")
                    except Exception:  # noqa: BLE001 - any failure means we cannot open it
                        ok = 0
                    if not ok:
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
                text = _clean(text).replace("\r\n", "\n").replace("\r", "\n")
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
    answers, unassigned = _segment_units(units, layout, name, ("page", "pages"))
    return _FileResult("pdf", answers, unassigned)


def _read_python(data: bytes, path: Path, name: str, layout: Layout, notes: list[str]) -> _FileResult:
    src = _decode(data, name, ".py", notes)
    body = src.strip("\n")
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=0)
    fence = "`" * max(3, longest + 1)
    text = f"{fence}python\n{body}\n{fence}"
    pf = _part_file(path)
    result = _FileResult("python")
    if pf is None:
        result.unassigned.append(
            Unassigned(
                text=text,
                origin=f"{name}: a Python file whose name names no part (name it like q5b.py or alice_q5b.py)",
            )
        )
        notes.append(f"{name}: a Python file whose name names no part; kept as unassigned text")
        return result
    qkey = _question_map(layout).get(pf.question)
    if qkey is None:
        origin = f"{name}: Question {pf.question} is not in the rubrics"
    elif pf.letter not in layout[qkey]:
        origin = f"{name}: Question {pf.question} has no part {pf.letter} in the rubrics"
    else:
        result.answers.append(Answer(part_id=f"{qkey}.{pf.letter}", text=text, code=[body], origin=name))
        return result
    result.unassigned.append(Unassigned(text=text, origin=origin))
    return result


def claimed_student(source: SubmissionSource, max_bytes: int = 2_000_000) -> str | None:
    """The student id the submission's files claim (front matter, notebook metadata), as parse_source reads it.

    Cheap (no segmenting), so that a batch can check every claim before grading anyone.
    """
    for path in source.paths:
        fmt = FORMATS.get(path.suffix.lower(), "text")
        if fmt not in ("text", "markdown", "notebook"):
            continue
        try:
            text = _decode(_read_bytes(path, path.name, max_bytes), path.name, path.suffix.lower(), [])
            if fmt == "notebook":
                meta = json.loads(text).get("metadata")
                claim = meta.get("grader", {}).get("student") if isinstance(meta, dict) else None
                student = claim.strip() or None if isinstance(claim, str) else None
            else:
                student = _front_matter(text)[1]
        except (SubmissionError, ValueError, AttributeError, RecursionError):
            continue
        if student:
            return student
    return None


def _display_names(paths: list[Path]) -> list[str]:
    if len(paths) <= 1:
        return [p.name for p in paths]
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    try:
        common = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
        return [str(p.resolve().relative_to(common)) for p in paths]
    except ValueError:
        return [str(p) for p in paths]


def parse_source(source: SubmissionSource, layout: Layout, *, max_bytes: int = 2_000_000) -> Submission:
    """Read one student's files and split them into part answers.

    Raises :class:`SubmissionError` (only) when nothing can be graded: for a one-file submission,
    an empty, binary, too large, unreadable or scanned (no text layer) file; for a several-file
    submission, only when every file is unusable -- a broken extra file becomes a warning.
    """
    if not source.paths:
        raise SubmissionError(f"{source.student_id}: no files in this submission")
    notes: list[str] = []
    errors: list[str] = []
    results: list[_FileResult] = []
    read_files: list[str] = []
    for path, name in zip(source.paths, _display_names(list(source.paths))):
        path = Path(path)
        ext = path.suffix.lower()
        fmt = FORMATS.get(ext)
        try:
            data = _read_bytes(path, name, max_bytes)
            if fmt == "notebook":
                result = _read_notebook(data, name, layout, notes)
            elif fmt == "pdf":
                result = _read_pdf(data, name, layout, notes)
            elif fmt == "python":
                result = _read_python(data, path, name, layout, notes)
            else:
                if fmt is None:
                    notes.append(f"{name}: unknown file type '{ext or '(none)'}'; read as plain text")
                result = _read_text_file(data, path, name, fmt or "text", layout, notes)
        except SubmissionError as exc:
            errors.append(str(exc))
            continue
        except RecursionError:
            errors.append(f"{name}: the file is nested too deeply to read")
            continue
        except Exception as exc:  # noqa: BLE001 - a parser bug must not look like a crash to the TA
            errors.append(f"{name}: internal parser error ({type(exc).__name__}: {exc}); please report this file")
            continue
        results.append(result)
        read_files.append(str(path))
    if not results:
        raise SubmissionError("; ".join(errors))
    for msg in errors:
        notes.append(f"{msg} -- this file was skipped; the student's other files were graded")

    student = source.student_id
    claimed = [r.student for r in results if r.student]
    if claimed:
        student = claimed[0]
        if len(set(claimed)) > 1:
            notes.append(f"files name different students ({', '.join(sorted(set(claimed)))}); used '{student}'")
        if student != source.student_id:
            notes.append(f"student id '{student}' taken from the file (it was found as '{source.student_id}')")

    formats = {r.fmt for r in results}
    fmt = formats.pop() if len(formats) == 1 else "mixed"
    answers = _merge_answers([a for r in results for a in r.answers], layout)
    unassigned = [u for r in results for u in r.unassigned]
    return Submission(
        student_id=student,
        files=read_files,
        format=fmt,
        answers=answers,
        unassigned=unassigned,
        warnings=notes,
    )


def _merge_answers(answers: list[Answer], layout: Layout) -> list[Answer]:
    order: dict[str, int] = {}
    for q, ps in layout.items():
        for p in ps:
            order.setdefault(f"{q}.{p}", len(order))
    merged: dict[str, Answer] = {}
    counts: dict[str, int] = {}
    for a in answers:
        if a.part_id not in merged:
            merged[a.part_id] = a.model_copy(deep=True)
            counts[a.part_id] = 1
            continue
        m = merged[a.part_id]
        counts[a.part_id] += 1
        m.text = m.text + "\n\n" + a.text
        m.code = m.code + a.code
        m.origin = m.origin + "; " + a.origin
    for pid, n in counts.items():
        if n > 1:
            merged[pid].origin += f" (answered in {n} files; joined in order)"
    return sorted(merged.values(), key=lambda a: (order.get(a.part_id, len(order)), a.part_id))


# ---------------------------------------------------------------------------------------------
# segmentation
# ---------------------------------------------------------------------------------------------

_EMPH = r"(?:\*\*|__|\*|_)"
_DECOR_RE = re.compile(r"#{1,6}[ \t]*|>[ \t]*|[-*+•·▪●◦‣–][ \t]+|\*\*|__|\*|_")
_STRAY_RE = re.compile(r"[-*+•·▪●◦‣–—_=~#>]+")
_HEAD_RE = re.compile(
    r"(?P<kw>question|problem|exercise|task|answer|ans|q)[ \t]*\.?[ \t]*(?:\#[ \t]*)?"
    r"(?P<num>\d{1,3})(?!\d)(?P<emph>" + _EMPH + r")?",
    re.I | re.A,
)
_PART_AFTER_RE = re.compile(
    r"(?P<sep>[ \t]*(?:[,:.\-_–—][ \t]*)?(?:part[ \t]*)?)"
    r"(?P<emph>" + _EMPH + r")?"
    r"(?:\((?P<p1>[a-z])\)|(?P<p2>[a-z])(?P<close>\))?)"
    r"(?P<emph2>" + _EMPH + r")?",
    re.I | re.A,
)
_NUM_PART_RE = re.compile(
    r"(?P<num>\d{1,3})[ \t]*\.?[ \t]*(?:\((?P<p1>[a-z])\)|(?P<p2>[a-z])(?:\)|(?P<d>[.:])(?=\s|$)))"
    r"(?P<emph>" + _EMPH + r")?",
    re.I | re.A,
)
_NUM_HEADING_RE = re.compile(r"(?P<num>\d{1,3})(?!\d)[ \t]*[.):]?(?P<emph>" + _EMPH + r")?(?=\s|$)", re.A)
_BARE_NUM_RE = re.compile(r"(?P<num>\d{1,3})[.):]" + _EMPH + r"?[ \t]*$", re.A)
_LABEL_RE = re.compile(
    r"(?P<kw>part[ \t]*)?"
    r"(?:\((?P<p1>[a-z])\)|\[(?P<p4>[a-z])\]|(?P<p2>[a-z])\)|(?P<p3>[a-z])(?P<d3>[.:])(?=\s|$|\*|_)"
    r"|(?(kw)(?P<p5>[a-z])(?=$|[ \t]*[:.\-–—]|\*|_)|(?!)))"
    r"(?P<emph>" + _EMPH + r")?",
    re.I | re.A,
)
_ABBREV_RE = re.compile(r"[ \t]*[a-z][ \t]*\.(?:\s|$)", re.I | re.A)
_REST_RE = re.compile(r"[ \t]*(?:" + _EMPH + r"[ \t]*)?(?:[:.)\-–—](?=\s|$))?[ \t]*")
_FENCE_OPEN = re.compile(r"^[ \t]*(?P<f>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^`]*$")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?P<f>`{3,}|~{3,})[ \t]*$")
_BEGIN_RE = re.compile(r"\\begin\{(?P<env>[A-Za-z*]+)\}")
_CODE_INFOS = {"", "python", "py", "python3", "py3", "ipython", "ipython3", "pycon", "pytorch", "torch", "{python}"}
_MAX_BLOCK_LINES = 400


@dataclass
class _Label:
    kind: str  # "question" (heading, maybe with a part letter) or "part"
    num: int | None
    letter: str | None
    shape: str
    strong: bool
    rest: str


def _norm(s: str) -> str:
    """Same-length copy of a line for matching: every Unicode space becomes a plain space."""
    return "".join(" " if c.isspace() else c for c in s)


def _strip_decor(t: str) -> tuple[int, bool, bool, str | None]:
    """Skip Markdown decoration at the start: (position, was a heading, was emphasised, last emphasis)."""
    pos = 0
    heading = emph = False
    last_emph = None
    for _ in range(12):
        m = _DECOR_RE.match(t, pos)
        if not m or m.end() == pos:
            break
        tok = m.group(0)
        if tok.startswith("#"):
            heading = True
        elif tok in ("**", "__", "*", "_"):
            emph = True
            last_emph = tok
        pos = m.end()
    return pos, heading, emph, last_emph


def _rest(s: str, t: str, pos: int, last_emph: str | None, closed: bool) -> str:
    m = _REST_RE.match(t, pos)
    rest = s[m.end() :] if m else s[pos:]
    if last_emph and len(last_emph) == 2 and not closed and last_emph in rest:
        rest = last_emph + rest  # "**a) The UAT** says" keeps its bold: "**The UAT** says"
    return rest.strip()


def _delimiter_ok(t: str, pos: int, loose: bool) -> bool:
    """After a bare part letter: is this the end of a label (not a word, not an abbreviation)?"""
    c = t[pos : pos + 1]
    if c == "":
        return True
    if c in ":)-–—*_":
        return True
    if c == ".":
        return not _ABBREV_RE.match(t, pos + 1)
    if c == " " or c == "\t":
        return not loose
    return False


def _match_line(s: str) -> _Label | None:
    """Classify a stripped, non-empty line: a question heading / qualified label, a part label, or None."""
    t = _norm(s)
    pos, heading, emph, last_emph = _strip_decor(t)
    strong_base = heading or emph

    m = _HEAD_RE.match(t, pos)
    if m:
        num = int(m.group("num"))
        end = m.end()
        closed = m.group("emph") is not None
        if not closed:
            pm = _PART_AFTER_RE.match(t, end)
            if pm:
                letter = (pm.group("p1") or pm.group("p2")).lower()
                sep = pm.group("sep")
                if pm.group("p1") or pm.group("close"):
                    ok = True
                else:
                    loose = bool(re.search(r"[ \t,:]|part", sep, re.I))
                    ok = _delimiter_ok(t, pm.end(), loose)
                if ok:
                    rest = _rest(s, t, pm.end(), last_emph, pm.group("emph2") is not None)
                    if pm.group("p1"):
                        shape = "(x)"
                    elif pm.group("close"):
                        shape = "x)"
                    else:
                        after_letter = t[pm.end() : pm.end() + 1]
                        shape = "x" + after_letter if after_letter in (":", ".") else "qualified"
                    return _Label("question", num, letter, shape, True, rest)
        nxt = t[end : end + 1]
        after = t[end:].lstrip()
        if closed or heading or not after or after[:1] in ":.)-–—([" or nxt in ":.)-–—":
            if nxt == "." and _ABBREV_RE.match(t, end + 1) and not closed:
                return None
            rest = _rest(s, t, end, last_emph, closed)
            return _Label("question", num, None, "heading", True, rest)
        return None

    m = _NUM_PART_RE.match(t, pos)
    if m:
        letter = (m.group("p1") or m.group("p2")).lower()
        if m.group("d") == "." and _ABBREV_RE.match(t, m.end()):
            return None
        rest = _rest(s, t, m.end(), last_emph, m.group("emph") is not None)
        shape = "(x)" if m.group("p1") else ("x" + m.group("d") if m.group("d") else "x)")
        return _Label("question", int(m.group("num")), letter, "numbered " + shape, True, rest)

    m = _BARE_NUM_RE.match(t, pos)
    if m and not heading:  # "3." alone on its line: a heading only if it advances (checked by the caller)
        return _Label("question", int(m.group("num")), None, "bare-number", True, "")

    if heading:
        m = _NUM_HEADING_RE.match(t, pos)
        if m:
            rest = _rest(s, t, m.end(), last_emph, m.group("emph") is not None)
            return _Label("question", int(m.group("num")), None, "heading", True, rest)

    m = _LABEL_RE.match(t, pos)
    if m:
        if m.group("p1"):
            letter, shape = m.group("p1"), "(x)"
        elif m.group("p4"):
            letter, shape = m.group("p4"), "[x]"
        elif m.group("p2"):
            letter, shape = m.group("p2"), "x)"
        elif m.group("p3"):
            letter, shape = m.group("p3"), "x" + m.group("d3")
            if m.group("d3") == "." and _ABBREV_RE.match(t, m.end() if not m.group("emph") else m.start("emph")):
                return None
        else:
            letter, shape = m.group("p5"), "part x"
        if m.group("kw"):
            shape = "part " + shape
        closed = m.group("emph") is not None
        rest = _rest(s, t, m.end(), last_emph, closed)
        strong = strong_base or not rest
        return _Label("part", None, letter.lower(), shape, strong, rest)
    return None


def _question_map(layout: Layout) -> dict[int, str]:
    out: dict[int, str] = {}
    for key in layout:
        m = re.fullmatch(r"(?:q|question|problem)?[ _-]*0*(\d+)", str(key), re.I | re.A)
        if m:
            out.setdefault(int(m.group(1)), key)
    return out


def _scan(texts: list[str]) -> tuple[list[bool], dict[int, tuple[int, str]]]:
    """Lines inside fenced code or display math (never labels), and the fences: start -> (end, info)."""
    n = len(texts)
    protected = [False] * n
    fences: dict[int, tuple[int, str]] = {}
    closers: dict[str, list[tuple[int, int]]] = {"`": [], "~": []}
    for i, line in enumerate(texts):
        m = _FENCE_CLOSE.match(line)
        if m:
            closers[m.group("f")[0]].append((i, len(m.group("f"))))
    closer_idx = {ch: [c[0] for c in lst] for ch, lst in closers.items()}

    def mark(a: int, b: int) -> None:
        for k in range(a, b + 1):
            protected[k] = True

    i = 0
    while i < n:
        line = texts[i]
        m = _FENCE_OPEN.match(line)
        if m:
            ch, length = m.group("f")[0], len(m.group("f"))
            lst = closers[ch]
            k = bisect_right(closer_idx[ch], i)
            end = None
            for j, ln in lst[k : k + 200]:
                if ln >= length:
                    end = j
                    break
            if end is not None:
                mark(i + 1, end)
                fences[i] = (end, m.group("info").lower())
                i = end + 1
                continue
        end = None
        if line.count("$$") % 2 == 1:
            end = _find_close(texts, i, lambda s: s.count("$$") % 2 == 1)
        else:
            stripped = line.strip()
            bm = _BEGIN_RE.search(stripped)
            if bm and f"\\end{{{bm.group('env')}}}" not in stripped:
                closing = f"\\end{{{bm.group('env')}}}"
                end = _find_close(texts, i, lambda s, c=closing: c in s)
            elif stripped.startswith("\\[") and "\\]" not in stripped:
                end = _find_close(texts, i, lambda s: "\\]" in s)
        if end is not None:
            mark(i + 1, end)
            i = end + 1
            continue
        i += 1
    return protected, fences


def _find_close(texts: list[str], i: int, closes) -> int | None:  # noqa: ANN001
    for j in range(i + 1, min(len(texts), i + 1 + _MAX_BLOCK_LINES)):
        if not texts[j].strip():
            return None  # display math never spans a blank line
        if closes(texts[j]):
            return j
    return None


@dataclass
class _Block:
    kind: str  # pre | prelabel | part | unknown_q | unknown_part
    q: str | None = None
    part: str | None = None
    note: str = ""
    lines: list[tuple[int, str]] = field(default_factory=list)
    start: int | None = None  # index of the line that opened it (its label or heading)


def segment(text: str, layout: Layout, origin: str) -> tuple[list[Answer], list[Unassigned]]:
    """Split one document into part answers and unassigned text (pure; never raises on any text).

    ``origin`` names the document (``alice.txt``); each answer's origin adds its line range.
    """
    text = _clean(text, drop_nul=False).replace("\r\n", "\n").replace("\r", "\n")
    units: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), 1):
        if "\f" in line:  # a page break: split, keeping the physical line number
            units.extend((number, piece) for piece in line.split("\f"))
        else:
            units.append((number, line))
    return _segment_units(units, layout, origin, ("line", "lines"))


def _segment_units(
    units: list[tuple[int, str]], layout: Layout, origin: str, unit_words: tuple[str, str]
) -> tuple[list[Answer], list[Unassigned]]:
    texts = [u[1] for u in units]
    protected, fences = _scan(texts)
    qmap = _question_map(layout)
    qname = {key: num for num, key in qmap.items()}

    blocks: list[_Block] = []
    only_q = next(iter(layout)) if len(layout) == 1 else None
    cur = _Block("prelabel", q=only_q) if only_q else _Block("pre")
    q: str | None = only_q
    part_idx = -1
    last_letter: str | None = None
    shape_by_q: dict[str, str] = {}
    inner: set[str] = set()
    last_qnum = 0

    def open_block(block: _Block) -> None:
        nonlocal cur
        blocks.append(cur)
        cur = block

    for i, raw in enumerate(texts):
        if protected[i]:
            cur.lines.append((i, raw))
            continue
        s = raw.strip()
        if not s or _STRAY_RE.fullmatch(s):
            cur.lines.append((i, ""))
            continue
        lab = _match_line(s)
        if lab is None:
            cur.lines.append((i, raw))
            continue

        if lab.kind == "question":
            key = qmap.get(lab.num)  # type: ignore[arg-type]
            if lab.shape == "bare-number" and (key is None or lab.num <= last_qnum):  # type: ignore[operator]
                cur.lines.append((i, raw))  # "2." alone is a heading only if it is a later question we know
                continue
            last_qnum = lab.num  # type: ignore[assignment]
            if key is None:
                if lab.shape.startswith("numbered"):  # "7b)" for a question we do not have: just text
                    cur.lines.append((i, raw))
                    continue
                label = f"Question {lab.num}" + (f" {lab.letter}" if lab.letter else "")
                open_block(_Block("unknown_q", note=f"{label} is not in the rubrics", lines=[(i, raw)], start=i))
                q, part_idx, last_letter, inner = None, -1, None, set()
                continue
            q, inner = key, set()
            if lab.letter is None:
                part_idx, last_letter = -1, None
                open_block(_Block("prelabel", q=key, start=i))
                if lab.rest:
                    cur.lines.append((i, lab.rest))
                continue
            if lab.letter in layout[key]:
                part_idx, last_letter = layout[key].index(lab.letter), lab.letter
                shape_by_q[key] = lab.shape.removeprefix("numbered ")
                open_block(_Block("part", q=key, part=lab.letter, start=i))
                if lab.rest:
                    cur.lines.append((i, lab.rest))
            else:
                last_letter = lab.letter
                note = f"Question {lab.num} has no part {lab.letter} in the rubrics"
                open_block(_Block("unknown_part", q=key, note=note, lines=[(i, raw)], start=i))
            continue

        # a bare part label
        if q is None or cur.kind in ("unknown_q", "unknown_part") or lab.letter is None:
            cur.lines.append((i, raw))
            continue
        parts = layout[q]
        prev_shape = shape_by_q.get(q)
        same_shape = prev_shape is None or prev_shape == lab.shape
        accept = False
        if lab.letter in parts:
            idx = parts.index(lab.letter)
            if idx == part_idx + 1:
                accept = same_shape or lab.strong
            elif idx > part_idx + 1:
                accept = same_shape
        elif (
            last_letter is not None
            and prev_shape == lab.shape
            and all(len(p) == 1 and p < lab.letter for p in parts)
            and ord(lab.letter) == ord(last_letter) + 1
            and chr(ord(lab.letter) - 1) not in inner
        ):
            num = qname.get(q, q)
            open_block(
                _Block("unknown_part", q=q, note=f"Question {num} has no part {lab.letter} in the rubrics",
                       lines=[(i, raw)], start=i)
            )
            last_letter = lab.letter
            continue
        if not accept:
            inner.add(lab.letter)
            cur.lines.append((i, raw))
            continue
        part_idx, last_letter, inner = parts.index(lab.letter), lab.letter, set()
        shape_by_q[q] = lab.shape
        open_block(_Block("part", q=q, part=lab.letter, start=i))
        if lab.rest:
            cur.lines.append((i, lab.rest))
    blocks.append(cur)
    return _collect(blocks, units, fences, layout, qname, origin, unit_words)


def _span(block: _Block, units: list[tuple[int, str]]) -> tuple[int, int] | None:
    idx = [i for i, line in block.lines if line.strip()]
    if not idx:
        return None
    first = idx[0] if block.start is None else min(block.start, idx[0])
    return units[first][0], units[idx[-1]][0]


def _fmt_span(span: tuple[int, int], unit_words: tuple[str, str]) -> str:
    a, b = span
    return f"{unit_words[0]} {a}" if a == b else f"{unit_words[1]} {a}-{b}"


def _block_text(block: _Block) -> str:
    return "\n".join(line for _, line in block.lines).strip()


def _block_code(block: _Block, texts: list[str], fences: dict[int, tuple[int, str]]) -> list[str]:
    code = []
    for i, _ in block.lines:
        if i in fences:
            end, info = fences[i]
            if info in _CODE_INFOS:
                body = textwrap.dedent("\n".join(texts[i + 1 : end])).strip("\n")
                if body.strip():
                    code.append(body)
    return code


def _collect(
    blocks: list[_Block],
    units: list[tuple[int, str]],
    fences: dict[int, tuple[int, str]],
    layout: Layout,
    qname: dict[str, int],
    origin: str,
    unit_words: tuple[str, str],
) -> tuple[list[Answer], list[Unassigned]]:
    texts = [u[1] for u in units]
    labelled_q = {b.q for b in blocks if b.kind == "part"}
    # (part id) -> list of runs; a run is a list of consecutive blocks (prelabel + part of a 1-part question)
    runs: dict[str, list[list[int]]] = {}
    unassigned: list[tuple[int, Unassigned]] = []
    for bi, block in enumerate(blocks):
        text = _block_text(block)
        prev = blocks[bi - 1] if bi else None
        if (
            block.kind == "part"
            and prev is not None
            and prev.kind == "prelabel"
            and prev.q == block.q
            and len(layout.get(block.q or "", [])) == 1
            and prev.start is not None
        ):
            block.start = prev.start  # "Question 3" + "a)": the answer starts at the heading
        span = _span(block, units)
        if not text or span is None:
            continue
        where = f"{origin} {_fmt_span(span, unit_words)}"
        target: str | None = None
        if block.kind == "part":
            target = f"{block.q}.{block.part}"
        elif block.kind == "prelabel" and block.q is not None:
            parts = layout.get(block.q, [])
            if len(parts) == 1:
                target = f"{block.q}.{parts[0]}"
            else:
                num = qname.get(block.q, block.q)
                plist = ", ".join(parts)
                if block.q in labelled_q:
                    why = f"under Question {num} before its first part label ({block.q} has parts {plist})"
                else:
                    why = f"Question {num} has parts {plist} but this text has no part labels ({block.q})"
                unassigned.append((bi, Unassigned(text=text, origin=f"{where}: {why}")))
                continue
        if target is None:
            why = block.note or "text before the first question"
            unassigned.append((bi, Unassigned(text=text, origin=f"{where}: {why}")))
            continue
        lst = runs.setdefault(target, [])
        if lst and lst[-1][-1] == bi - 1 and blocks[bi - 1].kind == "prelabel" and blocks[bi - 1].q == block.q:
            lst[-1].append(bi)
        else:
            lst.append([bi])

    order = {}
    for qk, ps in layout.items():
        for p in ps:
            order.setdefault(f"{qk}.{p}", len(order))
    answers: list[Answer] = []
    for pid, pid_runs in runs.items():
        texts_out: list[str] = []
        code: list[str] = []
        spans: list[str] = []
        for run in pid_runs:
            run_blocks = [blocks[bi] for bi in run]
            merged = _Block("part", lines=[ln for b in run_blocks for ln in b.lines], start=run_blocks[0].start)
            texts_out.append(_block_text(merged))
            code.extend(c for b in run_blocks for c in _block_code(b, texts, fences))
            span = _span(merged, units)
            if span is not None:
                spans.append(_fmt_span(span, unit_words))
        where = f"{origin} " + " and ".join(spans)
        if len(pid_runs) > 1:
            where += f" (answered {len(pid_runs)} times; the answers are joined in order)"
        answers.append(Answer(part_id=pid, text="\n\n".join(texts_out), code=code, origin=where))
    answers.sort(key=lambda a: (order.get(a.part_id, len(order)), a.part_id))
    return answers, [u for _, u in unassigned]
