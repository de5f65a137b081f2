"""The hostile-submission suite: every attack is contained, with its own reason, and the grader is unchanged.

Runs against one warm sandbox server for the whole module. Tests that need
bubblewrap skip with the reason when it is missing (CI installs it:
``apt-get install -y bubblewrap``). tests/test_redteam.py holds the attacks on the
harness itself.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.code.sandbox import (
    SandboxServer,
    SandboxUnavailable,
    capabilities,
    detect,
    parse_frames,
    python_layout,
)
from grader.code.sandbox import server as sandbox_server
from grader.code.sandbox.server import descendants

from .sandboxing import CAPS, case_event, exc_of, job, needs_sandbox, server, value_of  # noqa: F401 - server is a fixture

REPO = Path(__file__).resolve().parents[1]
RUBRICS = REPO / "rubrics"

# Snapshot of the grader process, compared at the end of the module.
_BEFORE = {
    "pid": os.getpid(),
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
    "allclose": torch.allclose,
    "np_allclose": np.allclose,
    "tensor_eq": torch.Tensor.__eq__,
}


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


_RUBRIC_HASH = _tree_hash(RUBRICS) if RUBRICS.is_dir() else ""


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _server_alive(server: SandboxServer, pid: int) -> None:
    assert server.proc is not None and server.proc.poll() is None and server.proc.pid == pid, "the server was restarted"
    r = server.run(job("def f(x):\n    return x * 2\n"))
    assert r.status == "ok"
    np.testing.assert_array_equal(value_of(r), np.arange(6, dtype=np.float32).reshape(2, 3) * 2)


# ---------------------------------------------------------------------------- basics


def test_detect_explains_protections():
    text = CAPS.describe()
    for name in ("bubblewrap", "namespaces", "rlimits", "seccomp", "dedicated uid", "cpu quota"):
        assert name in text


@needs_sandbox
def test_roundtrip_without_pickle(server):
    r = server.run(job("import torch\ndef f(x):\n    print('hi')\n    return x.sum(dim=0), x.double()\n"))
    assert r.status == "ok" and r.stream_complete
    s, d = value_of(r)
    np.testing.assert_array_equal(s, np.array([3, 5, 7], dtype=np.float32))
    assert d.dtype == np.float64
    assert r.stdout_tail == "hi\n"
    assert server.info["uid"] and server.info["seccomp"]


@needs_sandbox
def test_children_run_as_own_uid_with_a_clean_environment(server):
    os.environ["GRADER_TEST_CANARY"] = "secret"  # set after the server started: must not leak anyway
    try:
        r = server.run(
            job(
                """
                import os
                def f(x):
                    try:
                        env1 = open('/proc/1/environ').read()
                    except OSError as e:
                        env1 = type(e).__name__
                    return [os.getuid(), os.getgid(), ' '.join(sorted(os.environ)), os.getcwd(), env1]
                """
            )
        )
    finally:
        del os.environ["GRADER_TEST_CANARY"]
    uid, gid, env, cwd, env1 = value_of(r)
    if os.geteuid() == 0:
        assert uid == server.info["uid"] and uid not in (0, os.getuid()) and gid == uid
    assert set(env.split()) <= {"HOME", "TMPDIR", "OMP_NUM_THREADS", "LANG", "PATH"}
    assert cwd.startswith("/scratch/")
    assert env1 == "PermissionError"


# ---------------------------------------------------------------------------- the hostile suite


@needs_sandbox
def test_infinite_loop_is_killed_at_the_wall_time_limit(server):
    pid = server.proc.pid
    t0 = time.monotonic()
    r = server.run(job("def f(x):\n    while True:\n        pass\n", wall=1.0))
    assert r.status == "timeout"
    assert time.monotonic() - t0 < 4
    assert r.timeout["phase"] == "case" and r.timeout["index"] == 0 and r.timeout["state"] == "R"
    _server_alive(server, pid)


@needs_sandbox
def test_cpu_limit_kills_a_busy_loop_that_outlives_wall_checks(server):
    # wall time generous, CPU time 1 s: the server's CPU cap (or RLIMIT_CPU's SIGXCPU) stops it
    r = server.run(job("def f(x):\n    while True:\n        pass\n", wall=8.0, cpu_s=1.0))
    assert r.status == "cpu_limit" or (r.status == "signal" and r.signal_name in ("SIGXCPU", "SIGKILL"))
    assert r.wall_s < 7


@needs_sandbox
def test_40gb_allocation_is_refused(server):
    r = server.run(job("import torch\ndef f(x):\n    return torch.ones(10 * 1024 ** 3)\n"))
    exc = exc_of(r)
    assert exc["memory"] and "allocate" in exc["message"]
    r = server.run(job("def f(x):\n    return bytearray(40 * 2 ** 30)\n"))
    assert exc_of(r)["type"] == "MemoryError" and exc_of(r)["memory"]


@needs_sandbox
def test_bounded_fork_bomb_hits_the_process_limit_and_is_cleaned_up(server):
    pid = server.proc.pid
    r = server.run(
        job(
            """
            import os, time
            def f(x):
                for _ in range(1000):
                    if os.fork() == 0:
                        time.sleep(600)
                        os._exit(0)
            """,
            max_processes=16,
        )
    )
    exc = exc_of(r)
    assert exc["type"] == "BlockingIOError" and exc["errno"] == 11
    assert r.leftover_processes >= 10  # the sleeping children were killed by the sweep
    # nothing survives into the next run: only the sandbox's init (1), the server, the zygote and this child
    r = server.run(job("import os\ndef f(x):\n    return [int(p) for p in os.listdir('/proc') if p.isdigit()]\n"))
    assert len(value_of(r)) == 4
    _server_alive(server, pid)


@needs_sandbox
def test_daemonised_grandchild_is_killed(server):
    r = server.run(
        job(
            """
            import os, time
            def f(x):
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        time.sleep(600)
                    os._exit(0)
                return x
            """
        )
    )
    assert r.status == "ok" and r.leftover_processes >= 1
    r = server.run(job("import os\ndef f(x):\n    return [int(p) for p in os.listdir('/proc') if p.isdigit()]\n"))
    assert len(value_of(r)) == 4


@needs_sandbox
@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/etc/shadow",
        str(RUBRICS / "q5.yaml"),
        str(RUBRICS / "reference" / "q5.py"),
        str(REPO / "submissions"),
        str(Path(__file__).resolve()),
        "/root/.bash_history",
    ],
)
def test_files_outside_the_sandbox_are_invisible(server, path):
    r = server.run(job(f"import os\ndef f(x):\n    return open({path!r}).read() if os.path.isfile({path!r}) else os.listdir({path!r})\n"))
    exc = exc_of(r)
    assert exc["type"] in ("FileNotFoundError", "PermissionError", "NotADirectoryError")
    assert exc["errno"] in (2, 13, 20)


@needs_sandbox
def test_rubric_directory_cannot_be_listed(server):
    r = server.run(job(f"import os\ndef f(x):\n    return os.listdir({str(RUBRICS)!r})\n"))
    assert exc_of(r)["type"] == "FileNotFoundError"
    r = server.run(job("import os\ndef f(x):\n    return sorted(os.listdir('/'))\n"))
    # The root holds system dirs plus the top of the Python install (site-packages sit under /sandbox).
    python_tops = {Path(d).parts[1] for d in python_layout().install}
    system = {"bin", "dev", "lib", "lib32", "lib64", "libx32", "proc", "sandbox", "sbin", "scratch", "usr", "tmp"}
    assert set(value_of(r)) <= system | python_tops
    # Inside the exposed tops, only the Python dirs themselves are bound: the checkout's rubrics never are.
    r = server.run(job(f"import os\ndef f(x):\n    return os.path.exists({str(RUBRICS.parent / 'submissions')!r})\n"))
    assert value_of(r) is False


@needs_sandbox
@pytest.mark.parametrize("host,port", [("127.0.0.1", 22), ("127.0.0.1", 8000), ("1.1.1.1", 443), ("93.184.216.34", 80)])
def test_network_is_unreachable(server, host, port):
    r = server.run(job(f"import socket\ndef f(x):\n    socket.create_connection(({host!r}, {port}), timeout=2)\n    return x\n"))
    exc = exc_of(r)
    assert exc["type"] in ("PermissionError", "ConnectionRefusedError", "OSError")
    assert "socket.py" in exc["libs"] or exc["errno"] in (13, 101, 111)


@needs_sandbox
def test_only_loopback_exists_in_the_network_namespace(server):
    r = server.run(job("def f(x):\n    return open('/proc/self/net/dev').read()\n"))
    ifaces = [ln.split(":")[0].strip() for ln in value_of(r).splitlines()[2:]]
    assert ifaces == ["lo"]


@needs_sandbox
def test_killing_the_parent_and_pid1_is_refused(server):
    pid = server.proc.pid
    r = server.run(job("import os, signal\ndef f(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n"))
    exc = exc_of(r)
    assert exc["type"] == "PermissionError" and exc["errno"] == 1
    r = server.run(job("import os, signal\ndef f(x):\n    os.kill(1, signal.SIGKILL)\n"))
    assert exc_of(r)["type"] == "PermissionError"
    r = server.run(job("import os, signal\ndef f(x):\n    os.kill(-1, signal.SIGKILL)\n    return x\n"))
    assert r.status == "ok"  # kill(-1) reaches only its own uid's processes
    _server_alive(server, pid)


@needs_sandbox
def test_200mb_of_stdout_is_cut_off(server):
    t0 = time.monotonic()
    r = server.run(job("import sys\ndef f(x):\n    for _ in range(200):\n        sys.stdout.write('x' * 1_000_000)\n"))
    assert r.status == "output_limit"
    assert r.stdout_bytes < 3_000_000 and len(r.stdout_tail) <= 2000
    assert time.monotonic() - t0 < 3


@needs_sandbox
def test_monkeypatching_torch_comparisons_stays_in_the_child(server):
    code = """
        import numpy as np, torch
        torch.allclose = lambda *a, **k: True
        torch.equal = lambda *a, **k: True
        np.allclose = lambda *a, **k: True
        torch.Tensor.__eq__ = lambda self, other: True
        def f(x):
            return torch.zeros(2, 3)
    """
    r = server.run(job(code))
    np.testing.assert_array_equal(value_of(r), np.zeros((2, 3), dtype=np.float32))
    # the next child, forked from the same server, sees the real functions again
    r = server.run(job("import torch\ndef f(x):\n    return [torch.allclose(x, x + 1), torch.allclose.__module__ or '']\n"))
    assert value_of(r)[0] is False
    assert torch.allclose is _BEFORE["allclose"] and np.allclose is _BEFORE["np_allclose"]


@needs_sandbox
@pytest.mark.parametrize("path", ["/usr/evil", "/evil", "/tmp/evil", str(RUBRICS / "q5.yaml"), "/sandbox/server.py", "/proc/1/oom_score_adj"])
def test_writing_outside_the_scratch_dir_fails(server, path):
    r = server.run(job(f"def f(x):\n    with open({path!r}, 'w') as fh:\n        fh.write('pwned')\n    return x\n"))
    exc = exc_of(r)
    assert exc["type"] in ("OSError", "FileNotFoundError", "PermissionError", "IsADirectoryError")
    assert not Path("/evil").exists() and not Path("/usr/evil").exists()


@needs_sandbox
def test_scratch_is_writable_private_and_wiped_between_runs(server):
    r = server.run(job("import os\ndef f(x):\n    open('mine.txt', 'w').write('x')\n    return [os.getcwd(), sorted(os.listdir('.'))]\n"))
    first, files = value_of(r)
    assert files == ["mine.txt"]
    r = server.run(job("import os\ndef f(x):\n    return [os.getcwd(), sorted(os.listdir('.')), os.path.exists({first!r})]\n".replace("{first!r}", repr(first))))
    second, here, old_exists = value_of(r)
    assert here == [] and second != first and old_exists is False
    r = server.run(job("import os\ndef f(x):\n    return os.listdir('/scratch')\n"))
    assert exc_of(r)["type"] == "PermissionError"  # no run can see (or name) another's directory


@needs_sandbox
def test_file_size_is_limited(server):
    r = server.run(job("def f(x):\n    open('big', 'wb').write(b'x' * (64 << 20))\n", max_file_mb=16))
    assert exc_of(r)["errno"] == 27


@needs_sandbox
def test_threads_are_limited(server):
    r = server.run(
        job(
            "import threading, time\ndef f(x):\n    for _ in range(200):\n        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n",
            max_processes=16,
        )
    )
    assert "can't start new thread" in exc_of(r)["message"]


@needs_sandbox
def test_calling_autograd_is_caught_at_runtime(server):
    forbidden = ("torch.autograd", "backward", "torch.func", "functorch")
    cases = {
        "import torch\ndef f(x):\n    x = x.clone().requires_grad_()\n    (x * x).sum().backward()\n    return x.grad\n": "Tensor.backward",
        "import torch\ndef f(x):\n    x = x.clone().requires_grad_()\n    return torch.autograd.grad((x * x).sum(), x)[0]\n": "torch.autograd.grad",
        "import importlib\nag = importlib.import_module('torch.auto' + 'grad')\ndef f(x):\n    return getattr(ag, 'gr' + 'ad')\n": None,
        "import torch\ndef f(x):\n    return torch.func.grad(lambda t: (t * t).sum())(x)\n": "torch.func.grad",
        "import torch\ndef f(x):\n    return torch.autograd.functional.jacobian(lambda t: t * 2, x)\n": "torch.autograd.functional.jacobian",
    }
    for code, name in cases.items():
        r = server.run(job(code, forbidden=forbidden))
        if name is None:  # fetching the function is allowed; calling it is not
            assert case_event(r)["ok"] and not r.forbidden
        else:
            assert r.forbidden == [name], (code, r.events)
            assert r.exit_code == sandbox_server.EXIT_FORBIDDEN and not any(e.get("event") == "case" for e in r.events)
    r = server.run(job("import functorch\ndef f(x):\n    return x\n", forbidden=forbidden))
    assert r.forbidden == ["functorch (imported)"] and not r.events
    # no_grad and friends keep working
    r = server.run(job("import torch\ndef f(x):\n    with torch.no_grad(), torch.autograd.no_grad():\n        return x + 1\n", forbidden=forbidden))
    assert case_event(r)["ok"]


@needs_sandbox
def test_kernel_attack_surface_is_filtered(server):
    r = server.run(
        job(
            """
            import ctypes
            def f(x):
                libc = ctypes.CDLL(None, use_errno=True)
                out = []
                for call in (lambda: libc.ptrace(16, 1, 0, 0), lambda: libc.unshare(0x10000000), lambda: libc.mount(b'x', b'/scratch', b'tmpfs', 0, None)):
                    ctypes.set_errno(0)
                    out.append([call(), ctypes.get_errno()])
                return out
            """
        )
    )
    for ret, err in value_of(r):
        assert ret == -1 and err in (1, 13)


@needs_sandbox
def test_crashes_and_exits_have_their_own_status(server):
    r = server.run(job("import ctypes\ndef f(x):\n    ctypes.string_at(0)\n"))
    assert r.status == "signal" and r.signal_name == "SIGSEGV"
    r = server.run(job("import os\ndef f(x):\n    os._exit(3)\n"))
    assert r.status == "exit" and r.exit_code == 3
    r = server.run(job("import sys\nsys.exit(2)\n"))
    assert any(e.get("event") == "load_error" and e["exc"]["type"] == "SystemExit" for e in r.events)


@needs_sandbox
def test_garbage_on_the_result_channel_does_not_break_the_grader(server):
    r = server.run(job("import os\ndef f(x):\n    os.write(3, b'\\xff' * 100)\n    return x\n"))
    assert r.status == "ok" and not r.stream_complete
    frames, complete = parse_frames(b"\x00\x00\x00\x05Jabc")
    assert frames == [] and not complete


# ---------------------------------------------------------------------------- cleanup


@needs_sandbox
def test_close_leaves_no_process_behind():
    s = SandboxServer()
    s.start()
    bwrap = s.proc.pid
    r = s.run(job("import os, time\ndef f(x):\n    if os.fork() == 0:\n        time.sleep(600)\n    return x\n"))
    assert r.status == "ok"
    tree = [bwrap, *descendants(bwrap)]
    assert len(tree) >= 3  # bwrap, its init, the server
    s.close()
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in tree)


@needs_sandbox
def test_killed_grader_leaves_no_process_behind(tmp_path):
    script = tmp_path / "grader_victim.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, textwrap
            sys.path.insert(0, {str(REPO)!r})
            from grader.code.sandbox import SandboxServer, Job, JobCase, Limits
            s = SandboxServer()
            s.start()
            print(s.proc.pid, flush=True)
            s.run(Job(code="def f():\\n    while True:\\n        pass\\n", entry_point="f", cases=[JobCase("a", [])], limits=Limits(case_s=60)))
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        bwrap = int(proc.stdout.readline())
        time.sleep(0.5)  # the student's loop is running now
        tree = [bwrap, *descendants(bwrap)]
        assert len(tree) >= 4  # bwrap, init, server, the looping child
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: --die-with-parent and PDEATHSIG must
        proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in tree)
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------------- without bubblewrap


def test_missing_bubblewrap_is_explained_and_needs_an_explicit_flag(monkeypatch):
    monkeypatch.setattr(capabilities, "_find_bwrap", lambda: None)
    try:
        caps = detect(refresh=True)
        assert caps.problem and "apt-get install -y bubblewrap" in caps.problem
        with pytest.raises(SandboxUnavailable) as err:
            SandboxServer()
        assert "bubblewrap" in str(err.value) and "allow_unsandboxed" in str(err.value)
        with SandboxServer(allow_unsandboxed=True) as s:
            assert "UNSANDBOXED" in s.description
            r = s.run(job("def f(x):\n    return x + 1\n"))
            assert r.status == "ok" and "UNSANDBOXED" in r.sandbox
            np.testing.assert_array_equal(value_of(r), np.arange(6, dtype=np.float32).reshape(2, 3) + 1)
            r = s.run(job("def f(x):\n    while True:\n        pass\n", wall=1.0))
            assert r.status == "timeout"  # limits still apply
    finally:
        monkeypatch.undo()
        detect(refresh=True)


# ---------------------------------------------------------------------------- the grader is unchanged


def test_zz_grader_process_unchanged():
    assert os.getpid() == _BEFORE["pid"]
    assert os.getcwd() == _BEFORE["cwd"]
    # torch and its OpenMP runtime add KMP_* / TORCHINDUCTOR_* to the environment on their own
    def ours(env: dict) -> dict:
        # importing ray (the Ray backend's tests run in this process) sets PYTHONBREAKPOINT for its debugger
        return {k: v for k, v in env.items()
                if k not in ("PYTEST_CURRENT_TEST", "PYTHONBREAKPOINT") and not k.startswith(("KMP_", "TORCHINDUCTOR_"))}

    assert ours(dict(os.environ)) == ours(_BEFORE["env"])
    assert torch.allclose is _BEFORE["allclose"] and np.allclose is _BEFORE["np_allclose"]
    assert torch.Tensor.__eq__ is _BEFORE["tensor_eq"]
    assert torch.allclose(torch.zeros(2), torch.zeros(2)) and not torch.allclose(torch.zeros(2), torch.ones(2))
    if _RUBRIC_HASH:
        assert _tree_hash(RUBRICS) == _RUBRIC_HASH
    for p in ("/evil", "/usr/evil", "/tmp/evil", "/tmp/pwned", "/pwned"):
        assert not Path(p).exists()
