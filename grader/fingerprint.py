"""Which code produced a grade: a hash of the grading code's source files.

It goes into every cached result's key and into every report, so after an update of grader
(or any edit of its scoring, code-grading or parsing modules) no cache and no resumed run serves
a result the old code produced. The models are pinned separately, by their identities.
Modules that only present results (the command line, exports, review, evaluation) are left out:
editing them keeps caches and reports.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path

PRESENTATION_ONLY = frozenset({"cli", "export", "export.py", "review", "batch.py", "evaluation", "evaluation.py"})
"""Top-level modules and packages of grader/ that never change a grade."""


def package_dir() -> Path:
    """The directory of the installed grader package (a checkout's grader/ for an editable install)."""
    return Path(str(files("grader")))


def code_fingerprint(root: Path | None = None) -> str:
    """16 hex digits over the path and bytes of every grading module under `root` (the package).

    Read afresh on every call (about 20 ms): a Grader takes it once, when it is built.
    """
    root = root or package_dir()
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in PRESENTATION_ONLY or "__pycache__" in relative.parts:
            continue
        name = relative.as_posix().encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(4, "little") + name + len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()
