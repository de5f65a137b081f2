"""Submission models: what the parser hands to the scorers.

A submission is one student's answers, each assigned to a rubric part by its
qualified id (``q5.b``). Text the parser could not assign is kept, never dropped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

SubmissionFormat = Literal["text", "markdown", "notebook", "pdf", "python", "mixed", "lms"]

MAX_FILE_BYTES = 2_000_000
"""Largest submission file read by default: far above any written answer, small enough to bound a hostile one."""


class Answer(BaseModel):
    """A student's answer to one part, as written (Markdown/LaTeX kept), plus any code it contains."""

    part_id: str = Field(description="Qualified part id, e.g. q5.b.")
    text: str = Field(description="The answer's text, code fences included.")
    code: list[str] = Field(
        default_factory=list,
        description="Code found in the answer: fenced blocks, notebook code cells, or a .py file for the part.",
    )
    origin: str = Field(description="Where it came from, e.g. 'alice.txt lines 12-20'.")

    def sha256(self) -> str:
        """Hash of what the student wrote (text and code): a TA's override is keyed on it."""
        h = hashlib.sha256(self.text.encode("utf-8", "surrogatepass"))
        for block in self.code:
            h.update(b"\0")
            h.update(block.encode("utf-8", "surrogatepass"))
        return h.hexdigest()


class Unassigned(BaseModel):
    """Text the parser could not attach to any rubric part (kept in the report for a TA to read)."""

    text: str
    origin: str


class Submission(BaseModel):
    """One student's parsed answers."""

    student_id: str
    files: list[str] = Field(description="Files this submission was read from.")
    format: SubmissionFormat
    answers: list[Answer] = Field(default_factory=list)
    unassigned: list[Unassigned] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="Things the parser noticed, e.g. a re-encoded file.")

    def answer(self, part_id: str) -> Answer | None:
        for a in self.answers:
            if a.part_id == part_id:
                return a
        return None


class SubmissionSource(BaseModel):
    """The files that make up one student's submission, before parsing."""

    student_id: str
    paths: list[Path]
    answers: list[Answer] | None = Field(
        default=None,
        description="Answers already split by part (an LMS export read by grader.intake.lms); paths then name "
        "the file they came from, and nothing is parsed.",
    )
    notes: list[str] = Field(default_factory=list, description="What reading the source noticed (kept as warnings).")


class SubmissionError(Exception):
    """A submission that cannot be parsed at all; the message says why, in words for a TA."""


Layout = dict[str, list[str]]
"""Question id -> its part ids in order, from the rubrics (e.g. {"q5": ["a", "b"]})."""
