"""Run untrusted Python (students' PyTorch code) in isolation. No grading logic lives here.

``server.py`` is the inside (the one file bubblewrap binds into the sandbox), ``client.py``
the grader's side, ``capabilities.py`` what the machine offers, ``cgroup.py`` the CPU
quota. docs/sandbox.md has the threat model.
"""

from grader.code.sandbox.capabilities import (
    Capabilities,
    Protection,
    SandboxUnavailable,
    detect,
    python_layout,
    require_sandbox,
)
from grader.code.sandbox.client import Arg, Job, JobCase, Limits, RunResult, SandboxError, SandboxServer
from grader.code.sandbox.server import EXIT_FORBIDDEN, EXIT_RESULT_CHANNEL, parse_frames

__all__ = [
    "EXIT_FORBIDDEN",
    "EXIT_RESULT_CHANNEL",
    "Arg",
    "Capabilities",
    "Job",
    "JobCase",
    "Limits",
    "Protection",
    "RunResult",
    "SandboxError",
    "SandboxServer",
    "SandboxUnavailable",
    "detect",
    "parse_frames",
    "python_layout",
    "require_sandbox",
]
