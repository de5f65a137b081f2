"""Helpers shared by the sandbox suites: the skip-or-run marker, a one-tensor job, reading results back."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from grader.code import CodeGrader
from grader.code.sandbox import Arg, Job, JobCase, Limits, RunResult, SandboxServer, detect
from grader.rubric import RubricSet

CAPS = detect()


def needs_sandbox(test: Callable) -> Callable:
    """Skipped with the reason where bubblewrap is missing (CI installs it)."""
    skip = pytest.mark.skipif(
        CAPS.problem is not None,
        reason=f"sandbox unavailable: {CAPS.problem} (CI installs it: apt-get install -y bubblewrap)",
    )
    return skip(test)  # conftest marks it `sandbox` (the reason names bubblewrap)


def code_grader(rubrics: RubricSet) -> CodeGrader:
    """A CodeGrader for a module's rubrics (use it as a context manager); skips where the sandbox is missing."""
    if CAPS.problem is not None:
        pytest.skip(f"sandbox unavailable: {CAPS.problem}")
    return CodeGrader(rubrics)


@pytest.fixture(scope="module")
def server():
    """One warm sandbox server for the module that imports this fixture."""
    if CAPS.problem is not None:
        pytest.skip(f"sandbox unavailable: {CAPS.problem}")
    with SandboxServer() as s:
        s.start()
        yield s


def job(code: str, *, wall: float = 3.0, forbidden: tuple[str, ...] = (), forbid_autograd: bool = False, **limits: Any) -> Job:
    """Call ``f(x)`` once, x a 2x3 float32 tensor, with ``wall`` seconds for the module and for the case."""
    return Job(
        code=textwrap.dedent(code),
        entry_point="f",
        cases=[JobCase("a", [Arg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))])],
        forbidden=list(forbidden),
        forbid_autograd=forbid_autograd,
        limits=Limits(case_s=wall, **limits),
    )


def case_event(r: RunResult) -> dict:
    evs = [e for e in r.events if e.get("event") == "case"]
    assert evs, f"no case event: status={r.status} events={r.events} stderr={r.stderr_tail[-500:]}"
    return evs[0]


def exc_of(r: RunResult) -> dict:
    ev = case_event(r)
    assert not ev["ok"], f"expected an exception, got {ev.get('output')}"
    return ev["exc"]


def value_of(r: RunResult) -> Any:
    """Decode the case's output (numbers, strings, lists and tensors)."""
    ev = case_event(r)
    assert ev["ok"], f"the code raised: {ev.get('exc')}"

    def dec(d: dict) -> Any:
        t = d["type"]
        if t in ("int", "float", "bool", "str"):
            return d["value"]
        if t in ("list", "tuple"):
            return [dec(x) for x in d["items"]]
        if t in ("tensor", "ndarray"):
            return np.load(io.BytesIO(r.blobs[ev["_blob_base"] + d["blob"]]), allow_pickle=False)
        if t == "none":
            return None
        return d

    return dec(ev["output"])
