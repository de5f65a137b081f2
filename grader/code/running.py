"""Jobs for the sandbox, and the servers that run them: one warm server per worker thread."""

from __future__ import annotations

import threading

from grader.code.reference import PreparedCase
from grader.code.sandbox import Job, JobCase, Limits, RunResult, SandboxServer
from grader.code.selection import SourceCode
from grader.rubric import CodeSpec

SANDBOX_FAILURES = ("sandbox_died", "sandbox_error", "setup_error")
"""The sandbox's own failures (never the student's: set-up ends before their code runs)."""


def build_job(spec: CodeSpec, src: SourceCode, preps: list[PreparedCase]) -> Job:
    """What the sandbox runs for one answer: its code, the entry point, every case's arguments and limits."""
    return Job(
        code=src.text,
        entry_point=spec.entry_point,
        cases=[JobCase(p.case.name, p.args, p.cotangents, p.case.time_limit_s) for p in preps],
        forbidden=[name for name in spec.forbidden if "*" not in name],  # globs are for the static check
        forbid_autograd=bool(spec.forbid_autograd),
        grad_inputs=[i for i, inp in enumerate(spec.inputs) if inp.requires_grad] if spec.output_requires_grad else [],
        limits=Limits(case_s=spec.time_limit_s, load_s=spec.time_limit_s, memory_mb=spec.memory_limit_mb),
    )


class ServerPool:
    """A sandbox server per thread, started on first use; ``close`` stops them all."""

    def __init__(self, allow_unsandboxed: bool) -> None:
        self.allow_unsandboxed = allow_unsandboxed
        self._local = threading.local()
        self._servers: list[SandboxServer] = []
        self._lock = threading.Lock()

    def _server(self) -> SandboxServer:
        server = getattr(self._local, "server", None)
        if server is None:
            server = SandboxServer(allow_unsandboxed=self.allow_unsandboxed)
            self._local.server = server
            with self._lock:
                self._servers.append(server)
        return server

    def run(self, job: Job) -> RunResult:
        """Run a job; a sandbox failure is retried once (with a fresh child, or a fresh server if it died)."""
        server = self._server()
        run = server.run(job)
        if run.status in SANDBOX_FAILURES:
            again = server.run(job)
            if again.status not in SANDBOX_FAILURES:
                return again
        return run

    def close(self) -> None:
        """Stop every server (idempotent: a run still in flight may have restarted one)."""
        with self._lock:
            servers = list(self._servers)
        for s in servers:
            s.close()
