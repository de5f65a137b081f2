"""Report models: the contract between grading and everything a person reads.

Per-student reports (JSON, Markdown feedback) and the class summary are pydantic
models, so every file written is validated on the way out and can be read back
by `StudentReport.model_validate_json`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

PartStatus = Literal["graded", "missing", "error"]
ReviewStatus = Literal["accepted", "overridden", "stale"]


class KeyPointResult(BaseModel):
    """How one key point fared: the sentence that best states it, and the credit that earned."""

    id: str
    label: str
    max_points: float
    points: float
    similarity: float = Field(description="Cosine similarity of the best-aligned sentence window.")
    matched: bool = Field(description="True when the point earned at least half its credit.")
    evidence: str | None = Field(
        default=None,
        description="The student's sentence(s) that earned the credit; for a flagged point, the one that denies it.",
    )
    flags: list[str] = Field(
        default_factory=list,
        description="What speaks against the point: contradicts (the quoted sentence says the opposite), hedged "
        "(the point is stated and the judge reads another sentence denying it: the credit stays, that sentence is "
        "quoted), or, without a judge, keyword_list, copies_question, off_topic.",
    )
    entailment: float | None = Field(
        default=None, description="The judge's P(the evidence states the point), when a judge read it."
    )
    contradiction: float | None = Field(
        default=None, description="The judge's highest P(a sentence says the opposite)."
    )


class MisconceptionResult(BaseModel):
    """A misconception the answer states, and what it cost."""

    id: str
    label: str
    penalty: float
    similarity: float
    evidence: str
    entailment: float | None = Field(default=None, description="The judge's P(the evidence states the misconception).")


class CodeCaseResult(BaseModel):
    """One seeded test case of a code part."""

    name: str
    points: float
    max_points: float
    passed: bool
    reason: str = Field(description="ok, or why the case failed, in words a student understands.")
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    stderr_tail: str | None = None
    reason_code: str = Field(
        default="ok",
        description=(
            "Machine-readable reason: ok, wrong_type, wrong_structure, wrong_shape, wrong_dtype, values_differ, "
            "nan, inf, not_differentiable, unreadable, exception, memory, forbidden, timeout, output_limit, "
            "result_limit, file_limit, killed, crashed, exited, syntax_error, entry_point_missing, not_run, "
            "no_result, sandbox_error."
        ),
    )
    time_s: float | None = Field(default=None, description="Time the student's function took on this case.")


class CodeResult(BaseModel):
    """What running a code answer in the sandbox showed."""

    entry_point: str
    cases: list[CodeCaseResult] = Field(default_factory=list)
    forbidden_calls: list[str] = Field(default_factory=list)
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    sandbox: str = Field(default="", description="Which isolation the code ran under.")
    stdout_tail: str | None = None
    stderr_tail: str | None = None
    outcome: str = Field(
        default="",
        description=(
            "Overall: passed, partial, missing, no_code, syntax_error, forbidden, entry_point_missing, load_error, "
            "or the first failing case's reason_code (timeout, memory, ...); sandbox_error/reference_error need a TA."
        ),
    )
    process_status: str | None = Field(
        default=None,
        description="How the sandboxed process ended: ok, timeout, output_limit, result_limit, signal, exit.",
    )
    wall_s: float | None = Field(default=None, description="Wall time of the sandboxed run (all cases).")


class PartReview(BaseModel):
    """A TA's decision on a part, kept beside what the grader said so both stay visible.

    accepted / overridden: the part's points are the TA's. stale: the TA decided on a
    different answer text than the one graded now, so the grader's points stand and the
    part waits for the TA again (an override is never applied to, or dropped for, new text).
    """

    status: ReviewStatus
    points: float = Field(description="The TA's points (for a stale review: what the TA gave the earlier text).")
    grader_points: float = Field(description="What the grader gives this answer now.")
    comment: str | None = Field(default=None, description="The TA's comment, shown to the student.")
    reviewed_at: str = Field(description="When the TA decided (ISO 8601, UTC).")
    answer_sha256: str = Field(description="Hash of the answer text the TA reviewed.")


class PartResult(BaseModel):
    """A graded part: points, the evidence behind them, and feedback a student can act on."""

    part_id: str
    kind: Literal["written", "code"]
    status: PartStatus
    points: float
    max_points: float
    raw_score: float | None = Field(
        default=None, description="Fraction of credit before calibration (0-1, penalties applied)."
    )
    calibrated: bool = Field(default=False, description="True when exemplars mapped raw_score to points.")
    confidence: float = Field(
        ge=0,
        le=1,
        description="How likely the grade is right (within a quarter of the maximum of a human's, for a judged "
        "written answer); the review queue shows the least sure first.",
    )
    confidence_signals: dict[str, float] | None = Field(
        default=None,
        description="What the confidence model read (grader.written.confidence.SIGNALS): why a grade is unsure.",
    )
    feedback: list[str] = Field(default_factory=list)
    key_points: list[KeyPointResult] = Field(default_factory=list)
    misconceptions: list[MisconceptionResult] = Field(default_factory=list)
    code: CodeResult | None = None
    warnings: list[str] = Field(default_factory=list)
    flags: list[str] = Field(
        default_factory=list,
        description="What the grader noticed about the answer as a whole: other_language, no_answer (only a "
        "placeholder), off_topic, keyword_list, copies_question, padding, contradicts, hedged.",
    )
    needs_review: str | None = Field(
        default=None, description="Why a person must grade this answer (e.g. another language)."
    )
    answer: str | None = Field(default=None, description="The student's answer as graded (None: no answer).")
    answer_sha256: str | None = Field(
        default=None, description="Hash of the answer (text and code): what overrides are keyed on."
    )
    language: str | None = Field(
        default=None,
        description=(
            "ISO 639-1 code of the answer's language when it is not the course's (held for a TA: needs_review)."
        ),
    )
    review: PartReview | None = Field(default=None, description="A TA's decision on this part, when there is one.")


class UnassignedText(BaseModel):
    text: str
    origin: str


class Timing(BaseModel):
    parse_s: float = 0.0
    score_s: float = 0.0
    code_s: float = 0.0
    total_s: float = 0.0


class StudentReport(BaseModel):
    """Everything graded for one student, pinned to the grader version and rubric hash that produced it."""

    student_id: str
    files: list[str]
    status: Literal["graded", "failed"]
    error: str | None = Field(default=None, description="Why the submission could not be graded at all.")
    parts: list[PartResult] = Field(default_factory=list)
    unassigned: list[UnassignedText] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    total: float = 0.0
    max_total: float
    percent: float = 0.0
    timing: Timing = Field(default_factory=Timing)
    grader_version: str
    code_fingerprint: str = Field(
        default="",
        description="Hash of the grading code's source (grader.fingerprint): other code regrades the student.",
    )
    rubric_sha256: str
    model: str = Field(description="Embedding model identity used for written parts.")
    input_sha256: str | None = Field(
        default=None, description="Hash of the submission's files: a resumed run reuses a report only if it matches."
    )

    def part(self, part_id: str) -> PartResult | None:
        for p in self.parts:
            if p.part_id == part_id:
                return p
        return None


class PartSummary(BaseModel):
    part_id: str
    max_points: float
    n_graded: int
    n_missing: int
    n_error: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    histogram: list[int] = Field(
        description="Counts of points in equal bins from 0 to max_points (edges in histogram_edges; the last bin "
        "includes max_points)."
    )
    n_reviewed: int = Field(default=0, description="Answers a TA accepted or overrode.")
    n_overridden: int = Field(default=0, description="Answers whose points a TA changed.")
    n_stale: int = Field(default=0, description="TA decisions waiting for review again: the answer text changed.")

    @computed_field(description="Bin edges of `histogram`: len(histogram) + 1 points from 0 to max_points.")  # type: ignore[prop-decorator]
    @property
    def histogram_edges(self) -> list[float]:
        n = len(self.histogram)
        return [round(self.max_points * i / n, 6) for i in range(n + 1)] if n else []


class Failure(BaseModel):
    student_id: str
    files: list[str]
    error: str


class ClassSummary(BaseModel):
    """The class at a glance: per-part statistics and every submission that could not be graded."""

    n_submissions: int
    n_graded: int
    n_failed: int
    max_total: float
    mean_total: float | None
    mean_percent: float | None
    parts: list[PartSummary]
    failures: list[Failure]
    grader_version: str
    rubric_sha256: str
    model: str
    wall_time_s: float


def encodable(report: StudentReport) -> StudentReport:
    """A copy of the report in which every string can be written as UTF-8.

    A lone surrogate (a file or folder name that is not UTF-8, a JSON escape in a notebook)
    becomes a visible backslash escape, so the report keeps its grades and can still be
    written; a TA sees the odd name as it was.
    """

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        return value

    return StudentReport.model_validate(clean(report.model_dump()))
