"""Per-submission sandbox overhead: warm server + forked child vs. a fresh Python per run.

Run the same way every time (fixed run counts, same trivial submission, same
machine state) so numbers are comparable:

    python benchmarks/sandbox_overhead.py            # 30 runs of each method
    python benchmarks/sandbox_overhead.py --runs 30 --baseline-runs 30 --json out.json

Methods, all measured in this one process run:

* ``warm sandbox``       SandboxServer.run(): one locked-down child forked from the warm
                         server (bwrap, namespaces, uid drop, rlimits, seccomp), a trivial
                         function on one small tensor, result back as .npy. This is the
                         per-submission overhead the grader pays.
* ``warm sandbox, q5.b`` CodeGrader.grade() on a correct Q5 b answer: static checks, the
                         run (3 cases) and the comparison (references cached).
* ``fresh python``       ``python -c 'import torch; ...'`` per run, no isolation at all.
* ``fresh bwrap+python`` the same inside a fresh bubblewrap sandbox per run (what a naive
                         sandbox would cost).

Goal: the warm sandbox under 50 ms per submission.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grader.code import sandbox  # noqa: E402
from grader.code.sandbox import Arg, Job, JobCase, Limits, SandboxServer  # noqa: E402
from grader.code.sandbox.capabilities import bwrap_args  # noqa: E402

TRIVIAL = "import torch\n\ndef f(x):\n    return x * 2\n"
FRESH = (
    "import io, sys, numpy as np, torch\n"
    "torch.set_num_threads(1)\n"
    "x = torch.from_numpy(np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False))\n"
    "ns = {}\n"
    "exec(compile(" + repr(TRIVIAL) + ", 'submission.py', 'exec'), ns)\n"
    "out = io.BytesIO(); np.save(out, ns['f'](x).numpy(), allow_pickle=False)\n"
    "sys.stdout.buffer.write(out.getvalue())\n"
)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _stats(samples: list[float]) -> dict:
    s = sorted(samples)
    return {
        "runs": len(s),
        "median_ms": statistics.median(s) * 1000,
        "p90_ms": s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))] * 1000,
        "min_ms": s[0] * 1000,
    }


def bench_warm(runs: int, arg: np.ndarray) -> tuple[dict, float]:
    job = Job(code=TRIVIAL, entry_point="f", cases=[JobCase("a", [Arg.tensor(arg)])], limits=Limits(case_s=10))
    with SandboxServer() as server:
        t0 = time.perf_counter()
        server.start()
        startup = time.perf_counter() - t0
        for _ in range(3):  # warm-up, not counted
            server.run(job)
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            r = server.run(job)
            samples.append(time.perf_counter() - t0)
            assert r.status == "ok", r
    return _stats(samples), startup


def bench_q5(runs: int) -> dict | None:
    from grader.code import CodeGrader
    from grader.rubric import load_rubric_dir
    from grader.submission import Answer

    answer_file = REPO / "tests" / "data" / "code_answers" / "q5.b" / "correct_vectorized.py"
    try:
        rubrics = load_rubric_dir(REPO / "rubrics")
        rubric, part = rubrics.part("q5.b")
    except Exception as exc:  # noqa: BLE001
        print(f"(skipping q5.b: {exc})", file=sys.stderr)
        return None
    code = answer_file.read_text()
    answer = Answer(part_id="q5.b", text=code, code=[code], origin=str(answer_file))
    with CodeGrader(rubrics) as grader:
        for _ in range(3):
            grader.grade(rubric, part, answer, "bench")
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            res = grader.grade(rubric, part, answer, "bench")
            samples.append(time.perf_counter() - t0)
            assert res.points == res.max_points, res.feedback
    return _stats(samples)


def bench_fresh(runs: int, arg: bytes, wrap: list[str], site: list[str], pass_fds: tuple[int, ...] = ()) -> dict:
    exe = os.path.realpath(sys.executable)
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    cmd = [*wrap, exe, "-I", "-S", "-c", f"import sys; sys.path[:0] = {site!r}\n" + FRESH]
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, input=arg, capture_output=True, env=env, pass_fds=pass_fds)
        samples.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"baseline failed: {p.stderr.decode()[-2000:]}")
    return _stats(samples)


def bench_fresh_bwrap(runs: int, arg: bytes, caps: sandbox.Capabilities) -> dict:
    """The same fresh Python inside a fresh bubblewrap sandbox built like the warm one."""
    layout = sandbox.python_layout()
    fd = os.open(os.devnull, os.O_RDONLY)  # stands in for the server's source (not run here)
    try:
        assert caps.bwrap
        wrap = [caps.bwrap, *[a for a in bwrap_args(caps, layout, 64, fd) if a != "--new-session"]]
        return bench_fresh(runs, arg, wrap, layout.sandbox_site(), (fd,))
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="runs of each warm method (default 30)")
    ap.add_argument("--baseline-runs", type=int, default=30, help="runs of each fresh-process method (default 30)")
    ap.add_argument("--no-bwrap-baseline", action="store_true", help="skip the fresh bwrap+python baseline")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()

    caps = sandbox.detect()
    if caps.problem:
        raise SystemExit(f"sandbox unavailable: {caps.problem}")
    arr = np.arange(1024, dtype=np.float32).reshape(1, 1, 32, 32)
    arg = _npy(arr)
    rows: dict[str, dict] = {}
    rows["warm sandbox (fork per run)"], startup = bench_warm(args.runs, arr)
    q5 = bench_q5(args.runs)
    if q5:
        rows["warm sandbox, q5.b graded (3 cases)"] = q5
    rows["fresh python per run (no isolation)"] = bench_fresh(args.baseline_runs, arg, [], sandbox.python_layout().site)
    if not args.no_bwrap_baseline:
        rows["fresh bwrap+python per run"] = bench_fresh_bwrap(args.baseline_runs, arg, caps)

    warm = rows["warm sandbox (fork per run)"]["median_ms"]
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, sandbox: {caps.bwrap} {caps.bwrap_version}")
    print(f"warm server start-up (bwrap + import torch + warm-up), once per worker: {startup * 1000:.0f} ms\n")
    print(f"{'method':40s} {'runs':>5s} {'median ms':>10s} {'p90 ms':>8s} {'min ms':>8s} {'x warm':>8s}")
    for name, st in rows.items():
        print(f"{name:40s} {st['runs']:5d} {st['median_ms']:10.1f} {st['p90_ms']:8.1f} {st['min_ms']:8.1f} {st['median_ms'] / warm:8.1f}")
    base = rows["fresh python per run (no isolation)"]["median_ms"]
    print(f"\nfresh python / warm sandbox: {base / warm:.0f}x faster per submission")
    print(f"goal (< 50 ms per submission): {'met' if warm < 50 else 'NOT met'} ({warm:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps({"startup_ms": startup * 1000, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
