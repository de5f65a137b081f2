"""Every flag of the command line, declared once.

Defaults and help come from the library's options models (GradeOptions, ClusterOptions), so a
verb's flags and the API cannot drift: a verb takes `Annotated` parameters from here with the
matching model default, and hands its parsed flags to :func:`grade_options` by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from pydantic import BaseModel, ValidationError

from grader.options import ClusterOptions, GradeOptions

GRADE_DEFAULTS = GradeOptions()
"""The library's defaults, read by every verb's signature."""
CLUSTER_DEFAULTS = ClusterOptions()
BACKENDS: tuple[str, ...] = get_args(ClusterOptions.model_fields["backend"].annotation)


def _help(name: str, model: type[BaseModel] = GradeOptions) -> str:
    return model.model_fields[name].description or ""


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
DeviceOption = Annotated[str | None, typer.Option("--device", help=_help("device"))]
BackendOption = Annotated[str, typer.Option("--backend", help=_help("backend", ClusterOptions))]
AddressOption = Annotated[str | None, typer.Option("--address", help=_help("address", ClusterOptions))]
WorkersOption = Annotated[int | None, typer.Option("--workers", min=1, help=_help("workers", ClusterOptions))]
CpusPerWorkerOption = Annotated[
    int, typer.Option("--cpus-per-worker", min=1, help=_help("cpus_per_worker", ClusterOptions))
]
GpusPerWorkerOption = Annotated[
    float, typer.Option("--gpus-per-worker", min=0, help=_help("gpus_per_worker", ClusterOptions))
]
JudgeOption = Annotated[
    str,
    typer.Option(
        "--judge",
        help=(
            "Cross-encoder that decides whether the answer entails or contradicts each key point: a model shipped "
            "with grader, by name, or a path."
        ),
    ),
]
NoJudgeOption = Annotated[
    bool,
    typer.Option(
        "--no-judge",
        help=(
            "Similarity only, no cross-encoder: faster, but it grades topic, not truth (a denial scores like the "
            "claim)."
        ),
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON alone on stdout.")]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="How to read an LMS CSV among the inputs: layout=canvas|moodle|long plus question=part pairs, "
        "or a YAML file (see README, 'Answers from an LMS').",
    ),
]
GradedOutArgument = Annotated[Path, typer.Argument(help="An output directory of `grader grade`.")]

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
        cache_dir = flags.get("cache_dir") or default_cache_dir()
        fields["cache_dir"] = None if flags.get("no_cache") else Path(cache_dir).resolve()
    if "judge" in flags:
        fields["judge"] = None if flags.get("no_judge") else flags["judge"]
    try:
        return GradeOptions(**fields)
    except ValidationError as exc:
        from grader.cli.output import fail

        fail(
            "Invalid option", [f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()]
        )


def cluster_options(flags: Mapping[str, Any]) -> ClusterOptions:
    """ClusterOptions from a verb's parsed flags, matched by name (a clear error for a wrong value)."""
    from grader.cli.output import fail

    if flags.get("backend", CLUSTER_DEFAULTS.backend) not in BACKENDS:
        fail(f"--backend must be {' or '.join(BACKENDS)} (got {flags['backend']!r})")
    return ClusterOptions(**{k: v for k, v in flags.items() if k in ClusterOptions.model_fields})
