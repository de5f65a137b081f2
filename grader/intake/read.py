"""Reading one student: their files -> a Submission, merged across files, or a SubmissionError saying why."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

from grader.intake.decode import read_bytes
from grader.intake.filetypes import FORMATS
from grader.intake.formats import FileResult, file_student, read_notebook, read_pdf, read_python, read_text_file
from grader.intake.lms import submission_of
from grader.submission import (
    MAX_FILE_BYTES,
    Answer,
    Layout,
    Submission,
    SubmissionError,
    SubmissionFormat,
    SubmissionSource,
)


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


def parse_source(source: SubmissionSource, layout: Layout, *, max_bytes: int = MAX_FILE_BYTES) -> Submission:
    """Read one student's files and split them into part answers.

    Raises :class:`SubmissionError` (only) when nothing can be graded: for a one-file submission,
    an empty, binary, too large, unreadable or scanned (no text layer) file; for a several-file
    submission, only when every file is unusable -- a broken extra file becomes a warning.
    A source read from an LMS export already holds its answers by part (grader.intake.lms).
    """
    if source.answers is not None:
        return submission_of(source)
    if not source.paths:
        raise SubmissionError(f"{source.student_id}: no files in this submission")
    notes: list[str] = []
    errors: list[str] = []
    results: list[FileResult] = []
    read_files: list[str] = []
    for path, name in zip(source.paths, _display_names(list(source.paths))):
        path = Path(path)
        ext = path.suffix.lower()
        fmt = FORMATS.get(ext)
        try:
            data = read_bytes(path, name, max_bytes)
            if fmt == "notebook":
                result = read_notebook(data, name, layout, notes)
            elif fmt == "pdf":
                result = read_pdf(data, name, layout, notes)
            elif fmt == "python":
                result = read_python(data, path, name, layout, notes)
            else:
                if fmt is None:
                    notes.append(f"{name}: unknown file type '{ext or '(none)'}'; read as plain text")
                result = read_text_file(data, path, name, fmt or "text", layout, notes)
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
    fmt = cast(SubmissionFormat, formats.pop() if len(formats) == 1 else "mixed")
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


def claimed_student(source: SubmissionSource, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """The student id the submission's files claim (front matter, notebook metadata), as parse_source takes it."""
    for path in source.paths:
        path = Path(path)
        try:
            claim = file_student(read_bytes(path, path.name, max_bytes), path, path.name)
        except SubmissionError:
            continue
        if claim:
            return claim
    return None


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
