"""Reason codes of code results, and which results a rerun would reproduce (the only ones cached).

A result may be cached only when it follows from the code and the rubric alone: a
comparison of returned values, a static verdict, an exception the code raised. Anything
that depends on the sandbox's state or the machine's (time, memory, processes, disk, a
sandbox failure) is graded again on the next run.
"""

from __future__ import annotations

from grader.report import PartResult

REPRODUCIBLE = frozenset(
    {
        # verdicts on returned values
        "ok",
        "passed",
        "partial",
        "values_differ",
        "nan",
        "inf",
        "wrong_type",
        "wrong_structure",
        "wrong_shape",
        "wrong_dtype",
        "not_differentiable",
        "unreadable",
        # what the code itself did
        "exception",
        "load_error",
        "exited",
        "output_limit",
        "result_limit",
        "network_blocked",
        "file_blocked",
        "signal_blocked",
        "sandbox_blocked",
        # static verdicts (nothing ran)
        "syntax_error",
        "forbidden",
        "entry_point_missing",
        "no_code",
        "too_large",
        "missing",
    }
)
"""Reason codes that depend only on the code, its inputs and the rubric."""

STATE_DEPENDENT = frozenset(
    {
        "timeout",
        "cpu_limit",
        "memory",
        "process_limit",
        "file_limit",
        "killed",
        "crashed",
        "no_result",
        "sandbox_error",
        "reference_error",
        "not_run",
    }
)
"""Reason codes a rerun may change: machine load, memory, the sandbox's state, a sandbox failure."""


def repeatable(result: PartResult) -> bool:
    """Would grading the same code again give this result? Only then may it be cached."""
    if result.status != "graded" or result.code is None:
        return False
    if result.code.outcome not in REPRODUCIBLE:
        return False
    # cases that did not run are fine when what stopped them is itself reproducible (a case that
    # timed out before them carries its own, state-dependent code)
    return {case.reason_code for case in result.code.cases} <= REPRODUCIBLE | {"not_run"}
