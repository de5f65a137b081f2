"""Discovery: the paths a TA gives -> one SubmissionSource per student, and a warning for every file skipped."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from grader.intake.filetypes import BINARY_HINTS, FORMATS, SUPPORTED_TEXT
from grader.submission import SubmissionSource

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
            warnings.append(f"{sub}: no submission files ({SUPPORTED_TEXT}) inside; skipped")

    part_files: dict[Path, _PartFile] = {}
    for f in files:
        if f.suffix.lower() == ".py" and (pf := _part_file(f)) is not None:
            part_files[f] = pf
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
    hint = BINARY_HINTS.get(ext)
    return f"{path}: {what}; skipped (graded: {SUPPORTED_TEXT})" + (f" -- {hint}" if hint else "")
