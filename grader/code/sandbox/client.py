"""The grader's side of the sandbox: start a server, send it jobs, read back what happened.

Only isolation lives here, no grading. What comes back is split by who wrote it: the
server's report (trusted: exit status, clocks, whether set-up succeeded, what the
runtime guards saw) and the child's result stream (untrusted: return values and
exception details, parsed strictly and cleaned before anyone reads them).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.code.sandbox import server as inside
from grader.code.sandbox.capabilities import (
    SCRATCH,
    SERVER_PATH,
    Capabilities,
    bwrap_args,
    python_layout,
    require_sandbox,
)
from grader.code.sandbox.cgroup import CpuQuota
from grader.code.untrusted import clean_json, clean_text


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the student's code): server did not start, protocol broke."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission; times are wall-clock seconds."""

    case_s: float = 5.0  # each case (the default for cases that set none)
    load_s: float | None = None  # the module's own code; defaults to case_s
    cpu_s: float | None = None  # CPU seconds of all the run's processes together; defaults to the time budget
    memory_mb: int = 1024  # address space the student may add on top of the warm zygote's
    max_processes: int = 16  # processes + threads of the child's uid (RLIMIT_NPROC)
    max_file_mb: int = 16  # largest file the child may write (RLIMIT_FSIZE)
    max_open_files: int = 64
    max_output_bytes: int = 1_000_000  # stdout + stderr; the child is killed beyond this
    max_result_bytes: int = 64 << 20  # the result stream (outputs as .npy); killed beyond this


@dataclass
class Arg:
    """One argument of the entry point: a tensor (raw little-endian bytes, dtype, shape) or a JSON scalar."""

    value: Any = None  # JSON-serialisable (float, int, bool, str, None) when data is None
    data: bytes | None = None
    dtype: str | None = None  # float32, float64, int64, int32, bool (the same name in numpy and torch)
    shape: tuple[int, ...] = ()
    requires_grad: bool = False

    @classmethod
    def tensor(cls, arr: np.ndarray, requires_grad: bool = False) -> Arg:
        arr = np.asarray(arr, order="C")  # not ascontiguousarray: it makes a 0-d array 1-d
        return cls(
            data=arr.astype(arr.dtype.newbyteorder("<")).tobytes(),
            dtype=str(arr.dtype),
            shape=tuple(arr.shape),
            requires_grad=requires_grad,
        )


@dataclass
class JobCase:
    name: str
    args: list[Arg]
    cotangents: list[Arg] = field(default_factory=list)  # for the gradient check, one per output
    time_s: float | None = None  # this case's limit; Limits.case_s when None


@dataclass
class Job:
    """What to run: the student's source, the function to call and the cases' arguments."""

    code: str
    entry_point: str
    cases: list[JobCase]
    forbidden: list[str] = field(default_factory=list)  # names guarded at run time
    forbid_autograd: bool = False  # the dispatch-level autograd tripwire
    grad_inputs: list[int] = field(default_factory=list)  # inputs whose gradients come back with each case
    limits: Limits = field(default_factory=Limits)
    filename: str = "submission.py"

    def case_limits(self) -> list[float]:
        return [c.time_s or self.limits.case_s for c in self.cases]


@dataclass
class RunResult:
    """What happened to one job.

    Trusted (from the server): ``status`` (ok | timeout | cpu_limit | output_limit | result_limit |
    signal | exit | setup_error | sandbox_died | sandbox_error), exit/signal, clocks, ``timeout``,
    ``forbidden``. Untrusted but cleaned: ``events`` (the child's own report), ``blobs``, the
    output tails.
    """

    status: str
    exit_code: int | None = None
    signal: int | None = None
    signal_name: str | None = None
    wall_s: float = 0.0
    cpu_s: float | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    result_bytes: int = 0
    events: list[dict] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)
    stream_complete: bool = True
    stream_problem: str = ""
    leftover_processes: int = 0
    detail: str = ""
    sandbox: str = ""
    load_s: float | None = None
    cases_s: list[float] = field(default_factory=list)
    timeout: dict | None = None
    forbidden: list[str] = field(default_factory=list)
    guarded: list[str] = field(default_factory=list)


def _pick_uid() -> int:
    """A uid no account and no file on this machine uses (children run as it)."""
    import random

    used = set()
    try:
        for line in open("/etc/passwd", encoding="utf-8", errors="replace"):
            parts = line.split(":")
            if len(parts) > 2 and parts[2].isdigit():
                used.add(int(parts[2]))
    except OSError:
        pass
    rng = random.SystemRandom()
    while True:
        uid = rng.randrange(1_500_000_000, 1_900_000_000)
        if uid not in used:
            return uid


_SERVER_ENV = {
    "PATH": "/usr/bin:/bin",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "LANG": "C.UTF-8",
    "HOME": SCRATCH,
}
_LIVE: weakref.WeakSet[SandboxServer] = weakref.WeakSet()
_SERVER_SOURCE = Path(inside.__file__).resolve()


@atexit.register
def _close_all() -> None:  # pragma: no cover - interpreter shutdown
    for server in list(_LIVE):
        server.close()


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)  # inheritable by default: passed to bwrap
    inside.write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class SandboxServer:
    """A warm sandbox server. Not thread-safe: use one per worker thread.

    ``run(job)`` starts the server on first use (about 1.5 s, importing torch in the zygote),
    then runs each job in a fresh locked-down child. If the server dies (or a job breaks the
    protocol) it is restarted on the next run.
    """

    def __init__(
        self, *, allow_unsandboxed: bool = False, scratch_mb: int = 256, start_timeout_s: float = 120.0
    ) -> None:
        self.caps: Capabilities = require_sandbox(allow_unsandboxed)
        self.unsandboxed = self.caps.problem is not None
        self.scratch_mb = scratch_mb
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.quota: CpuQuota | None = None
        self._tmpdir: str | None = None
        self._stderr: Any = None
        self.starts = 0
        _LIVE.add(self)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def description(self) -> str:
        if self.unsandboxed:
            return (
                "UNSANDBOXED (no bubblewrap; rlimits only) - student code could read files, use the network and "
                "signal the grader"
            )
        parts = [f"bubblewrap {self.caps.bwrap_version}", "pid/net/ipc/uts/mount namespaces", "read-only minimal root"]
        parts.append("own uid per run" if self.info.get("uid") else "shared uid (user namespace)")
        parts.append("rlimits")
        if self.info.get("seccomp"):
            parts.append("seccomp")
        parts.append("cgroup cpu quota" if self.quota else "cpu-seconds cap across processes")
        return ", ".join(parts)

    def _command(self, uid: int | None) -> tuple[list[str], dict, tuple[int, ...], str]:
        """(argv, config for the server, fds to pass, cwd)."""
        layout = python_layout()
        if self.unsandboxed:
            self._tmpdir = tempfile.mkdtemp(prefix="grader-unsandboxed-")
            os.chmod(self._tmpdir, 0o700)
            config: dict[str, Any] = {"site": layout.site, "uid": None, "pidns": False, "scratch": self._tmpdir}
            return [layout.exe, "-I", "-S", "-B", str(_SERVER_SOURCE), "--serve"], config, (), self._tmpdir
        config = {"site": layout.sandbox_site(), "uid": uid, "pidns": True, "scratch": SCRATCH}
        server_fd = _memfd("grader-server", _SERVER_SOURCE.read_bytes())
        args = bwrap_args(self.caps, layout, self.scratch_mb, server_fd)
        for k, v in _SERVER_ENV.items():
            args += ["--setenv", k, v]
        args_fd = _memfd("grader-bwrap-args", "\0".join(args).encode() + b"\0")
        assert self.caps.bwrap
        argv = [self.caps.bwrap, "--args", str(args_fd), layout.exe, "-I", "-S", "-B", SERVER_PATH, "--serve"]
        if self.caps.cpu_quota:
            self.quota = CpuQuota.create()
            if self.quota is not None:
                argv = self.quota.wrap(argv)
        return argv, config, (server_fd, args_fd), "/"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self._cleanup_proc()
        uid = _pick_uid() if (self.caps.root and not self.unsandboxed) else None
        argv, config, fds, cwd = self._command(uid)
        self._stderr = tempfile.TemporaryFile()
        env = dict(_SERVER_ENV, HOME=config["scratch"])
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                pass_fds=fds,
            )
        finally:
            for fd in fds:
                os.close(fd)
        self.starts += 1
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(inside.json_frame(config))  # config on stdin: no command line shows it
            self.proc.stdin.flush()
            kind, payload = self._read_frame(time.monotonic() + self.start_timeout_s)
            msg = json.loads(payload)
            if kind != inside.FRAME_JSON or msg.get("op") != "ready":
                raise SandboxError(f"unexpected first message from the sandbox server: {msg!r}")
        except Exception as exc:  # noqa: BLE001 - any failure to start: clean up, raise SandboxError
            log = self.server_log()
            self._cleanup_proc()
            raise SandboxError(f"the sandbox server did not start: {exc}\n{log}") from None
        if uid is not None and not msg.get("uid"):
            log = self.server_log()
            self._cleanup_proc()
            raise SandboxError(
                f"the sandbox server could not drop children to a dedicated uid: {msg.get('uid_error')}\n{log}"
            )
        self.info = msg

    def server_log(self, limit: int = 4000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            return self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _cleanup_proc(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is None:
                    continue
                try:
                    stream.close()
                except OSError:  # a broken pipe while flushing: the server is gone already
                    pass
            if proc.poll() is None:
                for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
                    try:
                        kill()
                    except (ProcessLookupError, PermissionError):
                        pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        if self.quota is not None:
            self.quota.close()
            self.quota = None
        if self._stderr is not None:
            try:
                self._stderr.close()
            except OSError:
                pass
            self._stderr = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def close(self) -> None:
        self._cleanup_proc()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self._cleanup_proc()
        except Exception:  # noqa: BLE001 - a finalizer may run at interpreter exit, when anything can fail
            pass

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    # -- protocol --------------------------------------------------------------------

    def _read_frame(self, deadline: float) -> tuple[int, bytes]:
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()

        def read_exact(n: int) -> bytes:
            buf = bytearray()
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the sandbox server did not answer in time")
                r, _, _ = select.select([fd], [], [], left)
                if not r:
                    continue
                chunk = os.read(fd, min(n - len(buf), 1 << 20))
                if not chunk:
                    raise EOFError("the sandbox server exited")
                buf += chunk
            return bytes(buf)

        size, kind = inside.HEADER.unpack(read_exact(inside.HEADER.size))
        if size > inside.MAX_FRAME:
            raise SandboxError("protocol error: oversized frame")
        return kind, read_exact(size)

    def run(self, job: Job) -> RunResult:
        """Run one job in a fresh locked-down child. Never raises for anything the student's code does."""
        self.start()
        assert self.proc and self.proc.stdin
        data = _request(job)
        t0 = time.monotonic()
        budget = (job.limits.load_s or job.limits.case_s) + sum(job.case_limits())
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            deadline = t0 + budget + 60.0
            kind, payload = self._read_frame(deadline)
            meta = json.loads(payload)
            kind2, stream = self._read_frame(deadline)
            if kind != inside.FRAME_JSON or kind2 != inside.FRAME_BYTES or meta.get("op") != "result":
                raise SandboxError("protocol error")
        except (EOFError, BrokenPipeError, OSError, TimeoutError, SandboxError, ValueError) as exc:
            alive = self.proc is not None and self.proc.poll() is None
            log = self.server_log()
            self._cleanup_proc()
            return RunResult(
                status="sandbox_error" if alive else "sandbox_died",
                wall_s=time.monotonic() - t0,
                detail=clean_text(f"{type(exc).__name__}: {exc}; server log tail: {log[-800:]}", 1200),
                sandbox=self.description,
            )
        return _result(meta, stream, job, self.description)


def _request(job: Job) -> bytes:
    """The job as the child reads it: one JSON frame, then the tensors' .npy bytes."""
    lim = job.limits
    blobs: list[bytes] = []

    def arg(a: Arg) -> dict:
        if a.data is None:
            return {"kind": "value", "value": a.value}
        blobs.append(a.data)
        return {
            "kind": "tensor",
            "blob": len(blobs) - 1,
            "dtype": a.dtype,
            "shape": list(a.shape),
            "requires_grad": a.requires_grad,
        }

    cases = [
        {"name": c.name, "args": [arg(a) for a in c.args], "cotangents": [arg(a) for a in c.cotangents]}
        for c in job.cases
    ]
    req = {
        "op": "run",
        "code": job.code,
        "filename": job.filename,
        "entry": job.entry_point,
        "cases": cases,
        "forbidden": list(job.forbidden),
        "forbid_autograd": job.forbid_autograd,
        "grad_inputs": list(job.grad_inputs),
        "limits": {
            "load_s": lim.load_s if lim.load_s is not None else lim.case_s,
            "case_s": job.case_limits(),
            "cpu_s": lim.cpu_s,
            "memory_mb": lim.memory_mb,
            "max_processes": lim.max_processes,
            "max_file_mb": lim.max_file_mb,
            "max_open_files": lim.max_open_files,
            "max_output_bytes": lim.max_output_bytes,
            "max_result_bytes": lim.max_result_bytes,
        },
        "n_blobs": len(blobs),
    }
    return inside.json_frame(req) + b"".join(inside.frame(inside.FRAME_BYTES, b) for b in blobs)


def _result(meta: dict, stream: bytes, job: Job, sandbox: str) -> RunResult:
    """The server's report (trusted) and the child's stream (untrusted, parsed strictly), cleaned."""
    control = meta.get("control") if isinstance(meta.get("control"), dict) else None
    guarded = [clean_text(g, 200) for g in (control or {}).get("guarded") or [] if isinstance(g, str)]
    events, blobs, problem = parse_stream(stream, [c.name for c in job.cases])
    status = str(meta.get("status", "ok"))
    detail = clean_text(meta.get("detail", ""), 1200)
    if control is None or not control.get("ok"):
        if status in ("ok", "exit", "signal", "setup_timeout"):
            why = (control or {}).get("error") or "the child ended before it reported being ready"
            status, detail = "setup_error", clean_text(why, 1200)
    forbidden = read_tripwire(str(meta.get("tripwire", "")), guarded)
    if meta.get("exit_code") == inside.EXIT_FORBIDDEN and not forbidden:
        forbidden = ["a forbidden call (the runtime guard could not record which)"]
    return RunResult(
        status=status,
        exit_code=meta.get("exit_code"),
        signal=meta.get("signal"),
        signal_name=clean_text(meta["signal_name"], 40) if meta.get("signal_name") else None,
        wall_s=float(meta.get("wall_s", 0.0)),
        cpu_s=meta.get("cpu_s"),
        stdout_tail=clean_text(meta.get("stdout_tail", ""), 2000),
        stderr_tail=clean_text(meta.get("stderr_tail", ""), 2000),
        stdout_bytes=int(meta.get("stdout_bytes", 0)),
        stderr_bytes=int(meta.get("stderr_bytes", 0)),
        result_bytes=int(meta.get("result_bytes", 0)),
        events=events,
        blobs=blobs,
        stream_complete=not problem and not meta.get("result_truncated", False),
        stream_problem=problem,
        leftover_processes=int(meta.get("leftover", 0)),
        detail=detail,
        sandbox=sandbox,
        load_s=meta.get("load_s"),
        cases_s=[float(x) for x in meta.get("cases_s") or []],
        timeout=meta.get("timeout") if isinstance(meta.get("timeout"), dict) else None,
        forbidden=forbidden,
        guarded=guarded,
    )


_EVENTS_AFTER = {
    None: {"loaded", "load_error", "no_entry"},
    "loaded": {"case", "done"},
    "case": {"case", "done"},
}


def parse_stream(stream: bytes, case_names: list[str]) -> tuple[list[dict], list[bytes], str]:
    """The child's events in the order the harness writes them, cleaned; (events, blobs, problem).

    The harness writes one of loaded / load_error / no_entry, then one ``case`` event per case
    in order (each followed by its .npy payloads), then ``done``. Anything else (garbage, a
    frame out of order, a made-up event) ends the parse: what came before it stands, the rest
    is the student's own doing and is reported as such (``problem``).
    """
    frames, complete = inside.parse_frames(stream)  # at most MAX_FRAMES: a flood of tiny frames stops there
    events: list[dict] = []
    blobs: list[bytes] = []
    last: str | None = None
    for kind, payload in frames:
        if kind == inside.FRAME_BYTES:
            if last != "case":
                return events, blobs, "data the grader did not ask for on the result channel"
            blobs.append(payload)
            continue
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            return events, blobs, "unreadable data on the result channel"
        name = event.get("event") if isinstance(event, dict) else None
        if name not in _EVENTS_AFTER.get(last, set()):
            return events, blobs, "data out of order on the result channel"
        if name == "case":
            k = sum(1 for e in events if e.get("event") == "case")
            if k >= len(case_names) or event.get("name") != case_names[k]:
                return events, blobs, "a result for a case the grader did not run"
        event = clean_json(event)
        event["_blob_base"] = len(blobs)
        events.append(event)
        last = name
    if not complete:
        return events, blobs, "a partial or malformed frame on the result channel"
    return events, blobs, ""


_DETAIL = re.compile(r"^[A-Za-z0-9_.]{1,160}$")


def read_tripwire(text: str, guarded: list[str]) -> list[str]:
    """What the runtime guards saw, as labels: only what the trusted set-up makes possible is named.

    The tripwire pipe is in the student's process, so a note is only believed in its own
    vocabulary: a name must be one the guard installed, an op must be an aten op.
    """
    out: list[str] = []
    for line in text.splitlines()[:20]:
        kind, _, detail = line.strip().partition(" ")
        if kind not in inside.TRIP_KINDS or not _DETAIL.match(detail):
            label = "a forbidden call"
        elif kind == "name":
            label = detail if detail in guarded else "a forbidden call"
        elif kind == "import":
            known = f"import {detail.split('.')[0]}" in guarded or f"import {detail}" in guarded
            label = f"{detail} (imported)" if known else "a forbidden import"
        elif kind in ("engine", "kernel"):
            label = f"autograd's backward pass ({detail})" if kind == "engine" else f"the backward kernel {detail}"
            label = label if detail.startswith("aten.") else "autograd"
        elif kind == "forward_ad":
            label = "forward-mode autograd (dual tensors)"
        elif kind == "graph":
            label = (
                f"the autograd graph ({detail})"
                if detail in ("Tensor.grad_fn", "Tensor._grad_fn")
                else "the autograd graph"
            )
        else:
            label = "a way around the grader's autograd check (it was switched off)"
        if label not in out:
            out.append(label)
    return out
