"""Rubric models and loading: one YAML file per question, validated by pydantic.

The pydantic models here are the single source of truth for the rubric format:
`grader schema` prints their JSON Schema, `grader validate` reports every error
as ``file: field.path: reason`` so an author can fix a rubric without reading a
traceback.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
POINTS_TOLERANCE = 1e-6

Identifier = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
NonEmptyText = Annotated[str, Field(min_length=1)]
PositivePoints = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Base for rubric models: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class KeyPoint(StrictModel):
    """One idea a full-credit answer states; it earns its points from the best-aligned sentence."""

    id: Identifier | None = Field(default=None, description="Stable id; defaults to kp<N> (1-based).")
    label: NonEmptyText = Field(
        description="Short name of the idea, shown in student feedback instead of the statement itself."
    )
    text: NonEmptyText = Field(description="The claim, stated as a full sentence.")
    points: PositivePoints
    paraphrases: list[NonEmptyText] = Field(
        default_factory=list, description="Other ways a correct answer may state the same claim."
    )
    hint: str | None = Field(
        default=None, description="What to tell a student who missed this point (no answer given away)."
    )


class Misconception(StrictModel):
    """A wrong claim; an answer that states it loses `penalty` points."""

    id: Identifier | None = Field(default=None, description="Stable id; defaults to m<N> (1-based).")
    label: NonEmptyText = Field(description="Short name of the error, shown in student feedback.")
    text: NonEmptyText = Field(description="The wrong claim, stated as a full sentence.")
    penalty: PositivePoints
    paraphrases: list[NonEmptyText] = Field(default_factory=list)
    explanation: str | None = Field(default=None, description="Why the claim is wrong, shown to a student who made it.")


class Exemplar(StrictModel):
    """A real or realistic answer with the points a TA gave it; calibrates the part's score mapping."""

    answer: NonEmptyText
    points: float = Field(ge=0)
    note: str | None = None


class ScoringOverrides(StrictModel):
    """Per-part overrides of the scorer's similarity thresholds (see grader.written.scoring.ScoringConfig)."""

    match_low: float | None = Field(default=None, ge=-1, le=1)
    match_high: float | None = Field(default=None, ge=-1, le=1)
    misconception_threshold: float | None = Field(default=None, ge=-1, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ScoringOverrides:
        if self.match_low is not None and self.match_high is not None and self.match_low >= self.match_high:
            raise ValueError("match_low must be below match_high")
        return self


DType = Literal["float32", "float64", "int64", "int32", "bool"]


class TensorInput(StrictModel):
    """One argument of a code part's entry point.

    By default a random tensor drawn per case from a seeded generator: floats
    uniform in [low, high), integers uniform in [low, high] (both ends included),
    bools with probability 1/2. With ``value`` set, the argument is that fixed
    Python number instead (e.g. a learning rate); with ``scalar: true`` it is a
    random Python number drawn like a 0-d tensor.
    """

    name: Identifier
    shape: list[int | Identifier] = Field(
        default_factory=list,
        description="Dimensions: integers, or names bound per case in `dims` (e.g. N). [] is a 0-d tensor.",
    )
    dtype: DType = "float32"
    low: float = -1.0
    high: float = 1.0
    value: float | None = Field(
        default=None, description="Pass this fixed Python number instead of a random tensor (shape must be [])."
    )
    scalar: bool = Field(
        default=False, description="Pass a random Python number (drawn in [low, high)) instead of a 0-d tensor."
    )
    requires_grad: bool = Field(
        default=False, description="Hand the tensor to the function with requires_grad=True (e.g. critic weights)."
    )

    @model_validator(mode="after")
    def _range(self) -> TensorInput:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        for dim in self.shape:
            if isinstance(dim, int) and dim < 0:
                raise ValueError("integer dimensions must be >= 0")
        if (self.value is not None or self.scalar) and self.shape:
            raise ValueError("a `value` or `scalar` input is a Python number: its shape must be []")
        if self.value is not None and self.scalar:
            raise ValueError("set either `value` (fixed) or `scalar` (random), not both")
        if self.requires_grad and (self.value is not None or self.scalar or self.dtype not in ("float32", "float64")):
            raise ValueError("requires_grad needs a floating-point tensor input")
        return self


class CodeCase(StrictModel):
    """A seeded test case; a regrade draws the same inputs."""

    name: Identifier
    seed: int
    points: PositivePoints
    dims: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    time_limit_s: float | None = Field(
        default=None, gt=0, le=300, description="Wall-clock limit for this case; defaults to the part's time_limit_s."
    )


class CodeSpec(StrictModel):
    """How a code part is run and checked against a PyTorch autograd reference.

    Dtype policy: a floating-point reference output accepts float32 or float64 from the
    student (compared in float64) unless ``exact_dtype``; half precision, integer, bool
    and complex outputs are wrong dtypes. An integer or bool reference output needs an
    integer (resp. bool) output and exact equality.
    """

    entry_point: Identifier = Field(description="Function the student defines.")
    reference: NonEmptyText = Field(description="Python file, relative to the rubric file, with the reference.")
    reference_function: Identifier | None = Field(
        default=None, description="Function in the reference file; defaults to entry_point."
    )
    inputs: list[TensorInput] = Field(min_length=1)
    cases: list[CodeCase] = Field(min_length=1)
    rtol: float = Field(default=1e-4, ge=0)
    atol: float = Field(default=1e-5, ge=0)
    time_limit_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Wall-clock limit for each case, and for the module's own code before the first case.",
    )
    memory_limit_mb: int = Field(
        default=1024, gt=0, description="Memory the student's code may allocate (address space, on top of torch)."
    )
    forbidden: list[NonEmptyText] = Field(
        default_factory=list,
        description="Dotted names or attributes the student may not call (e.g. torch.autograd.grad, backward).",
    )
    output_names: list[Identifier] = Field(
        default_factory=list,
        description="Names of the reference's outputs when it returns a tuple (used in feedback, e.g. grad_w).",
    )
    accept_numpy: bool = Field(
        default=False,
        description="Give credit for a numpy array with the right values (by default a torch.Tensor is required).",
    )
    exact_dtype: bool = Field(
        default=False, description="Require exactly the reference's dtype (by default float64 passes for float32)."
    )
    reference_precision: Literal["float64", "input"] = Field(
        default="float64",
        description=(
            "float64: the reference also runs on the inputs cast to float64 and its values are the target "
            "(dtype and shape still come from the run on the declared dtypes); input: only the declared dtypes."
        ),
    )
    output_requires_grad: bool = Field(
        default=False,
        description=(
            "The result must depend on the requires_grad inputs as the reference's does (e.g. a penalty used in a "
            "loss): its gradients with respect to each of them are compared with the reference's."
        ),
    )
    forbid_autograd: bool | None = Field(
        default=None,
        description=(
            "Refuse every use of autograd at run time (the engine behind backward/autograd.grad and its private "
            "entry points, *_backward kernels, forward-mode AD, Tensor.grad_fn); default: true when `forbidden` "
            "lists torch.autograd."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> CodeSpec:
        if self.forbid_autograd is None:
            self.forbid_autograd = "torch.autograd" in self.forbidden
        if self.forbid_autograd and self.output_requires_grad:
            raise ValueError(
                "output_requires_grad needs autograd to check the result's gradients; it cannot go with forbid_autograd"
            )
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate input names: {_duplicates(names)}")
        cases = [c.name for c in self.cases]
        if len(set(cases)) != len(cases):
            raise ValueError(f"duplicate case names: {_duplicates(cases)}")
        symbols = {d for i in self.inputs for d in i.shape if isinstance(d, str)}
        for case in self.cases:
            missing = symbols - set(case.dims)
            if missing:
                raise ValueError(f"case {case.name!r} does not bind dims {sorted(missing)}")
        return self


class Part(StrictModel):
    """One gradable part of a question: written (scored by similarity) or code (run against a reference)."""

    id: Identifier
    kind: Literal["written", "code"] = "written"
    prompt: NonEmptyText
    max_points: PositivePoints
    reference_answer: NonEmptyText = Field(
        description="A model answer for TAs; never shown to students by the feedback."
    )
    key_points: list[KeyPoint] = Field(default_factory=list)
    misconceptions: list[Misconception] = Field(default_factory=list)
    exemplars: list[Exemplar] = Field(default_factory=list)
    code: CodeSpec | None = None
    scoring: ScoringOverrides | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Part:
        for i, kp in enumerate(self.key_points, 1):
            if kp.id is None:
                kp.id = f"kp{i}"
        for i, m in enumerate(self.misconceptions, 1):
            if m.id is None:
                m.id = f"m{i}"
        ids = [kp.id for kp in self.key_points] + [m.id for m in self.misconceptions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate key point / misconception ids: {_duplicates([str(i) for i in ids])}")
        if self.kind == "written":
            if not self.key_points:
                raise ValueError("a written part needs at least one key point")
            if self.code is not None:
                raise ValueError("a written part cannot have a `code` section (set kind: code)")
            _check_total("key point points", sum(kp.points for kp in self.key_points), self.max_points)
        else:
            if self.code is None:
                raise ValueError("a code part needs a `code` section")
            _check_total("code case points", sum(c.points for c in self.code.cases), self.max_points)
        for i, m in enumerate(self.misconceptions):
            if m.penalty > self.max_points + POINTS_TOLERANCE:
                raise ValueError(
                    f"misconceptions[{i}].penalty ({m.penalty:g}) exceeds max_points ({self.max_points:g})"
                )
        for i, ex in enumerate(self.exemplars):
            if ex.points > self.max_points + POINTS_TOLERANCE:
                raise ValueError(f"exemplars[{i}].points ({ex.points:g}) exceeds max_points ({self.max_points:g})")
        return self


class Rubric(StrictModel):
    """One question: an id, an optional shared stem, and its parts."""

    id: Identifier = Field(description="Question id, e.g. q5; submissions say 'Question 5' or 'Q5'.")
    title: NonEmptyText
    question: str | None = Field(default=None, description="Stem shared by all parts.")
    parts: list[Part] = Field(min_length=1)

    @field_validator("parts")
    @classmethod
    def _unique_parts(cls, parts: list[Part]) -> list[Part]:
        ids = [p.id for p in parts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate part ids: {_duplicates(ids)}")
        return parts

    @property
    def max_points(self) -> float:
        return sum(p.max_points for p in self.parts)

    def qualified(self, part: Part) -> str:
        """The id a part carries in reports and gradebooks, e.g. ``q5.b``."""
        return f"{self.id}.{part.id}"


class RubricSet(BaseModel):
    """All rubrics of an assignment, plus where they came from and a hash that pins them in reports."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    directory: Path
    rubrics: list[Rubric]
    sources: dict[str, Path] = Field(description="Rubric id -> file it was loaded from.")
    sha256: str = Field(description="Hash over every rubric file and reference file, in name order.")

    def part(self, qualified_id: str) -> tuple[Rubric, Part]:
        qid, _, pid = qualified_id.partition(".")
        for rubric in self.rubrics:
            if rubric.id == qid:
                for part in rubric.parts:
                    if part.id == pid:
                        return rubric, part
        raise KeyError(qualified_id)

    def parts(self) -> list[tuple[Rubric, Part]]:
        """Every (rubric, part) in question order, then part order."""
        return [(r, p) for r in self.rubrics for p in r.parts]

    def part_ids(self) -> list[str]:
        return [r.qualified(p) for r, p in self.parts()]

    def reference_path(self, rubric: Rubric, part: Part) -> Path:
        """Absolute path of a code part's reference implementation."""
        assert part.code is not None
        return (self.sources[rubric.id].parent / part.code.reference).resolve()

    @property
    def max_points(self) -> float:
        return sum(r.max_points for r in self.rubrics)


class RubricError(Exception):
    """A rubric problem, already phrased as ``file: field.path: reason`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _duplicates(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({x for x in items if x in seen or seen.add(x)})  # type: ignore[func-returns-value]


def _check_total(what: str, total: float, max_points: float) -> None:
    if abs(total - max_points) > POINTS_TOLERANCE:
        raise ValueError(f"{what} sum to {total:g} but max_points is {max_points:g}")


def _loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else str(item)
    return out


def _message(err: Mapping[str, Any]) -> str:
    msg: str = err["msg"]
    if err["type"] == "string_type" and isinstance(err.get("input"), bool):
        return "YAML read this as true/false (yes/no/on/off): quote it, e.g. 'yes'"
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    if err["type"] == "extra_forbidden":
        return "unknown field (check its spelling or remove it)"
    if err["type"] == "missing":
        return "required field is missing"
    msg = msg[:1].lower() + msg[1:]
    return msg


def format_validation_error(path: Path | str, error: ValidationError) -> list[str]:
    """Turn a pydantic error into ``file: field.path: reason`` lines, one per problem."""
    lines = []
    for err in error.errors():
        loc = _loc(tuple(err["loc"]))
        where = f"{path}: {loc}: " if loc else f"{path}: "
        lines.append(where + _message(err))
    return lines


def load_rubric(path: Path) -> Rubric:
    """Load and validate one rubric file; raise RubricError naming the file, field and reason."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError([f"{path}: cannot read file: {exc}"]) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RubricError([f"{path}: invalid YAML: {where}{problem}"]) from None
    if not isinstance(data, dict):
        raise RubricError([f"{path}: a rubric must be a YAML mapping with id, title and parts"])
    try:
        return Rubric.model_validate(data)
    except ValidationError as exc:
        raise RubricError(format_validation_error(path, exc)) from None


def rubric_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in {".yaml", ".yml"} and p.is_file())


def _natural_key(rubric: Rubric) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", rubric.id))


def load_rubric_dir(directory: Path | str) -> RubricSet:
    """Load every rubric in a directory; collect all problems across files before failing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RubricError([f"{directory}: not a directory of rubric YAML files"])
    files = rubric_files(directory)
    if not files:
        raise RubricError([f"{directory}: no rubric files (*.yaml, *.yml) found"])
    problems: list[str] = []
    rubrics: list[Rubric] = []
    sources: dict[str, Path] = {}
    for path in files:
        try:
            rubric = load_rubric(path)
        except RubricError as exc:
            problems.extend(exc.problems)
            continue
        if rubric.id in sources:
            problems.append(f"{path}: id: duplicate question id {rubric.id!r} (also in {sources[rubric.id].name})")
            continue
        sources[rubric.id] = path
        rubrics.append(rubric)
    for rubric in rubrics:
        for i, part in enumerate(rubric.parts):
            if part.code is not None:
                ref = (sources[rubric.id].parent / part.code.reference).resolve()
                if not ref.is_file():
                    problems.append(
                        f"{sources[rubric.id]}: parts[{i}].code.reference: file not found: {part.code.reference}"
                    )
    if problems:
        raise RubricError(problems)
    rubrics.sort(key=_natural_key)
    return RubricSet(directory=directory, rubrics=rubrics, sources=sources, sha256=_hash_files(rubrics, sources))


def _hash_files(rubrics: list[Rubric], sources: dict[str, Path]) -> str:
    """Hash every rubric and reference file by its path relative to the rubric directory, in path order."""
    digest = hashlib.sha256()
    files = {p.resolve() for p in sources.values()}
    for rubric in rubrics:
        for part in rubric.parts:
            if part.code is not None:
                files.add((sources[rubric.id].parent / part.code.reference).resolve())
    base = Path(next(iter(sources.values()))).resolve().parent if sources else Path(".")

    def rel(path: Path) -> str:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            return path.as_posix()

    for path in sorted(files, key=rel):
        digest.update(rel(path).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def rubric_json_schema() -> dict:
    """JSON Schema of one rubric file, for editors that validate YAML as it is typed."""
    schema = Rubric.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "grader rubric (one question)"
    return schema
