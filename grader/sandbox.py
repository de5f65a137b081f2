"""Run untrusted Python (students' PyTorch code) in isolation. No grading logic lives here.

Design (see docs/sandbox.md for the threat model):

* One **server** process per worker imports torch once (``OMP_NUM_THREADS=1`` and
  ``torch.set_num_threads(1)`` before any op, so forked children do not hang) and
  then forks one **child** per submission (~30 ms instead of ~1.3 s for a fresh
  Python). The server itself runs inside bubblewrap: new pid, net, ipc, uts,
  cgroup and mount namespaces; a tmpfs root that shows only ``/usr``, the Python
  install and the site-packages holding torch/numpy (all read-only), this file,
  a fresh ``/proc`` and ``/dev``, and a size-limited private ``/scratch``. No
  rubric, reference, submission or home directory is visible, and the
  environment is cleared.
* Each child: new session (own process group); rlimits on CPU time, address
  space, process count, file size, open files and core dumps; drops to a
  dedicated uid that owns nothing on the host (when the grader runs as root, the
  server keeps only CAP_SETUID/SETGID/KILL to do this); no_new_privs; a seccomp
  filter that refuses ptrace, mount, namespaces, bpf, keyctl, io_uring and
  non-Unix sockets (x86-64); then it executes the student's code and calls the
  entry point once per case.
* The server enforces the wall-time limit, caps stdout/stderr and the result
  stream (killing the child when a cap is exceeded), and after every run kills
  every other process left in the sandbox and deletes the child's scratch dir.
* Inputs travel as ``.npy`` bytes plus JSON and come back the same way: no
  pickle anywhere. The server only relays the child's result stream; the grader
  parses it (``np.load(..., allow_pickle=False)``) and compares with the
  reference after the child is gone, so monkeypatching inside the child cannot
  change a verdict.

This module is also the server program: bwrap runs it as a script with
``python -I -S``, so module-level imports are standard library only.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------
# Framing shared by grader, server and child: 4-byte big-endian length, 1 type byte
# (J = UTF-8 JSON object, B = raw bytes), payload.
# --------------------------------------------------------------------------------------

_HDR = struct.Struct(">IB")
FRAME_JSON = ord("J")
FRAME_BYTES = ord("B")
_MAX_FRAME = 1 << 30
EXIT_RESULT_CHANNEL = 72  # the child could not write its results (the code closed fd 3)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _frame(kind: int, payload: bytes) -> bytes:
    return _HDR.pack(len(payload), kind) + payload


def _json_frame(obj: Any) -> bytes:
    return _frame(FRAME_JSON, json.dumps(obj, separators=(",", ":")).encode())


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> tuple[int, bytes]:
    size, kind = _HDR.unpack(_read_exact(fd, _HDR.size))
    if size > _MAX_FRAME:
        raise ValueError(f"frame too large ({size} bytes)")
    return kind, _read_exact(fd, size)


def parse_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """Split a byte stream into frames; returns (frames, complete). Never raises."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if pos + _HDR.size > len(data):
            return frames, False
        size, kind = _HDR.unpack_from(data, pos)
        pos += _HDR.size
        if kind not in (FRAME_JSON, FRAME_BYTES) or pos + size > len(data):
            return frames, False
        frames.append((kind, data[pos : pos + size]))
        pos += size
    return frames, True


# --------------------------------------------------------------------------------------
# Public data types (grader side)
# --------------------------------------------------------------------------------------


class SandboxUnavailable(RuntimeError):
    """The protections needed to run untrusted code are missing; the message says what and how to fix it."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the student's code): server did not start, protocol broke."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission (module code plus every case)."""

    wall_s: float = 10.0
    cpu_s: float | None = None  # defaults to wall_s
    memory_mb: int = 1024  # address space the student may add on top of the warm server's
    max_processes: int = 16  # processes + threads of the child's uid (RLIMIT_NPROC)
    max_file_mb: int = 16  # largest file the child may write (RLIMIT_FSIZE)
    max_open_files: int = 64
    max_output_bytes: int = 1_000_000  # stdout + stderr; the child is killed beyond this
    max_result_bytes: int = 64 << 20  # the result stream (outputs as .npy); killed beyond this


@dataclass
class Arg:
    """One argument of the entry point: a tensor (``.npy`` bytes + torch dtype) or a JSON scalar."""

    value: Any = None  # JSON-serialisable (float, int, bool, str, None) when npy is None
    npy: bytes | None = None
    torch_dtype: str | None = None
    requires_grad: bool = False


@dataclass
class JobCase:
    name: str
    args: list[Arg]


@dataclass
class Job:
    """What to run: the student's source, the function to call and the cases' arguments."""

    code: str
    entry_point: str
    cases: list[JobCase]
    forbidden: list[str] = field(default_factory=list)  # runtime guard (see _install_guard)
    limits: Limits = field(default_factory=Limits)
    filename: str = "submission.py"


@dataclass
class RunResult:
    """What happened to one job. ``status`` is about the process; ``events`` are the child's own report."""

    status: str  # ok | timeout | output_limit | result_limit | signal | exit | sandbox_died | sandbox_error
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
    leftover_processes: int = 0
    detail: str = ""
    sandbox: str = ""


# --------------------------------------------------------------------------------------
# Detection of the available protections
# --------------------------------------------------------------------------------------


@dataclass
class Protection:
    name: str
    available: bool
    detail: str


@dataclass
class Capabilities:
    """What isolation this machine offers; ``missing()`` lists what blocks a sandboxed run."""

    bwrap: str | None
    bwrap_version: str | None
    root: bool
    protections: list[Protection]
    bwrap_args_ok: bool
    tmpfs_size: bool
    problem: str | None = None

    def get(self, name: str) -> Protection | None:
        return next((p for p in self.protections if p.name == name), None)

    @property
    def sandboxed(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        return "; ".join(f"{p.name}: {'yes' if p.available else 'NO'} ({p.detail})" for p in self.protections)


_INSTALL_HINT = (
    "install bubblewrap: `apt-get install -y bubblewrap` (Debian/Ubuntu), `dnf install bubblewrap` "
    "(Fedora/RHEL), `pacman -S bubblewrap` (Arch)"
)

_detect_lock = threading.Lock()
_detected: Capabilities | None = None


def _run_quiet(cmd: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin"})


def _landlock_abi() -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
        return max(int(libc.syscall(444, None, 0, 1)), 0)
    except Exception:
        return 0


def _find_bwrap() -> str | None:
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


def detect(refresh: bool = False) -> Capabilities:
    """Probe the machine once (a few ms): bubblewrap, namespaces, uid drop, rlimits, seccomp, Landlock."""
    global _detected
    with _detect_lock:
        if _detected is not None and not refresh:
            return _detected
        _detected = _detect()
        return _detected


def _detect() -> Capabilities:
    root = os.geteuid() == 0
    prots: list[Protection] = []
    bwrap = _find_bwrap()
    version = None
    problem = None
    args_ok = False
    size_ok = False
    if bwrap is None:
        problem = f"bubblewrap (bwrap) is not installed; {_INSTALL_HINT}"
        prots.append(Protection("bubblewrap", False, "bwrap not found on PATH"))
    else:
        try:
            version = _run_quiet([bwrap, "--version"]).stdout.strip().split()[-1]
        except Exception:
            version = "?"
        ns = _namespace_args(root)
        base = [bwrap, *ns, "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        probe = _run_quiet([*base, "--perms", "1777", "--size", str(1 << 20), "--tmpfs", "/tmp", "true"])
        if probe.returncode == 0:
            args_ok = size_ok = True
        else:
            probe2 = _run_quiet([*base, "--tmpfs", "/tmp", "true"])
            args_ok = probe2.returncode == 0
            if not args_ok:
                err = (probe2.stderr or probe.stderr).strip().splitlines()
                reason = err[-1] if err else f"exit code {probe2.returncode}"
                hint = (
                    "unprivileged user namespaces seem disabled: enable them (`sysctl -w kernel.unprivileged_userns_clone=1`; "
                    "on Ubuntu 24.04+ `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile for bwrap) "
                    "or run the grader as root"
                    if not root
                    else "check that the kernel supports pid/net/mount namespaces (containers may need --privileged or a seccomp profile that allows unshare)"
                )
                problem = f"bubblewrap {version} is installed but cannot create a sandbox here ({reason}); {hint}"
        prots.append(
            Protection(
                "bubblewrap",
                args_ok,
                f"{bwrap} {version}" + ("" if args_ok else " (cannot create namespaces)"),
            )
        )
        prots.append(
            Protection(
                "namespaces",
                args_ok,
                ("pid, net, ipc, uts, mount, cgroup" + ("" if root else ", user")) if args_ok else "unavailable",
            )
        )
        prots.append(Protection("network", args_ok, "own network namespace (no interface but loopback)" if args_ok else "host network"))
    prots.append(
        Protection(
            "dedicated uid",
            root and args_ok,
            "children run as a fresh uid that owns nothing"
            if root and args_ok
            else "grader not running as root: children share the server's uid inside its user namespace",
        )
    )
    try:
        import resource  # noqa: F401

        prots.append(Protection("rlimits", True, "cpu, address space, nproc, fsize, nofile, core"))
    except ImportError:  # pragma: no cover - non-Unix
        prots.append(Protection("rlimits", False, "resource module unavailable"))
        problem = problem or "resource limits (setrlimit) are unavailable on this platform"
    import platform

    arch = platform.machine()
    prots.append(
        Protection(
            "seccomp",
            arch == "x86_64",
            "filter on ptrace, mount, namespaces, bpf, keyctl, io_uring, inet sockets"
            if arch == "x86_64"
            else f"no filter for {arch}",
        )
    )
    abi = _landlock_abi()
    prots.append(Protection("landlock", False, f"kernel ABI {abi}, not used (mount namespace covers the file system)" if abi else "not available, not used"))
    return Capabilities(bwrap, version, root, prots, args_ok, size_ok, problem)


def _namespace_args(root: bool) -> list[str]:
    if root:
        # Privileged bwrap without a user namespace, so that children can drop to a
        # uid of their own (RLIMIT_NPROC is ignored for uid 0, even mapped).
        return ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-all"]


def require_sandbox(allow_unsandboxed: bool = False) -> Capabilities:
    """Return the capabilities, or raise SandboxUnavailable unless the caller explicitly allows running without."""
    caps = detect()
    if caps.problem and not allow_unsandboxed:
        raise SandboxUnavailable(
            f"cannot run student code safely: {caps.problem}. "
            "To run it anyway WITHOUT isolation (only for code you trust), pass allow_unsandboxed=True "
            "(CLI: --allow-unsandboxed)."
        )
    return caps


# --------------------------------------------------------------------------------------
# Grader side: one server process
# --------------------------------------------------------------------------------------

_SCRATCH = "/scratch"
_SERVER_PATH = "/sandbox/server.py"
_LIVE: "weakref.WeakSet[SandboxServer]" = weakref.WeakSet()


def _kill_all_live() -> None:
    for server in list(_LIVE):
        server.close()


atexit.register(_kill_all_live)


def _python_layout() -> tuple[str, list[str], list[str]]:
    """(python executable, directories to expose read-only, site dirs to put on sys.path)."""
    import importlib.util

    exe = os.path.realpath(sys.executable)
    ro = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    site: list[str] = []
    for mod in ("torch", "numpy"):
        spec = importlib.util.find_spec(mod)
        if spec is None or not spec.origin:
            raise SandboxUnavailable(f"{mod} is not importable by {sys.executable}; install it in the grader's environment")
        d = os.path.dirname(os.path.dirname(os.path.realpath(spec.origin)))
        if d not in site:
            site.append(d)
    ro.update(site)
    ro.add(os.path.dirname(exe))
    # drop directories nested in others
    dirs = sorted(ro)
    keep = [d for d in dirs if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in dirs)]
    return exe, keep, site


def _bwrap_args(caps: Capabilities, exe: str, ro_dirs: list[str], scratch_mb: int) -> list[str]:
    assert caps.bwrap
    args = [caps.bwrap, *_namespace_args(caps.root), "--die-with-parent", "--new-session", "--tmpfs", "/"]
    for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + top
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    made: set[str] = set()
    for d in ro_dirs:
        if d.startswith("/usr/") or d == "/usr":
            continue
        parts = Path(d).parts[1:-1]
        cur = ""
        for p in parts:
            cur += "/" + p
            if cur not in made:
                args += ["--perms", "0755", "--dir", cur]
                made.add(cur)
        args += ["--ro-bind", d, d]
    args += ["--perms", "0755", "--dir", "/sandbox", "--ro-bind", str(Path(__file__).resolve()), _SERVER_PATH]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"]
    if caps.tmpfs_size:
        args += ["--size", str(scratch_mb << 20)]
    args += ["--tmpfs", _SCRATCH, "--chdir", _SCRATCH, "--clearenv"]
    if caps.root:
        # the server (trusted code) keeps what it needs to drop children to their uid, kill
        # whatever they leave behind and delete their scratch files; children keep nothing
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER"):
            args += ["--cap-add", cap]
        args[args.index("--cap-add") : args.index("--cap-add")] = ["--cap-drop", "ALL"]
    return args


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


_SERVER_ENV = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8", "HOME": _SCRATCH}


class SandboxServer:
    """A warm sandbox server. Not thread-safe: use one per worker thread.

    ``run(job)`` starts the server on first use (about 1.5 s, importing torch),
    then forks one isolated child per job. If the server dies (or a job breaks the
    protocol) it is restarted on the next run.
    """

    def __init__(
        self,
        *,
        allow_unsandboxed: bool = False,
        scratch_mb: int = 256,
        start_timeout_s: float = 120.0,
    ):
        self.caps = require_sandbox(allow_unsandboxed)
        self.unsandboxed = self.caps.problem is not None
        self.scratch_mb = scratch_mb
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._tmpdir: str | None = None
        self._stderr = None
        self.starts = 0
        _LIVE.add(self)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def description(self) -> str:
        if self.unsandboxed:
            return "UNSANDBOXED (no bubblewrap; rlimits only) - student code could read files, use the network and signal the grader"
        parts = [f"bubblewrap {self.caps.bwrap_version}", "pid/net/ipc/uts/mount namespaces", "read-only minimal root"]
        if self.info.get("uid"):
            parts.append("own uid per run")
        else:
            parts.append("shared uid (user namespace)")
        parts.append("rlimits")
        if self.info.get("seccomp"):
            parts.append("seccomp")
        return ", ".join(parts)

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self._cleanup_proc()
        exe, ro_dirs, site = _python_layout()
        uid = _pick_uid() if (self.caps.root and not self.unsandboxed) else None
        config = {"site": site, "uid": uid, "pidns": not self.unsandboxed, "scratch": _SCRATCH}
        self._stderr = tempfile.TemporaryFile()
        if self.unsandboxed:
            self._tmpdir = tempfile.mkdtemp(prefix="grader-unsandboxed-")
            os.chmod(self._tmpdir, 0o700)
            config["scratch"] = self._tmpdir
            cmd = [exe, "-I", "-S", "-B", str(Path(__file__).resolve()), "--serve", json.dumps(config)]
            cwd = self._tmpdir
        else:
            cmd = [*_bwrap_args(self.caps, exe, ro_dirs, self.scratch_mb)]
            for k, v in _SERVER_ENV.items():
                cmd += ["--setenv", k, v]
            cmd += [exe, "-I", "-S", "-B", _SERVER_PATH, "--serve", json.dumps(config)]
            cwd = "/"
        env = dict(_SERVER_ENV)
        if self.unsandboxed:
            env["HOME"] = config["scratch"]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
        self.starts += 1
        try:
            kind, payload = self._read_frame(time.monotonic() + self.start_timeout_s)
            msg = json.loads(payload)
            if kind != FRAME_JSON or msg.get("op") != "ready":
                raise SandboxError(f"unexpected first message from the sandbox server: {msg!r}")
        except Exception as exc:
            log = self.server_log()
            self._cleanup_proc()
            raise SandboxError(f"the sandbox server did not start: {exc}\n{log}") from None
        if uid is not None and not msg.get("uid"):
            log = self.server_log()
            self._cleanup_proc()
            raise SandboxError(f"the sandbox server could not drop children to a dedicated uid: {msg.get('uid_error')}\n{log}")
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
                try:
                    stream.close()  # type: ignore[union-attr]
                except Exception:
                    pass
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        if self._stderr is not None:
            try:
                self._stderr.close()
            except Exception:
                pass
            self._stderr = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def close(self) -> None:
        self._cleanup_proc()

    def __enter__(self) -> "SandboxServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self._cleanup_proc()
        except Exception:
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

        size, kind = _HDR.unpack(read_exact(_HDR.size))
        if size > _MAX_FRAME:
            raise SandboxError("protocol error: oversized frame")
        return kind, read_exact(size)

    def run(self, job: Job) -> RunResult:
        """Run one job in a fresh locked-down child. Never raises for anything the student's code does."""
        self.start()
        assert self.proc and self.proc.stdin
        lim = job.limits
        blobs: list[bytes] = []
        cases = []
        for case in job.cases:
            args = []
            for a in case.args:
                if a.npy is not None:
                    args.append({"kind": "tensor", "blob": len(blobs), "dtype": a.torch_dtype, "requires_grad": a.requires_grad})
                    blobs.append(a.npy)
                else:
                    args.append({"kind": "value", "value": a.value})
            cases.append({"name": case.name, "args": args})
        req = {
            "op": "run",
            "code": job.code,
            "filename": job.filename,
            "entry": job.entry_point,
            "cases": cases,
            "forbidden": list(job.forbidden),
            "limits": {
                "wall_s": lim.wall_s,
                "cpu_s": lim.cpu_s if lim.cpu_s is not None else lim.wall_s,
                "memory_mb": lim.memory_mb,
                "max_processes": lim.max_processes,
                "max_file_mb": lim.max_file_mb,
                "max_open_files": lim.max_open_files,
                "max_output_bytes": lim.max_output_bytes,
                "max_result_bytes": lim.max_result_bytes,
            },
            "n_blobs": len(blobs),
        }
        data = _json_frame(req) + b"".join(_frame(FRAME_BYTES, b) for b in blobs)
        t0 = time.monotonic()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            deadline = t0 + lim.wall_s + 30.0
            kind, payload = self._read_frame(deadline)
            meta = json.loads(payload)
            kind2, stream = self._read_frame(deadline)
            if kind != FRAME_JSON or kind2 != FRAME_BYTES or meta.get("op") != "result":
                raise SandboxError("protocol error")
        except (EOFError, BrokenPipeError, OSError, TimeoutError, SandboxError, ValueError) as exc:
            alive = self.proc is not None and self.proc.poll() is None
            log = self.server_log()
            self._cleanup_proc()
            status = "sandbox_error" if alive else "sandbox_died"
            return RunResult(
                status=status,
                wall_s=time.monotonic() - t0,
                detail=f"{type(exc).__name__}: {exc}; server log tail: {log[-800:]}",
                sandbox=self.description,
            )
        frames, complete = parse_frames(stream)
        events: list[dict] = []
        out_blobs: list[bytes] = []
        for kind, payload in frames:
            if kind == FRAME_JSON:
                try:
                    obj = json.loads(payload)
                except ValueError:
                    complete = False
                    continue
                if isinstance(obj, dict):
                    obj["_blob_base"] = len(out_blobs)
                    events.append(obj)
            else:
                out_blobs.append(payload)
        res = RunResult(
            status=meta["status"],
            exit_code=meta.get("exit_code"),
            signal=meta.get("signal"),
            signal_name=meta.get("signal_name"),
            wall_s=meta.get("wall_s", 0.0),
            cpu_s=meta.get("cpu_s"),
            stdout_tail=meta.get("stdout_tail", ""),
            stderr_tail=meta.get("stderr_tail", ""),
            stdout_bytes=meta.get("stdout_bytes", 0),
            stderr_bytes=meta.get("stderr_bytes", 0),
            result_bytes=meta.get("result_bytes", 0),
            events=events,
            blobs=out_blobs,
            stream_complete=complete and not meta.get("result_truncated", False),
            leftover_processes=meta.get("leftover", 0),
            detail=meta.get("detail", ""),
            sandbox=self.description,
        )
        return res


# ======================================================================================
# Everything below runs INSIDE the sandbox (server and children).
# ======================================================================================

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_SECCOMP_MODE_FILTER = 2


def _libc():
    lib = ctypes.CDLL(None, use_errno=True)
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lib


def _prctl(option: int, arg: int = 0, ptr: int = 0) -> None:
    if _libc().prctl(option, arg, ptr, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}) failed: {os.strerror(err)}")


# -- seccomp (x86-64) ---------------------------------------------------------------------

_AUDIT_ARCH_X86_64 = 0xC000003E
_DENY_EPERM = {
    "ptrace": 101, "syslog": 103, "personality": 135, "vhangup": 153, "modify_ldt": 154, "pivot_root": 155,
    "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172,
    "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "move_pages": 279,
    "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_getfd": 438, "mount_setattr": 442, "chroot": 161,
}
_NR_CLONE, _NR_CLONE3, _NR_SOCKET = 56, 435, 41
_CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080


def _seccomp_program() -> bytes:
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill, errno = 0x7FFF0000, 0x80000000, 0x00050000
    ins: list[tuple[int, int, int, int]] = []

    def s(code: int, k: int) -> None:
        ins.append((code, 0, 0, k))

    def j(code: int, k: int, jt: int, jf: int) -> None:
        ins.append((code, jt, jf, k))

    s(ld, 4)
    j(jeq, _AUDIT_ARCH_X86_64, 1, 0)
    s(ret, kill)
    s(ld, 0)
    j(jge, 0x40000000, 0, 1)  # x32 ABI
    s(ret, errno | 1)
    for nr in sorted(set(_DENY_EPERM.values())):
        j(jeq, nr, 0, 1)
        s(ret, errno | 1)
    j(jeq, _NR_CLONE3, 0, 1)
    s(ret, errno | 38)  # ENOSYS: glibc falls back to clone(), whose flags we can inspect
    j(jeq, _NR_CLONE, 2, 0)
    j(jeq, _NR_SOCKET, 5, 0)
    s(ret, allow)
    # clone: refuse new namespaces
    s(ld, 16)
    j(jset, _CLONE_NS_FLAGS, 0, 1)
    s(ret, errno | 1)
    s(ret, allow)
    # socket: AF_UNIX only
    s(ld, 16)
    j(jeq, 1, 0, 1)
    s(ret, allow)
    s(ret, errno | 13)  # EACCES
    return b"".join(struct.pack("<HBBI", c, jt, jf, k) for c, jt, jf, k in ins)


def _install_seccomp() -> None:
    import platform

    if platform.machine() != "x86_64":
        raise OSError("seccomp filter only built for x86_64")
    prog = _seccomp_program()
    n = len(prog) // 8
    buf = ctypes.create_string_buffer(prog, len(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(n, ctypes.addressof(buf))
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


# -- server ---------------------------------------------------------------------------------


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class _Tail:
    """Keep the first and last bytes of a stream, count the rest."""

    def __init__(self, keep: int = 4000):
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.head) < self.keep:
            take = self.keep - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.keep:
                del self.tail[: len(self.tail) - self.keep]

    def text(self) -> str:
        if self.total <= len(self.head) + len(self.tail):
            data = bytes(self.head + self.tail)
        else:
            data = bytes(self.head) + f"\n[... {self.total - len(self.head) - len(self.tail)} bytes omitted ...]\n".encode() + bytes(self.tail)
        return data.decode("utf-8", "replace")


def _serve(config: dict) -> None:  # pragma: no cover - runs in the sandbox; covered by the sandbox tests
    # Keep the protocol off fds 0/1 so nothing (a library print, a child) can write into it.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.set_inheritable(proto_in, False)
    os.set_inheritable(proto_out, False)
    for d in config["site"]:
        if d not in sys.path:
            sys.path.append(d)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import numpy  # noqa: F401
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    _warm_up(torch)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    _prctl(_PR_SET_DUMPABLE, 0)
    uid = config.get("uid")
    def drop_and_read() -> None:
        _drop_uid(uid)
        # a dropped uid must still read the Python install (lazy imports): fail clearly if not
        for d in [os.path.dirname(os.__file__), *config["site"]]:
            if not os.access(d, os.R_OK | os.X_OK):
                raise PermissionError(f"uid {uid} cannot read {d}; make the Python install world-readable")

    uid_ok, uid_err = _probe(drop_and_read) if uid else (False, "not requested")
    seccomp_ok, seccomp_err = _probe(_install_seccomp)
    ready = {
        "op": "ready",
        "pid": os.getpid(),
        "torch": torch.__version__,
        "uid": uid if uid_ok else None,
        "uid_error": None if uid_ok else uid_err,
        "seccomp": seccomp_ok,
        "seccomp_error": None if seccomp_ok else seccomp_err,
    }
    _write_all(proto_out, _json_frame(ready))
    state = {"uid": uid if uid_ok else None, "seccomp": seccomp_ok, "n": 0, **config}
    while True:
        try:
            kind, payload = _read_frame(proto_in)
        except EOFError:
            os._exit(0)
        req = json.loads(payload)
        if req.get("op") == "exit":
            os._exit(0)
        blobs = [_read_frame(proto_in)[1] for _ in range(req.get("n_blobs", 0))]
        state["n"] += 1
        meta, stream = _run_job(req, blobs, state)
        _write_all(proto_out, _json_frame(meta) + _frame(FRAME_BYTES, stream))


def _warm_up(torch) -> None:
    """Initialise the kernels students typically use, so each child does not pay for it."""
    a = torch.randn(4, 1, 8, 8)
    w = torch.randn(1, 1, 3, 3)
    torch.nn.functional.conv2d(a, w).sum()
    torch.einsum("nchw,nchw->n", a, a)
    torch.softmax(torch.randn(3, 5), dim=-1)
    torch.randn(8, 8) @ torch.randn(8, 8)
    torch.relu(torch.randn(4)).mean()
    import numpy as np
    import io

    np.save(io.BytesIO(), np.zeros(3, dtype=np.float32), allow_pickle=False)
    np.load(io.BytesIO(_npy_bytes(np.zeros(2))), allow_pickle=False)


def _npy_bytes(arr) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _probe(fn) -> tuple[bool, str | None]:
    """Run fn in a throwaway child to see whether a protection can be applied."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            fn()
            os.write(w, b"ok")
        except BaseException as exc:  # noqa: BLE001
            os.write(w, f"{type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return (data == b"ok", None if data == b"ok" else data.decode("utf-8", "replace"))


def _drop_uid(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("uid did not change")


def _other_pids() -> list[int]:
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            pid = int(d)
            if pid not in (1, me):
                out.append(pid)
    return out


def _descendants() -> list[int]:
    """Children of this process (orphans re-parent here: we are a subreaper), recursively."""
    seen: list[int] = []
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                kids = open(f"/proc/{pid}/task/{tid}/children").read().split()
            except OSError:
                continue
            for k in kids:
                k = int(k)
                if k not in seen:
                    seen.append(k)
                    todo.append(k)
    return seen


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _sweep(state: dict) -> int:
    """Kill every process the run left behind; return how many there were."""
    seen: set[int] = set()
    for _ in range(500):
        _reap()
        pids = _other_pids() if state.get("pidns") else _descendants()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                seen.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.001)
    _reap()
    return len(seen)


def _clean_scratch(path: str, state: dict) -> None:
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
        return
    except OSError:
        pass
    uid = state.get("uid")
    if uid:
        # without CAP_DAC_OVERRIDE/CAP_FOWNER root cannot delete the child's files: do it as the child's uid
        pid = os.fork()
        if pid == 0:
            try:
                _drop_uid(uid)
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    shutil.rmtree(path, ignore_errors=True)


def _run_job(req: dict, blobs: list[bytes], state: dict) -> tuple[dict, bytes]:
    lim = req["limits"]
    scratch = os.path.join(state["scratch"], f"run{state['n']}")
    pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, results
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.monotonic()
    usage0 = os.times()
    pid = os.fork()
    if pid == 0:
        try:
            for r, _ in pipes:
                os.close(r)
            _child_main(req, blobs, [w for _, w in pipes], scratch, state)
        finally:
            os._exit(70)
    for _, w in pipes:
        os.close(w)
    readers = {pipes[0][0]: _Tail(), pipes[1][0]: _Tail()}
    result = bytearray()
    res_fd = pipes[2][0]
    status = "ok"
    detail = ""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    open_fds = {pipes[0][0], pipes[1][0], res_fd}
    deadline = t0 + float(lim["wall_s"])
    exited = None
    truncated = False
    while True:
        if exited is None:
            wpid, wstatus = os.waitpid(pid, os.WNOHANG)
            if wpid:
                exited = wstatus
                break
        left = deadline - time.monotonic()
        if left <= 0:
            status = "timeout"
            break
        watch = list(open_fds) + ([pidfd] if pidfd is not None else [])
        r, _, _ = select.select(watch, [], [], min(left, 0.05 if pidfd is None else left))
        for fd in r:
            if fd == pidfd:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.discard(fd)
                continue
            if fd == res_fd:
                result += chunk
                if len(result) > lim["max_result_bytes"]:
                    status, truncated = "result_limit", True
                    detail = f"the returned data exceeded {lim['max_result_bytes']} bytes"
            else:
                readers[fd].add(chunk)
                if readers[pipes[0][0]].total + readers[pipes[1][0]].total > lim["max_output_bytes"]:
                    status = "output_limit"
                    detail = f"the code printed more than {lim['max_output_bytes']} bytes"
        if status != "ok":
            break
    wall = time.monotonic() - t0
    if exited is None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, exited = os.waitpid(pid, 0)
    leftover = _sweep(state)
    usage1 = os.times()
    # everything is dead now: drain what is left in the pipes (bounded)
    for fd in list(open_fds):
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            if fd == res_fd:
                if len(result) + len(chunk) > lim["max_result_bytes"]:
                    truncated = True
                    break
                result += chunk
            elif readers[fd].total < lim["max_output_bytes"] * 2:
                readers[fd].add(chunk)
    for r, _ in pipes:
        os.close(r)
    if pidfd is not None:
        os.close(pidfd)
    _clean_scratch(scratch, state)
    meta: dict[str, Any] = {"op": "result", "status": status, "detail": detail, "wall_s": wall}
    meta["cpu_s"] = (usage1.children_user - usage0.children_user) + (usage1.children_system - usage0.children_system)
    if os.WIFSIGNALED(exited):
        sig = os.WTERMSIG(exited)
        meta["signal"], meta["signal_name"] = sig, _signame(sig)
        if status == "ok":
            meta["status"] = "signal"
    else:
        meta["exit_code"] = os.WEXITSTATUS(exited)
        if status == "ok" and meta["exit_code"] != 0:
            meta["status"] = "exit"
    out, err = readers[pipes[0][0]], readers[pipes[1][0]]
    meta.update(
        stdout_tail=out.text()[-2000:],
        stderr_tail=err.text()[-2000:],
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        result_bytes=len(result),
        result_truncated=truncated,
        leftover=leftover,
    )
    return meta, bytes(result)


# -- child ----------------------------------------------------------------------------------


def _child_main(req: dict, blobs: list[bytes], fds: list[int], scratch: str, state: dict) -> None:  # pragma: no cover
    """Runs in the forked child: lock down, then run the student's code. Never returns."""
    import resource

    out_w, err_w, res_w = fds
    os.setsid()
    os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(res_w, 3)
    os.closerange(4, 1 << 16)
    lim = req["limits"]
    mb = 1 << 20
    try:
        vm = 0
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                vm = int(line.split()[1]) * 1024
        cpu = max(1, int(float(lim["cpu_s"]) + 0.999))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (vm + lim["memory_mb"] * mb, vm + lim["memory_mb"] * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["max_file_mb"] * mb, lim["max_file_mb"] * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["max_open_files"], lim["max_open_files"]))
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
        if state.get("uid"):
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["max_processes"], lim["max_processes"]))
            _drop_uid(state["uid"])
        else:
            # shared uid: the server and the grader count too, so allow for them
            n = lim["max_processes"] + len(_other_pids()) + 2 if state.get("pidns") else lim["max_processes"] + 64
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        os.chdir(scratch)
        os.environ.clear()
        os.environ.update({"HOME": scratch, "TMPDIR": scratch, "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"})
        tempfile.tempdir = scratch
        if state.get("seccomp"):
            _install_seccomp()
    except BaseException as exc:  # noqa: BLE001
        _write_all(3, _json_frame({"event": "setup_error", "error": f"{type(exc).__name__}: {exc}"}))
        os._exit(71)
    _harness(req, blobs)
    os._exit(0)


class ForbiddenCall(BaseException):
    """Raised by the runtime guard; a BaseException so that `except Exception` does not swallow it."""


def _emit(obj: dict, payloads: list[bytes] = ()) -> None:  # type: ignore[assignment]
    data = _json_frame(obj) + b"".join(_frame(FRAME_BYTES, p) for p in payloads)
    try:
        _write_all(3, data)
    except OSError:
        os._exit(EXIT_RESULT_CHANNEL)  # the student's code closed or broke the result channel


def _install_guard(names: list[str]) -> list[str]:
    """Make forbidden functions raise ForbiddenCall (and report the call) in this process.

    A dotted name that is a module (torch.autograd, torch.func) guards every function in it
    (and in its submodules); a dotted function name guards that function; a bare name
    (backward) guards the attribute of that name on torch.Tensor, torch, torch.autograd and
    torch.nn.functional. Modules not imported yet are blocked at import. This is a
    tripwire, not a boundary: a determined student can dig out the originals, which is
    why the grader also checks the code statically.
    """
    import importlib
    import importlib.abc
    import importlib.util
    import types

    import torch

    guarded: list[str] = []
    blocked_imports: set[str] = set()

    def make(name: str, orig: Any) -> Any:
        def guard(*args: Any, **kwargs: Any) -> Any:
            _emit({"event": "forbidden", "name": name})
            raise ForbiddenCall(f"{name} is not allowed in this exercise")

        guard.__name__ = getattr(orig, "__name__", name.rsplit(".", 1)[-1])
        guard.__wrapped_forbidden__ = name  # type: ignore[attr-defined]
        return guard

    skip_submodules = {"graph", "grad_mode", "profiler", "profiler_util", "profiler_legacy", "anomaly_mode", "variable", "function"}

    def guard_module(mod: types.ModuleType, prefix: str, depth: int = 0) -> None:
        # public API only (__all__ when the module has one), so torch's own helpers keep working
        public = getattr(mod, "__all__", None)
        attrs = [a for a in public if isinstance(a, str)] if isinstance(public, (list, tuple)) else [
            a for a in vars(mod) if not a.startswith("_")
        ]
        attrs += [a for a, v in vars(mod).items() if isinstance(v, types.ModuleType) and not a.startswith("_") and a not in attrs]
        keep_classes = mod.__name__.startswith("torch.autograd")
        for attr in attrs:
            obj = getattr(mod, attr, None)
            if obj is None or getattr(obj, "__wrapped_forbidden__", None):
                continue
            if isinstance(obj, types.ModuleType):
                if depth < 2 and attr not in skip_submodules and obj.__name__.startswith(mod.__name__ + "."):
                    guard_module(obj, f"{prefix}.{attr}", depth + 1)
                continue
            origin = getattr(obj, "__module__", "") or ""
            if not (origin.startswith("torch") or origin.startswith("functorch")):
                continue
            if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)) or (
                isinstance(obj, type) and not keep_classes
            ):
                try:
                    setattr(mod, attr, make(f"{prefix}.{attr}", obj))
                    guarded.append(f"{prefix}.{attr}")
                except (AttributeError, TypeError):
                    pass

    for name in names:
        if "." not in name:
            for owner, label in (
                (torch.Tensor, "Tensor"),
                (torch, "torch"),
                (torch.autograd, "torch.autograd"),
                (torch.nn.functional, "torch.nn.functional"),
                (torch.ops.aten, "torch.ops.aten"),
            ):
                try:
                    obj = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
                except Exception:  # noqa: BLE001 - torch.ops raises for unknown ops
                    obj = None
                if obj is not None and callable(obj) and not isinstance(obj, type):
                    try:
                        setattr(owner, name, make(f"{label}.{name}", obj))
                        guarded.append(f"{label}.{name}")
                    except (AttributeError, TypeError):
                        pass
            if name in sys.modules:
                guard_module(sys.modules[name], name)
            elif name.isidentifier() and importlib.util.find_spec(name) is not None:
                blocked_imports.add(name)  # a top-level module not imported yet (functorch)
            continue
        if name in sys.modules:
            guard_module(sys.modules[name], name)
            continue
        parent, _, attr = name.rpartition(".")
        owner = sys.modules.get(parent)
        if owner is None:
            try:
                owner = importlib.import_module(parent) if parent.split(".")[0] == "torch" else None
            except Exception:
                owner = None
        if owner is not None and hasattr(owner, attr):
            obj = getattr(owner, attr)
            if isinstance(obj, types.ModuleType):
                guard_module(obj, name)
            else:
                try:
                    setattr(owner, attr, make(name, obj))
                    guarded.append(name)
                except (AttributeError, TypeError):
                    pass
        else:
            blocked_imports.add(name)

    if blocked_imports:

        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, fullname, path=None, target=None):  # type: ignore[override]
                for b in blocked_imports:
                    if fullname == b or fullname.startswith(b + "."):
                        _emit({"event": "forbidden", "name": f"import {fullname}"})
                        raise ForbiddenCall(f"importing {fullname} is not allowed in this exercise")
                return None

        sys.meta_path.insert(0, Blocker())
        guarded.extend(f"import {b}" for b in sorted(blocked_imports))
    return guarded


def _exc_info(exc: BaseException, filename: str) -> dict:
    import traceback

    tb = traceback.extract_tb(exc.__traceback__)
    line = None
    frames = []
    for fr in tb:
        if fr.filename == filename:
            line = fr.lineno
            frames.append([fr.lineno, fr.name[:80], (fr.line or "").strip()[:160]])
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno
    msg = str(exc)
    memory = isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and any(s in msg for s in ("can't allocate memory", "not enough memory", "Cannot allocate memory", "out of memory"))
    )
    errno_ = getattr(exc, "errno", None)
    fname = getattr(exc, "filename", None)
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": msg[:1000],
        "line": line,
        "frames": frames[-5:],
        "memory": memory,
        "forbidden": isinstance(exc, ForbiddenCall),
        "errno": errno_ if isinstance(errno_, int) else None,
        "filename": str(fname)[:300] if fname is not None else None,
        "libs": sorted({os.path.basename(fr.filename) for fr in tb if fr.filename != filename})[:20],
    }


def _encode_output(obj: Any, payloads: list[bytes], depth: int = 0) -> dict:
    """Describe a returned value as JSON; tensors/arrays go to payloads as .npy bytes."""
    import numpy as np
    import torch

    if depth > 3:
        return {"type": "other", "pytype": "nested too deep"}
    if isinstance(obj, torch.Tensor):
        info: dict[str, Any] = {
            "type": "tensor",
            "dtype": str(obj.dtype).replace("torch.", ""),
            "shape": list(obj.shape),
            "requires_grad": bool(obj.requires_grad),
            "has_grad_fn": obj.grad_fn is not None,
            "device": str(obj.device),
            "layout": str(obj.layout).replace("torch.", ""),
            "subclass": type(obj) is not torch.Tensor and type(obj).__name__ != "Parameter",
        }
        t = obj.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        try:
            arr = t.contiguous().numpy()
        except Exception as exc:  # noqa: BLE001
            info["error"] = f"cannot convert: {exc}"[:300]
            return info
        info["blob"] = len(payloads)
        payloads.append(_npy_bytes(arr))
        return info
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return {"type": "ndarray", "dtype": "object", "shape": list(obj.shape), "error": "object array"}
        info = {"type": "ndarray", "dtype": str(obj.dtype), "shape": list(obj.shape), "blob": len(payloads)}
        payloads.append(_npy_bytes(np.ascontiguousarray(obj)))
        return info
    if isinstance(obj, (bool, np.bool_)):
        return {"type": "bool", "value": bool(obj)}
    if isinstance(obj, (int, np.integer)):
        v = int(obj)
        return {"type": "int", "value": v if abs(v) < 2**53 else float(v)}
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return {"type": "float", "value": v if v == v and abs(v) != float("inf") else repr(v)}
    if obj is None:
        return {"type": "none"}
    if isinstance(obj, str):
        return {"type": "str", "value": obj[:4000]}
    if isinstance(obj, (tuple, list)):
        if len(obj) > 32:
            return {"type": type(obj).__name__, "items": None, "length": len(obj)}
        return {"type": type(obj).__name__, "items": [_encode_output(x, payloads, depth + 1) for x in obj]}
    if isinstance(obj, dict):
        return {"type": "dict", "keys": [str(k)[:50] for k in list(obj)[:20]]}
    return {"type": "other", "pytype": f"{type(obj).__module__}.{type(obj).__qualname__}"[:200]}


def _decode_arg(spec: dict, blobs: list[bytes]) -> Any:
    import io

    import numpy as np
    import torch

    if spec["kind"] == "value":
        return spec["value"]
    arr = np.load(io.BytesIO(blobs[spec["blob"]]), allow_pickle=False)
    t = torch.from_numpy(np.array(arr, copy=True))
    want = getattr(torch, spec.get("dtype") or "float32")
    if t.dtype != want:
        t = t.to(want)
    if spec.get("requires_grad"):
        t.requires_grad_(True)
    return t


def _harness(req: dict, blobs: list[bytes]) -> None:  # pragma: no cover - runs in the child
    filename = req.get("filename") or "submission.py"
    try:
        guarded = _install_guard(req.get("forbidden", []))
    except Exception as exc:  # noqa: BLE001
        guarded = [f"guard error: {exc}"]
    _emit({"event": "start", "guarded": guarded[:50]})
    cases = []
    try:
        for c in req["cases"]:
            cases.append((c["name"], [_decode_arg(a, blobs) for a in c["args"]]))
    except Exception as exc:  # noqa: BLE001
        _emit({"event": "setup_error", "error": f"cannot decode inputs: {exc}"})
        return
    namespace: dict[str, Any] = {"__name__": "__student__", "__file__": filename, "__builtins__": __builtins__}
    try:
        import linecache

        source = req["code"]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec", dont_inherit=True)
        exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001
        _emit({"event": "load_error", "exc": _exc_info(exc, filename)})
        _flush_std()
        return
    fn = namespace.get(req["entry"])
    if fn is None or not callable(fn):
        funcs = sorted(k for k, v in namespace.items() if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == "__student__")
        _emit({"event": "no_entry", "found": funcs[:20], "not_callable": fn is not None})
        _flush_std()
        return
    for name, args in cases:
        _emit({"event": "case_start", "name": name})
        t0 = time.perf_counter()
        try:
            out = fn(*args)
            elapsed = time.perf_counter() - t0
            payloads: list[bytes] = []
            desc = _encode_output(out, payloads)
            _emit({"event": "case", "name": name, "ok": True, "time_s": elapsed, "output": desc}, payloads)
        except BaseException as exc:  # noqa: BLE001
            _emit({"event": "case", "name": name, "ok": False, "time_s": time.perf_counter() - t0, "exc": _exc_info(exc, filename)})
        _flush_std()
    _emit({"event": "done"})
    _flush_std()


def _flush_std() -> None:
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


if __name__ == "__main__" and len(sys.argv) >= 3 and sys.argv[1] == "--serve":
    _serve(json.loads(sys.argv[2]))
