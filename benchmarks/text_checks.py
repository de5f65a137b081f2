"""The text checks on a 2 MB submission: parse (intake), code selection and the static check.

Each check must stay linear in the answer's length: a quadratic step takes hours at this
size. Builds each kind of 2 MB submission in a temporary directory, then times:

* ``parse``     parse_source: read, decode, segment into answers
* ``select``    select_code on the answer to Q5 b
* ``static``    find_forbidden on the selected code (when it is within the 1 MB that may run)
* ``compile``   one ``compile()`` of the selected code: the least any syntax check costs

CPU seconds (this process) and wall seconds; the goal is parse + select under 5 s.

    python benchmarks/text_checks.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grader.code import find_forbidden, select_code  # noqa: E402
from grader.code.grader import MAX_CODE_BYTES  # noqa: E402
from grader.intake import parse_source  # noqa: E402
from grader.submission import SubmissionSource  # noqa: E402

SIZE = 2_000_000
LAYOUT = {"q5": ["a", "b"]}
FORBIDDEN = ["torch.autograd", "backward", "torch.func", "functorch"]
CODE_LINE = "x = torch.autograd.grad(y, z); y.backward(); a.b.c.d.e.f\n"


def submissions() -> dict[str, str]:
    """Five ways to fill 2 MB: each stresses a different step."""
    code = "import torch\n" + CODE_LINE * (MAX_CODE_BYTES // len(CODE_LINE) - 10)
    entry = "def conv_weight_grad(x, y, weight):\n    return weight\n"
    head = "# Question 5\n\n(b)\n\n"

    def fill(body: str, unit: str) -> str:
        return head + body + unit * ((SIZE - len(head) - len(body)) // len(unit))

    return {
        "code then pasted output (no fences)": fill("My answer:\n\n" + code + entry, "the output was tensor([1., (2.,\n"),
        "fenced code and prose": fill("```python\n" + code + entry + "```\n\n", "The gradient of the loss is the residual times x.\n"),
        "prose only": fill("", "The weight gradient sums two times the residual times each input. "),
        "blank lines": fill("def conv_weight_grad(x, y, weight):\n    return weight\n", "\n"),
        "one long line": fill("", "x"),
    }


def _timed(fn, *args):  # noqa: ANN001, ANN202
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - c0, time.perf_counter() - w0


def bench(name: str, text: str, directory: Path) -> dict:
    path = directory / "submission.md"
    path.write_text(text)
    sub, parse_cpu, parse_wall = _timed(lambda: parse_source(SubmissionSource(student_id="s", paths=[path]), LAYOUT, max_bytes=10**8))
    answer = sub.answer("q5.b")
    row = {"kind": name, "bytes": path.stat().st_size, "parse_cpu_s": parse_cpu, "parse_wall_s": parse_wall}
    if answer is None:
        return row | {"select_cpu_s": 0.0, "select_wall_s": 0.0, "static_cpu_s": 0.0, "baseline_cpu_s": 0.0}
    src, row["select_cpu_s"], row["select_wall_s"] = _timed(select_code, answer, "conv_weight_grad")
    row["static_cpu_s"] = row["baseline_cpu_s"] = 0.0
    if src is not None and len(src.text) <= MAX_CODE_BYTES:
        _, row["static_cpu_s"], _ = _timed(find_forbidden, src.text, FORBIDDEN)
        _, row["baseline_cpu_s"], _ = _timed(compile, src.text, "<answer>", "exec")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in submissions().items():
            rows.append(bench(name, text, Path(tmp)))
    print(f"{'submission (2 MB)':38s} {'parse':>7s} {'select':>7s} {'static':>7s} {'compile':>8s} {'p+s wall':>9s}  (CPU s)")
    for r in rows:
        wall = r["parse_wall_s"] + r["select_wall_s"]
        print(f"{r['kind']:38s} {r['parse_cpu_s']:7.2f} {r['select_cpu_s']:7.2f} {r['static_cpu_s']:7.2f} {r['baseline_cpu_s']:8.2f} {wall:9.2f}")
    worst = max(r["parse_cpu_s"] + r["select_cpu_s"] for r in rows)
    print(f"\nworst parse + select: {worst:.2f} CPU s (goal < 5 s): {'met' if worst < 5 else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
