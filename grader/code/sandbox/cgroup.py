"""A CPU quota for a whole sandbox: a cgroup (v2 or v1) that caps it at one core, where the machine allows.

Rlimits are per process, so a run with 16 busy processes would burn 16 cores for its
whole time limit. A cgroup's CPU controller caps every process in it together. Creating
one needs write access to a cgroup hierarchy with the cpu controller: root on most
machines (cgroup v1, or v2 where the grader's cgroup may have children with ``cpu``
enabled), or a delegated v2 subtree. Where that is missing, the server's own CPU
accounting across all of a run's processes is the quota (see docs/sandbox.md).
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

_PERIOD_US = 100_000
_serial = itertools.count(1)
_lock = threading.Lock()


@dataclass(frozen=True)
class _Hierarchy:
    version: int  # 1 or 2
    parent: Path  # where our groups are made


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of every cgroup mount."""
    out: list[tuple[str, str, set[str]]] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            out.append((fields[4], tail[0], set(tail[2].split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """Controller (or '' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _find() -> _Hierarchy | None:
    own = _own_paths()
    for mount, fstype, opts in _mounts():
        if fstype == "cgroup" and "cpu" in opts and "cpu" in own:
            parent = Path(mount) / own["cpu"].lstrip("/")
            if (parent / "cpu.cfs_quota_us").exists() and os.access(parent, os.W_OK):
                return _Hierarchy(1, parent)
    for mount, fstype, _ in _mounts():
        if fstype == "cgroup2" and "" in own:
            parent = Path(mount) / own[""].lstrip("/")
            try:
                enabled = (parent / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if "cpu" in enabled and os.access(parent, os.W_OK):
                return _Hierarchy(2, parent)
    return None


def _remove_stale(parent: Path) -> None:
    """Remove empty groups left by graders that were killed (their pid is in the name)."""
    for d in parent.glob("grader-sandbox-*"):
        try:
            pid = int(d.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            try:
                d.rmdir()
            except OSError:
                pass


class CpuQuota:
    """One cgroup capping a sandbox at ``cores`` CPUs; ``wrap`` starts a command inside it."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, cores: float = 1.0) -> CpuQuota | None:
        """A fresh group, or None when no writable cgroup with the cpu controller exists here."""
        found = _find()
        if found is None:
            return None
        with _lock:
            path = found.parent / f"grader-sandbox-{os.getpid()}-{next(_serial)}"
        quota = int(_PERIOD_US * cores)
        try:
            _remove_stale(found.parent)
            path.mkdir()
            if found.version == 1:
                (path / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
                (path / "cpu.cfs_quota_us").write_text(str(quota))
            else:
                (path / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
        except OSError:
            try:
                path.rmdir()
            except OSError:
                pass
            return None
        return cls(path, found.version)

    def wrap(self, argv: list[str]) -> list[str]:
        """argv started inside the group (the shell moves itself in, then becomes argv)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *argv]

    def describe(self) -> str:
        return f"cgroup v{self.version} cpu quota, 1 core per sandbox ({self.path})"

    def close(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass


def available() -> str | None:
    """Where a quota would be made, or None: for the capability report."""
    found = _find()
    return None if found is None else f"cgroup v{found.version} at {found.parent}"
