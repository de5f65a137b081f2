"""Every flag of the command line, declared once.

Defaults and help come from the library's options models (GradeOptions, ScoringConfig), so a
verb's flags and the API cannot drift: a verb takes `Annotated` parameters from here with the
matching model default, and hands its parsed flags to :func:`grade_options` by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from grader.options import GradeOptions

GRADE_DEFAULTS = GradeOptions()
"""The library's defaults, read by every verb's signature."""


def _help(name: str) -> str:
    return GradeOptions.model_fields[name].description or ""


RubricsOption = Annotated[
    Path | None,
    typer.Option(
        "--rubrics",
        "-r",
        help="Directory of rubric YAML files (default: the example course's rubrics/, when run from a checkout).",
    ),
]
ModelOption = Annotated[str, typer.Option("--model", help=_help("model"))]
MaxBytesOption = Annotated[int, typer.Option("--max-bytes", min=1, help=_help("max_bytes"))]
NoCodeOption = Annotated[
    bool, typer.Option("--no-code", help="Do not run code answers (they are reported as not run).")
]
UnsandboxedOption = Annotated[bool, typer.Option("--allow-unsandboxed", help=_help("allow_unsandboxed"))]
CodeWorkersOption = Annotated[int, typer.Option("--code-workers", min=1, help=_help("code_workers"))]
CacheDirOption = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Embedding/result cache (default: $GRADER_CACHE_DIR or ~/.cache/grader)."),
]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Keep nothing on disk between runs.")]
ChunkSizeOption = Annotated[int, typer.Option("--chunk-size", min=1, help=_help("chunk_size"))]
Int8Option = Annotated[bool, typer.Option("--int8", help=_help("int8"))]
JudgeOption = Annotated[
    str,
    typer.Option("--judge", help="Cross-encoder that decides whether the answer entails or contradicts each key point: a model shipped with grader, by name, or a path."),
]
NoJudgeOption = Annotated[
    bool, typer.Option("--no-judge", help="Similarity only, no cross-encoder: faster, but it grades topic, not truth (a denial scores like the claim).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON alone on stdout.")]

DEFAULT_JUDGE: str = GRADE_DEFAULTS.judge or ""


def grade_options(flags: Mapping[str, Any]) -> GradeOptions:
    """GradeOptions from a verb's parsed flags, matched by name; flags a verb lacks keep the model's default.

    The flags that say the opposite of a field (--no-code, --no-cache, --no-judge) are translated
    here, once.
    """
    from grader.cache import default_cache_dir

    fields = {k: v for k, v in flags.items() if k in GradeOptions.model_fields and k not in ("judge", "cache_dir")}
    if "no_code" in flags:
        fields["run_code"] = not flags["no_code"]
    if "cache_dir" in flags or "no_cache" in flags:
        fields["cache_dir"] = None if flags.get("no_cache") else (flags.get("cache_dir") or default_cache_dir())
    if "judge" in flags:
        fields["judge"] = None if flags.get("no_judge") else flags["judge"]
    return GradeOptions(**fields)
