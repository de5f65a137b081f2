"""Intake: find each student's files, read them, split them into part answers.

Three stages, each usable alone:

* :func:`discover` (intake.discover) turns the paths a TA gives into one
  :class:`~grader.submission.SubmissionSource` per student, plus a warning for every file it
  skipped, never silently;
* :func:`parse_source` (intake.read, with one reader per format in intake.formats and the
  byte-level checks in intake.decode) reads a student's files (text, Markdown, notebook, PDF,
  Python) and raises :class:`~grader.submission.SubmissionError` -- and nothing else -- for a
  submission that cannot be graded at all (empty, binary, too large, scanned PDF, broken notebook);
* :func:`segment` (intake.segment) is a pure function that splits one document into part answers.

An LMS export (one CSV, one row per student and part, or Canvas's and Moodle's quiz reports
through a column map) comes in through :mod:`grader.intake.lms`: its answers are already split
by part, so :func:`parse_source` hands them on as they are.
"""

from grader.intake.discover import discover, part_from_filename
from grader.intake.filetypes import SUPPORTED_EXTENSIONS
from grader.intake.read import claimed_student, parse_source
from grader.intake.segment import segment

__all__ = ["SUPPORTED_EXTENSIONS", "claimed_student", "discover", "parse_source", "part_from_filename", "segment"]
