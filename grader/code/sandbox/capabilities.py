"""What isolation this machine offers, and the bubblewrap command line built from it."""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from grader.code.sandbox import cgroup


class SandboxUnavailable(RuntimeError):
    """The protections needed to run untrusted code are missing; the message says what and how to fix it."""


@dataclass
class Protection:
    name: str
    available: bool
    detail: str


@dataclass
class Capabilities:
    """What isolation this machine offers; ``problem`` says what blocks a sandboxed run."""

    bwrap: str | None
    bwrap_version: str | None
    root: bool
    protections: list[Protection]
    bwrap_args_ok: bool
    tmpfs_size: bool
    cpu_quota: bool = False
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
_USERNS_HINT = (
    "unprivileged user namespaces seem disabled: enable them (`sysctl -w kernel.unprivileged_userns_clone=1`; "
    "on Ubuntu 24.04+ `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile for bwrap) "
    "or run the grader as root"
)
_ROOT_HINT = (
    "check that the kernel supports pid/net/mount namespaces (containers may need --privileged or a seccomp "
    "profile that allows unshare)"
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
    except (OSError, AttributeError):  # no libc to load, or no syscall() in it
        return 0


def _find_bwrap() -> str | None:
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


def detect(refresh: bool = False) -> Capabilities:
    """Probe the machine once (a few ms): bubblewrap, namespaces, uid drop, rlimits, seccomp, cgroups."""
    global _detected
    with _detect_lock:
        if _detected is not None and not refresh:
            return _detected
        _detected = _detect()
        return _detected


def _probe_bwrap(bwrap: str, root: bool) -> tuple[str, bool, bool, str | None]:
    """(version, namespaces work, tmpfs --size works, problem)."""
    try:
        version = _run_quiet([bwrap, "--version"]).stdout.strip().split()[-1]
    except (OSError, subprocess.SubprocessError, IndexError):  # cannot run, timed out, or printed nothing
        version = "?"
    base = [
        bwrap,
        *namespace_args(root),
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    probe = _run_quiet([*base, "--perms", "1777", "--size", str(1 << 20), "--tmpfs", "/tmp", "true"])
    if probe.returncode == 0:
        return version, True, True, None
    probe2 = _run_quiet([*base, "--tmpfs", "/tmp", "true"])
    if probe2.returncode == 0:
        return version, True, False, None
    err = (probe2.stderr or probe.stderr).strip().splitlines()
    reason = err[-1] if err else f"exit code {probe2.returncode}"
    hint = _ROOT_HINT if root else _USERNS_HINT
    return (
        version,
        False,
        False,
        f"bubblewrap {version} is installed but cannot create a sandbox here ({reason}); {hint}",
    )


def _detect() -> Capabilities:
    root = os.geteuid() == 0
    prots: list[Protection] = []
    bwrap = _find_bwrap()
    version, args_ok, size_ok, problem = None, False, False, None
    if bwrap is None:
        problem = f"bubblewrap (bwrap) is not installed; {_INSTALL_HINT}"
        prots.append(Protection("bubblewrap", False, "bwrap not found on PATH"))
    else:
        version, args_ok, size_ok, problem = _probe_bwrap(bwrap, root)
        prots.append(
            Protection("bubblewrap", args_ok, f"{bwrap} {version}" + ("" if args_ok else " (cannot create namespaces)"))
        )
        namespaces = "pid, net, ipc, uts, mount, cgroup" + ("" if root else ", user")
        prots.append(Protection("namespaces", args_ok, namespaces if args_ok else "unavailable"))
        prots.append(
            Protection(
                "network", args_ok, "own network namespace (no interface but loopback)" if args_ok else "host network"
            )
        )
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
    x86 = platform.machine() == "x86_64"
    prots.append(
        Protection(
            "seccomp",
            x86,
            "filter on exec, ptrace, mount, namespaces, SysV IPC, memfd, bpf, keyctl, io_uring, inet sockets"
            if x86
            else f"no filter for {platform.machine()}",
        )
    )
    quota = cgroup.CpuQuota.create()
    if quota is not None:
        prots.append(Protection("cpu quota", True, quota.describe().split(" (")[0]))
        quota.close()
    else:
        prots.append(
            Protection(
                "cpu quota",
                False,
                "no writable cgroup with the cpu controller: the server caps the CPU seconds of all of a run's "
                "processes instead",
            )
        )
    abi = _landlock_abi()
    prots.append(
        Protection(
            "landlock",
            False,
            f"kernel ABI {abi}, not used (mount namespace covers the file system)"
            if abi
            else "not available, not used",
        )
    )
    return Capabilities(bwrap, version, root, prots, args_ok, size_ok, quota is not None, problem)


def namespace_args(root: bool) -> list[str]:
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
# The sandbox's file system
# --------------------------------------------------------------------------------------

SCRATCH = "/scratch"
SERVER_PATH = "/sandbox/server.py"
SITE_ROOT = "/sandbox/site"


@dataclass(frozen=True)
class PythonLayout:
    exe: str  # the real interpreter (not a venv's link to it)
    install: list[str]  # the Python install, bound read-only at its own path (the stdlib lives there)
    site: list[str]  # host directories holding torch and numpy

    def sandbox_site(self) -> list[str]:
        """Where the site directories appear inside the sandbox: neutral paths, no host path."""
        return [f"{SITE_ROOT}/{i}" for i in range(len(self.site))]


def python_layout() -> PythonLayout:
    import importlib.util

    exe = os.path.realpath(sys.executable)
    install = {os.path.realpath(sys.base_prefix), os.path.dirname(exe)}
    site: list[str] = []
    for mod in ("torch", "numpy"):
        spec = importlib.util.find_spec(mod)
        if spec is None or not spec.origin:
            raise SandboxUnavailable(
                f"{mod} is not importable by {sys.executable}; install it in the grader's environment"
            )
        d = os.path.dirname(os.path.dirname(os.path.realpath(spec.origin)))
        if d not in site:
            site.append(d)
    dirs = sorted(install)
    keep = [d for d in dirs if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in dirs)]
    return PythonLayout(exe, keep, site)


def _parents(path: str, made: set[str]) -> list[str]:
    args: list[str] = []
    cur = ""
    for part in Path(path).parts[1:-1]:
        cur += "/" + part
        if cur not in made:
            args += ["--perms", "0755", "--dir", cur]
            made.add(cur)
    return args


def bwrap_args(caps: Capabilities, layout: PythonLayout, scratch_mb: int, server_fd: int) -> list[str]:
    """bubblewrap's options (not the command): what the sandbox sees, and what the server may do.

    The server's source comes from ``server_fd`` (``--ro-bind-data``), and the site directories
    are bound under neutral paths, so no path of this checkout appears in the sandbox's mounts
    or command lines.
    """
    args = [*namespace_args(caps.root), "--die-with-parent", "--new-session", "--tmpfs", "/"]
    for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + top
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    made: set[str] = set()
    for d in layout.install:
        if not (d.startswith("/usr/") or d == "/usr"):
            args += [*_parents(d, made), "--ro-bind", d, d]
    args += ["--perms", "0755", "--dir", "/sandbox", "--perms", "0755", "--dir", SITE_ROOT]
    for host, inside in zip(layout.site, layout.sandbox_site()):
        args += ["--ro-bind", host, inside]
    args += ["--perms", "0444", "--ro-bind-data", str(server_fd), SERVER_PATH]
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    # the scratch root: only the server may create in it (mode 0711); each run gets its own directory
    args += ["--perms", "0711" if caps.root else "0700"]
    if caps.tmpfs_size:
        args += ["--size", str(scratch_mb << 20)]
    args += ["--tmpfs", SCRATCH, "--chdir", "/", "--clearenv"]
    if caps.root:
        # the server (trusted code) keeps what it needs to drop children to their uid, give them a
        # directory, kill whatever they leave behind and delete their files; children keep nothing
        args += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_CHOWN"):
            args += ["--cap-add", cap]
    return args
