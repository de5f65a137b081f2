"""GPU check: a synthetic class graded on a device with the default models, then its first students on the CPU.

    bash benchmarks/gpu_check.sh                       # on the GPU machine (see that script for carrying wheels)
    python benchmarks/gpu_check.py 1000 --compare 50 --device cuda
    python benchmarks/gpu_check.py 8 --compare 4 --device cpu --no-code     # the check of the check, on a CPU

Prints students/s on the device (model loading apart), and the largest difference in any part's
points between the device's grades and the CPU's for the same students, against the goals: 1,000
students in under 30 s, and no part off by 0.01 of its maximum. The last line is the same as JSON.
Nothing is cached on disk between the two runs (--cache gives the device run a cache to start from:
only to check the check, as its time is then not a cold run's). On a CUDA device the CPU run loads its own models and
judges every pair again; in a check on the CPU alone the second run reuses the first's models and their
in-memory outputs (one process, as grader itself), so that check tests the plumbing, not the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from batch import RUBRICS, generate_class

from grader.accelerate import available_cores

GOAL_S = 30.0
"""1,000 full submissions with the default models (issue 14), on one H100/H200."""
GOAL_FRACTION = 0.01
"""Largest CUDA-vs-CPU difference in a part's points, as a share of the part's maximum."""


def grade(
    sources: list, out: Path, device: str, run_code: bool, code_workers: int, cache_dir: Path | None = None
) -> dict:
    """Grade with the default options on `device` (and `cache_dir`, if any); reports by student and where the time went."""
    from grader.batch import run_batch
    from grader.pipeline import GradeOptions, Grader
    from grader.rubric import load_rubric_dir

    started = time.perf_counter()
    options = GradeOptions(device=device, run_code=run_code, code_workers=code_workers, cache_dir=cache_dir)
    with Grader(load_rubric_dir(RUBRICS), options) as grader:
        setup_s = time.perf_counter() - started
        t0 = time.perf_counter()
        outcome = run_batch(grader, sources, out, resume=False)
        run_s = time.perf_counter() - t0
    return {
        "reports": {r.student_id: r for r in outcome.reports},
        "setup_s": setup_s,
        "run_s": run_s,
        "graded": outcome.summary.n_graded,
        "identity": grader.model_identity,
    }


def code_state(reports: dict) -> str:
    """How the code parts went: how many ran and in which sandbox, or why none did."""
    code = [p for r in reports.values() for p in r.parts if p.kind == "code" and p.status != "missing"]
    ran = [p for p in code if p.code is not None and p.code.sandbox]
    if ran:
        return f"{len(ran)} of {len(code)} code answers ran ({ran[0].code.sandbox})"
    return (
        f"none of {len(code)} code answers ran: {code[0].warnings[0] if code and code[0].warnings else 'no code parts'}"
    )


def largest_difference(device: dict, cpu: dict) -> dict:
    """The largest |device - CPU| points of any part (as a share of its maximum), over the students both graded."""
    worst: dict = {"points": 0.0, "fraction": 0.0, "student": None, "part": None, "max_points": None}
    parts = 0
    for student, report in cpu["reports"].items():
        other = {p.part_id: p for p in device["reports"][student].parts}
        for part in report.parts:
            parts += 1
            diff = abs(part.points - other[part.part_id].points)
            fraction = diff / part.max_points if part.max_points else 0.0
            if worst["part"] is None or fraction > worst["fraction"]:
                worst = {
                    "points": round(diff, 4),
                    "fraction": round(fraction, 5),
                    "student": student,
                    "part": part.part_id,
                    "max_points": part.max_points,
                }
    worst["parts_compared"] = parts
    return worst


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))}), torch {torch.__version__}"
    return (
        f"{device} ({platform.processor() or platform.machine()}, {available_cores()} cores), torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("students", nargs="?", type=int, default=1000)
    parser.add_argument("--compare", type=int, default=50, help="Students graded again on the CPU (the first ones).")
    parser.add_argument(
        "--device", default="cuda", help="Device under test: cuda, cuda:N, or cpu (to check the check)."
    )
    parser.add_argument("--no-code", action="store_true", help="Written parts only.")
    parser.add_argument(
        "--code-workers",
        type=int,
        default=available_cores(),
        help="Sandbox servers for code parts (default: the cores available).",
    )
    parser.add_argument("--work", type=Path, default=None, help="Working directory (default: a temporary one).")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="A cache the device run starts from and writes (default: none). To check the check only: "
        "with models' outputs or results in it, the device's time is not a cold run's.",
    )
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit(
                f"--device {args.device}: torch {torch.__version__} sees no CUDA device (use --device cpu to check the check)"
            )
    from grader.intake import discover

    work = args.work or Path(tempfile.mkdtemp(prefix="grader-gpu-check-"))
    generate_class(args.students, work / "class", seed=args.students, with_code=not args.no_code)
    sources = sorted(discover([work / "class"])[0], key=lambda s: s.student_id)
    on_device = grade(sources, work / "out-device", args.device, not args.no_code, args.code_workers, args.cache)
    on_cpu = grade(sources[: args.compare], work / "out-cpu", "cpu", not args.no_code, args.code_workers)
    worst = largest_difference(on_device, on_cpu)
    rate = len(sources) / on_device["run_s"] if on_device["run_s"] else 0.0
    per_1000 = 1000 / rate if rate else float("inf")
    print(f"device: {device_name(args.device)}; models {on_device['identity']}")
    print(
        f"code parts: {'not run (--no-code)' if args.no_code else code_state(on_device['reports'])}; "
        f"{args.code_workers} sandbox server(s)"
    )
    print(
        f"{len(sources)} students graded on {args.device} in {on_device['run_s']:.1f} s: {rate:.1f} students/s "
        f"(model loading {on_device['setup_s']:.1f} s apart; {on_device['graded']} graded"
        + (f"; started from the cache in {args.cache}, not a cold run)" if args.cache else ")")
    )
    print(
        f"{args.device} vs cpu, {len(on_cpu['reports'])} students, {worst['parts_compared']} parts: largest difference "
        f"{worst['points']:g} points"
        + (
            f" ({worst['part']} of {worst['student']}, {worst['fraction']:.2%} of its {worst['max_points']:g})"
            if worst["part"]
            else ""
        )
    )
    print(
        f"goals: 1,000 students in {per_1000:.1f} s (goal < {GOAL_S:g} s): {'met' if per_1000 < GOAL_S else 'NOT met'}; "
        f"largest difference {worst['fraction']:.2%} of a part (goal < {GOAL_FRACTION:.0%}): "
        f"{'met' if worst['fraction'] < GOAL_FRACTION else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "device": args.device,
                "students": len(sources),
                "run_s": round(on_device["run_s"], 3),
                "setup_s": round(on_device["setup_s"], 3),
                "students_per_s": round(rate, 3),
                "graded": on_device["graded"],
                "compared_students": len(on_cpu["reports"]),
                **{f"worst_{k}": v for k, v in worst.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
