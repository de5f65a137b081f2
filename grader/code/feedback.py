"""The words a student (and a TA) reads about a code answer: why a case failed, why a run stopped.

Text that came from the student's process (an exception's message, a line of their
code) appears only as a quotation inside our own sentence, already cleaned
(grader.code.untrusted); nothing the student wrote is ever phrased as the grader's.
"""

from __future__ import annotations

import math
import re

from grader.code.reference import PreparedCase
from grader.code.sandbox import EXIT_RESULT_CHANNEL, Limits, RunResult
from grader.code.selection import SourceCode
from grader.report import CodeCaseResult
from grader.rubric import CodeCase, CodeSpec

SIGNAL_TEXT = {
    "SIGXCPU": ("timeout", "used more CPU time than allowed ({limit:g} s)"),
    "SIGXFSZ": ("file_limit", "wrote a file larger than the limit ({file_mb} MB)"),
    "SIGKILL": ("killed", "was killed by the system (SIGKILL), most likely for using too much memory"),
    "SIGSEGV": ("crashed", "crashed the Python process (segmentation fault, SIGSEGV)"),
    "SIGBUS": ("crashed", "crashed the Python process (bus error, SIGBUS)"),
    "SIGABRT": ("crashed", "aborted the Python process (SIGABRT)"),
    "SIGILL": ("crashed", "crashed the Python process (illegal instruction, SIGILL)"),
    "SIGFPE": ("crashed", "crashed the Python process (arithmetic error, SIGFPE)"),
    "SIGSYS": ("crashed", "made a system call the sandbox does not allow (SIGSYS)"),
}


def signature(spec: CodeSpec) -> str:
    return f"{spec.entry_point}({', '.join(i.name for i in spec.inputs)})"


def forbid_hint(spec: CodeSpec) -> str:
    names = list(spec.forbidden)
    if spec.forbid_autograd:
        names.append("any other way into autograd")
    return "forbidden here: " + ", ".join(names) if names else "forbidden"


def case_label(case: CodeCase) -> str:
    if case.dims:
        return f"{case.name} ({', '.join(f'{k}={v}' for k, v in case.dims.items())})"
    return case.name


def pts(x: float) -> str:
    return f"{x:g}"


def finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def case_limit(spec: CodeSpec, case: CodeCase) -> float:
    return case.time_limit_s or spec.time_limit_s


def forbidden_feedback(labels: list[str], spec: CodeSpec) -> str:
    return (
        f"Your code used {', '.join(labels)}, which this exercise forbids ({forbid_hint(spec)}); "
        "the grader's runtime check stopped it. The part earns no credit."
    )


def process_reason(run: RunResult, spec: CodeSpec) -> tuple[str, str]:
    """(reason code, words) for how the process ended, when it did not end normally (timeouts aside)."""
    if run.status == "ok":
        return "ok", ""
    if run.status == "cpu_limit":
        return "cpu_limit", (
            f"used more CPU time than allowed across all its processes and threads ({run.cpu_s or 0:.1f} s); "
            "the limit is the time limit, as if on one core"
        )
    if run.status == "output_limit":
        return (
            "output_limit",
            f"printed too much output (more than {Limits().max_output_bytes:,} bytes); remove debugging prints",
        )
    if run.status == "result_limit":
        return "result_limit", "returned too much data (more than 64 MB)"
    if run.status == "signal":
        code, text = SIGNAL_TEXT.get(run.signal_name or "", ("crashed", f"was killed by signal {run.signal_name}"))
        budget = spec.time_limit_s + sum(case_limit(spec, c) for c in spec.cases)
        return code, text.format(limit=budget, file_mb=Limits().max_file_mb)
    if run.status == "exit" and run.exit_code == EXIT_RESULT_CHANNEL:
        return "no_result", "closed the grader's result channel (file descriptor 3), so no result came back"
    if run.status == "exit":
        return "exited", f"ended the Python process (exit code {run.exit_code}); do not call exit() or os._exit()"
    return "no_result", "produced no result"


def _was_waiting(timeout: dict) -> bool:
    wall = float(timeout.get("wall_s") or 0.0)
    return timeout.get("state") in ("S", "D", "T", "t") and float(timeout.get("cpu_s") or 0.0) < 0.5 * wall


def timeout_reason(run: RunResult, spec: CodeSpec, preps: list[PreparedCase]) -> str:
    """Tell slow from stuck: was the process computing, and how long did the earlier cases take?"""
    info = run.timeout or {}
    phase = info.get("phase")
    if phase == "load":
        waiting = " and was waiting, not computing" if _was_waiting(info) else ""
        return (
            f"timed out: your module-level code (outside any function) was still running after {spec.time_limit_s:g} "
            f"s{waiting}"
        )
    if phase != "case" or not isinstance(info.get("index"), int) or not 0 <= info["index"] < len(preps):
        return "timed out: it kept running after its last result; do not leave threads or processes running"
    k = info["index"]
    limit = case_limit(spec, preps[k].case)
    if _was_waiting(info):
        return (
            f"timed out after {limit:g} s (the limit per case) while waiting, not computing (for example in "
            "time.sleep, input(), a lock or a process that never finishes): it looks stuck, not slow"
        )
    earlier = run.cases_s[:k]
    if earlier and max(earlier) >= 0.1 * limit:
        took = " and ".join(f"{t:.1f} s" for t in earlier[-3:])
        return (
            f"timed out: still computing after {limit:g} s (the limit per case) while the earlier cases took {took}: "
            "it looks correct but too slow for this input; avoid Python loops over elements (use tensor operations)"
        )
    if earlier:
        return (
            f"timed out: still computing after {limit:g} s (the limit per case) although the earlier cases took at "
            f"most {max(earlier):.2f} s: it looks stuck (an infinite loop?), not slow"
        )
    return (
        f"timed out: still computing after {limit:g} s (the limit per case): either it never ends (an infinite loop?) "
        "or it is far too slow for this input (e.g. Python loops over every element)"
    )


def exception_reason(exc: dict, src: SourceCode, spec: CodeSpec) -> tuple[str, str]:
    typ = str(exc.get("type", "Exception"))
    msg = str(exc.get("message") or "").strip()
    where = src.where(exc.get("line")) if isinstance(exc.get("line"), int) else "a line outside your code"
    short = msg.splitlines()[0][:300] if msg else ""
    if exc.get("memory"):
        m = re.search(r"tried to allocate (\d+) bytes", msg)
        what = f"tried to allocate {human_bytes(int(m.group(1)))}" if m else (short or typ)
        return "memory", f"ran out of memory on {where}: {what}; the limit is {spec.memory_limit_mb} MB"
    if typ == "SystemExit":
        return "exited", f"called exit() on {where}; do not exit, return the result"
    if typ == "RecursionError":
        return "exception", f"recursed too deeply (RecursionError) on {where}"
    blocked = sandbox_block(exc)
    if blocked is not None:
        code, what = blocked
        if code == "file_blocked" or not short:
            return code, f"{what} on {where} ({typ})"
        return code, f"{what} on {where} ({typ}: {short})"
    return "exception", f"raised {typ} on {where}" + (f": {short}" if short else "")


def sandbox_block(exc: dict) -> tuple[str, str] | None:
    """Recognise an exception caused by a sandbox protection, so the report names it."""
    typ = str(exc.get("type", ""))
    err = exc.get("errno")
    libs = set(exc.get("libs") or [])
    frames = exc.get("frames") or []
    line_text = " ".join(str(f[2]) for f in frames if isinstance(f, list) and len(f) == 3)
    fname = exc.get("filename")
    if (
        "socket.py" in libs
        or exc.get("module") == "socket"
        or typ in ("gaierror", "herror")
        or ("socket" in line_text and err in (1, 13, 97, 101, 111, 113))
    ):
        return "network_blocked", "tried to use the network, which the sandbox blocks"
    if (
        err == 11
        and any(w in line_text for w in ("fork", "Thread", "Popen", "start"))
        or (err == 11 and "threading.py" in libs)
    ):
        return "process_limit", "hit the sandbox's limit on processes and threads"
    if typ == "RuntimeError" and "can't start new thread" in str(exc.get("message") or ""):
        return "process_limit", "hit the sandbox's limit on processes and threads"
    if err in (1, 3) and "kill" in line_text:
        return "signal_blocked", "tried to signal a process outside its own, which the sandbox forbids"
    if err == 27:
        return "file_limit", "wrote a file larger than the sandbox allows"
    if err == 28:
        return "file_limit", "filled its scratch space in the sandbox"
    if fname and str(fname).startswith("/") and err in (2, 13, 30):
        what = {
            2: "does not exist in the sandbox",
            13: "is not accessible in the sandbox",
            30: "is read-only in the sandbox",
        }[err]
        return (
            "file_blocked",
            f"tried to access {fname}, which {what} (code runs with only its working directory writable)",
        )
    if typ == "PermissionError" and err in (1, 13):
        return "sandbox_blocked", "tried an operation the sandbox does not permit"
    return None


def grouped_failures(preps: list[PreparedCase], cases: list[CodeCaseResult]) -> list[str]:
    """One line per failure reason: 'Case batch16 (N=16) failed: ...' or 'Cases a, b failed: ...'."""
    groups: dict[str, list[str]] = {}
    for prep, c in zip(preps, cases):
        if not c.passed:
            groups.setdefault(c.reason, []).append(case_label(prep.case))
    out = []
    for reason, labels in groups.items():
        if len(labels) == 1:
            out.append(f"Case {labels[0]} failed: {reason}.")
        else:
            out.append(f"Cases {', '.join(labels[:-1])} and {labels[-1]} failed: {reason}.")
    return out


def exc_text(exc: dict, src: SourceCode) -> str | None:
    """A short traceback of the student's exception, with lines mapped to their blocks."""
    if not exc:
        return None
    lines = [f"{exc.get('type', 'Exception')}: {str(exc.get('message') or '')[:500]}"]
    if isinstance(exc.get("line"), int):
        lines.append(f"  at {src.where(exc.get('line'))}")
    for fr in exc.get("frames") or []:
        if isinstance(fr, list) and len(fr) == 3 and isinstance(fr[0], int):
            lines.append(f"  {src.where(fr[0])}, in {fr[1]}: {fr[2]}")
    return "\n".join(lines)
