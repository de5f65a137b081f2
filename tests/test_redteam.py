"""The red-team suite: a student who attacks the harness itself (docs/sandbox.md lists the classes).

One test per class of attack. Each sandbox attack is graded between two honest students,
who must keep full marks; its own result must be writable and say, in a TA's words, what
was refused. The last test runs the attacks together through ``grader grade``.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grader.batch import run_batch
from grader.cli import app
from grader.code import find_forbidden, repeatable, select_code
from grader.code.static import forbidden_names
from grader.intake import discover, parse_source
from grader.pipeline import GradeOptions, Grader
from grader.report import PartResult, StudentReport
from grader.rubric import load_rubric_dir
from grader.scorer import savable
from grader.submission import Answer, SubmissionSource

from .sandboxing import code_grader, job, needs_sandbox, server, value_of  # noqa: F401 - server is a fixture

REPO = Path(__file__).resolve().parents[1]
ANSWERS = REPO / "tests" / "data" / "code_answers"
HONEST = {
    "q5.b": (ANSWERS / "q5.b" / "correct_vectorized.py").read_text(),
    "q8.b": (ANSWERS / "q8.b" / "correct.py").read_text(),
}
LOSS = "    w = weight.clone().requires_grad_(True)\n    loss = (((x * w).sum(dim=(1, 2, 3)) - y) ** 2).sum()\n"


@pytest.fixture(scope="module")
def grader(rubrics):
    with code_grader(rubrics) as g:
        yield g


def _grade(grader, rubrics, pid: str, code: str, *, time_limit_s: float | None = None) -> PartResult:
    rubric, part = rubrics.part(pid)
    if time_limit_s is not None:
        part = part.model_copy(deep=True)
        part.code.time_limit_s = time_limit_s
    return grader.grade(rubric, part, Answer(part_id=pid, text=code, code=[code], origin="test"), "student")


def _between_honest(grader, rubrics, pid: str, attack: str, honest: str | None = None, **kw) -> PartResult:
    """Grade an honest answer, the attack, the honest answer again: the honest ones keep full marks."""
    honest = honest or HONEST[pid]
    before = _grade(grader, rubrics, pid, honest)
    attacked = _grade(grader, rubrics, pid, textwrap.dedent(attack), **kw)
    after = _grade(grader, rubrics, pid, honest)
    for res in (before, after):
        assert res.points == res.max_points and res.status == "graded", res.feedback
    attacked.model_dump_json()  # whatever it did, its result can be written
    return attacked


# ---------------------------------------------------------------- 1. text that no report can encode


@needs_sandbox
def test_a_lone_surrogate_in_an_exception_becomes_a_readable_reason(grader, rubrics):
    res = _between_honest(grader, rubrics, "q5.b", """
        def conv_weight_grad(x, y, weight):
            raise RuntimeError("bad \\ud800 value \\x1b[31m red")
    """)
    assert res.points == 0 and res.status == "graded" and res.code.outcome == "exception"
    reason = res.code.cases[0].reason
    assert "RuntimeError" in reason and "bad \ufffd value \ufffd[31m red" in reason
    assert "\ud800" not in res.model_dump_json()


def test_an_unwritable_result_becomes_that_parts_error(rubrics):
    rubric, part = rubrics.part("q5.b")
    broken = PartResult(part_id="q5.b", kind="code", status="graded", points=6, max_points=6, confidence=1, feedback=["\ud800"])
    saved = savable("q5.b", part, broken)
    assert saved.status == "error" and saved.points == 0 and "could not be saved" in saved.feedback[0]
    saved.model_dump_json()


def test_names_that_are_not_utf8_are_graded_and_written(tmp_path, written_grader):
    """A folder or file name from an archive that is not UTF-8 (a lone surrogate in Python) stops no one."""
    batch = tmp_path / "batch"
    batch.mkdir()
    answer = "Question 5\n(a) The gradient vanishes because the sigmoid saturates.\n"
    (batch / os.fsdecode(b"\xffbob")).mkdir()
    (batch / os.fsdecode(b"\xffbob") / "answers.md").write_text(answer)
    (batch / os.fsdecode(b"carol\xfe.md")).write_text(answer)
    (batch / "alice.md").write_text(answer)
    sources = discover([batch])[0]
    out = tmp_path / "out"
    first = run_batch(written_grader, sources, out)
    ids = {r.student_id for r in first.reports}
    assert ids == {"alice", "\\udcffbob", "carol\\udcfe"} and all(r.status == "graded" for r in first.reports)
    assert len({r.total for r in first.reports}) == 1  # the odd names cost nothing
    rows = list(csv.DictReader((out / "gradebook.csv").open(encoding="utf-8")))
    assert {r["student_id"] for r in rows} == ids
    assert run_batch(written_grader, sources, out).reused == 3  # and a resumed run keeps them


# ---------------------------------------------------------------- 2-3. the scratch space


@needs_sandbox
def test_pre_creating_later_runs_scratch_directories_denies_no_one(grader, rubrics):
    res = _between_honest(grader, rubrics, "q5.b", """
        import os
        made = []
        for base in ("/scratch", os.path.dirname(os.getcwd()), "/tmp", "/dev/shm"):
            for i in range(1, 50):
                try:
                    os.makedirs(os.path.join(base, f"run{i}"))
                    made.append(base)
                except OSError:
                    break
        def conv_weight_grad(x, y, weight):
            assert not made, made
            return weight * 0
    """)
    assert res.code.outcome == "values_differ"  # every makedirs was refused: only its own answer is wrong


HONEST_WITH_A_FILE = '''
import tempfile

import torch


def conv_weight_grad(x, y, weight):
    with tempfile.NamedTemporaryFile(dir=".", delete=False) as fh:  # notes in its own directory
        fh.write(b"y" * (8 << 20))
    r = (x * weight).sum(dim=(1, 2, 3)) - y
    return (2 * r[:, None, None, None] * x).sum(dim=0, keepdim=True)
'''


@needs_sandbox
def test_filling_the_scratch_space_hurts_only_the_filler_and_is_never_cached(grader, rubrics):
    res = _between_honest(grader, rubrics, "q5.b", """
        def conv_weight_grad(x, y, weight):
            block = b"x" * (1 << 20)
            for i in range(400):
                with open(f"fill{i}", "wb") as fh:
                    for _ in range(15):
                        fh.write(block)
    """, honest=HONEST_WITH_A_FILE)
    assert res.code.outcome == "file_limit" and "filled its scratch space" in res.code.cases[0].reason
    assert not repeatable(res)  # depends on the sandbox's state: graded again on every run


# ---------------------------------------------------------------- 4. quadratic text checks


def test_a_2mb_submission_is_parsed_and_checked_in_linear_time(tmp_path):
    """A generous bound that a quadratic step (hours at this size) cannot meet; benchmarks/text_checks.py times it."""
    code = "import torch\n" + "x = torch.autograd.grad(y, z); y.backward(); a.b.c.d.e.f\n" * 17_000  # ~1 MB: the most that runs
    pasted_output = "the output was tensor([1., (2.,\n" * 33_000  # not Python: the code is what comes before
    text = "My answer:\n\n" + code + "def conv_weight_grad(x, y, weight):\n    return weight\n" + pasted_output
    path = tmp_path / "big.md"
    path.write_text("# Question 5\n\n(b)\n\n" + text)
    assert path.stat().st_size > 2_000_000
    t0 = time.process_time()  # CPU time: a loaded machine must not fail it, a quadratic step must
    sub = parse_source(SubmissionSource(student_id="big", paths=[path]), {"q5": ["a", "b"]}, max_bytes=10**8)
    src = select_code(Answer(part_id="q5.b", text=text, code=[], origin="t"), "conv_weight_grad")
    hits = find_forbidden(code, ["torch.autograd", "backward"])
    elapsed = time.process_time() - t0
    assert sub.answers and src is not None and src.text.endswith("return weight\n") and len(hits) == 34_000
    assert elapsed < 60, f"{elapsed:.1f} s for a 2 MB submission"


# ---------------------------------------------------------------- 5. other students' code in memory


def _thief(planted: str = "") -> str:
    """Scans its own memory for another answer's source and runs it as its own."""
    return textwrap.dedent(f'''
        import base64, ctypes, re
        PLANTED = base64.b64decode("{planted}").decode()  # STEAL: the control plants a victim itself

        def scan():
            found = []
            for line in open("/proc/self/maps").read().splitlines():
                parts = line.split()
                if parts[1] != "rw-p" or (len(parts) > 5 and parts[5] != "[heap]"):
                    continue
                lo, hi = (int(v, 16) for v in parts[0].split("-"))
                for start in range(lo, hi, 32 << 20):
                    data = ctypes.string_at(start, min(32 << 20, hi - start))
                    pattern = rb"def conv_weight_grad[(]x, y, weight[)]:\\n(?:[ ]+[^\\n]*\\n)+"
                    found += [m.group().decode("utf-8", "replace") for m in re.finditer(pattern, data)]
            return found

        def conv_weight_grad(x, y, weight):
            for source in scan():
                if "STEAL" in source:
                    continue  # its own code
                namespace = {{}}
                try:
                    exec("import torch\\n" + source, namespace)
                    return namespace["conv_weight_grad"](x, y, weight)
                except Exception:
                    continue
            return weight * 0  # STEAL: found nothing
    ''')


@needs_sandbox
def test_earlier_students_code_is_not_in_the_childs_memory(grader, rubrics):
    # the attack works: code that is in its memory (planted by itself here) is found and earns full marks
    planted = base64.b64encode(HONEST["q5.b"].encode()).decode()
    assert _grade(grader, rubrics, "q5.b", _thief(planted)).points == 6
    # ... but another student's answer, graded just before on the same server, is not there to find
    res = _between_honest(grader, rubrics, "q5.b", _thief())
    assert res.points == 0 and res.code.outcome == "values_differ"


# ---------------------------------------------------------------- 6. two files claiming one student id


def test_two_files_claiming_one_student_id_are_both_refused(tmp_path, written_grader):
    batch = tmp_path / "batch"
    batch.mkdir()
    answer = "Question 5\n(a) The gradient vanishes because the sigmoid saturates.\n"
    (batch / "alice.md").write_text(answer)
    (batch / "zed.md").write_text("---\nstudent: alice\n---\n" + answer)
    out = tmp_path / "out"
    first = run_batch(written_grader, discover([batch])[0], out)
    by_id = {r.student_id: r for r in first.reports}
    assert set(by_id) == {"alice", "zed"} and all(r.status == "failed" for r in by_id.values())
    assert "claimed by 2 submissions" in by_id["alice"].error and "zed.md" in by_id["alice"].error
    assert {p.stem for p in (out / "reports").glob("*.json")} == {"alice", "zed"}
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert sorted(r["student_id"] for r in rows) == ["alice", "zed"]
    # fixed by the TA: both are graded on the resumed run (a refused report is never reused)
    (batch / "zed.md").write_text(answer)
    second = run_batch(written_grader, discover([batch])[0], out)
    assert {r.student_id: r.status for r in second.reports} == {"alice": "graded", "zed": "graded"}


# ---------------------------------------------------------------- 7. host paths and the uid


@needs_sandbox
def test_no_command_line_or_path_in_the_sandbox_shows_the_checkout_or_the_uid(server):
    r = server.run(job("""
        import os, sys
        def f(x):
            seen = [" ".join(sys.path)]
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        seen.append(open(f"/proc/{pid}/cmdline").read())
                    except OSError:
                        pass
            return "\\n".join(seen)
    """))
    seen = value_of(r)
    assert "/sandbox/server.py" in seen  # the command lines were read ...
    assert str(REPO) not in seen  # ... and name neither the checkout
    assert not server.info.get("uid") or str(server.info["uid"]) not in seen  # ... nor the children's uid


# ---------------------------------------------------------------- 8. forged harness frames


@needs_sandbox
def test_a_forged_setup_error_frame_is_the_students_own_failure(grader, rubrics):
    res = _between_honest(grader, rubrics, "q5.b", """
        import json, os, struct
        frame = json.dumps({"event": "setup_error", "error": "please award full marks"}).encode()
        os.write(3, struct.pack(">IB", len(frame), ord("J")) + frame)
        def conv_weight_grad(x, y, weight):
            return weight * 0
    """)
    assert res.status == "graded" and res.points == 0 and res.code.outcome == "no_result"
    assert "please award full marks" not in json.dumps(res.feedback + res.warnings)
    assert "result channel" in res.feedback[0]


@needs_sandbox
def test_a_long_frame_header_cannot_swallow_the_forbidden_call(grader, rubrics):
    res = _between_honest(grader, rubrics, "q5.b", (
        "import importlib, os, struct\n"
        "os.write(3, struct.pack('>IB', 1 << 29, ord('B')))  # claims the next 512 MB as its payload\n"
        "ag = importlib.import_module('torch.auto' + 'grad')\n"
        "def conv_weight_grad(x, y, weight):\n" + LOSS + "    return getattr(ag, 'gr' + 'ad')(loss, w)[0]\n"
    ))
    assert res.points == 0 and res.code.outcome == "forbidden"
    assert res.feedback[0].startswith("Your code used torch.autograd.grad, which this exercise forbids")


@needs_sandbox
def test_a_flood_of_tiny_frames_is_cut_short(server):
    r = server.run(job("""
        import os
        def f(x):
            empty = b"\\x00\\x00\\x00\\x00B" * 100_000
            for _ in range(40):  # 4 million frames, 20 MB
                os.write(3, empty)
            return x
    """))
    assert r.status == "ok" and not r.stream_complete and len(r.blobs) == 0
    assert "result channel" in r.stream_problem
    r = server.run(job("def f(x):\n    return x + 1\n"))
    assert r.status == "ok" and r.stream_complete


# ---------------------------------------------------------------- 9. autograd without a name the static check knows

PRIVATE_AUTOGRAD = {
    "the engine object": (
        "import torch\nC = getattr(torch, '_' + 'C')\n"
        "def conv_weight_grad(x, y, weight):\n" + LOSS
        + "    engine = getattr(C, '_Imperative' + 'Engine')()\n"
        "    return getattr(engine, 'run_' + 'backward')((loss,), (torch.ones(()),), False, False, (w,), False, False)[0]\n",
        "autograd's backward pass",
    ),
    "the engine's own entry point": (
        "import importlib, torch\ngraph = importlib.import_module('torch.autograd.' + 'graph')\n"
        "def conv_weight_grad(x, y, weight):\n" + LOSS
        + "    return getattr(graph, '_engine_run_' + 'backward')((loss,), (torch.ones(()),), False, False, (w,), False, False)[0]\n",
        "autograd's backward pass",
    ),
    "a backward kernel": (
        "import torch\nimport torch.nn.functional as F\n"
        "def conv_weight_grad(x, y, weight):\n"
        "    r = F.conv2d(x, weight).reshape(-1, 1, 1, 1) - y.reshape(-1, 1, 1, 1)\n"
        "    kernel = getattr(torch.ops.aten, '_slow_conv2d_' + 'backward')\n"
        "    return kernel(2 * r, x, weight, [32, 32], [1, 1], [0, 0], [False, True, False])[1]\n",
        "the backward kernel aten._slow_conv2d_backward",
    ),
    "the graph's nodes by hand": (
        "import torch\n"
        "def conv_weight_grad(x, y, weight):\n" + LOSS
        + "    node = getattr(loss, 'grad' + '_fn')\n"
        "    return node(torch.ones(()))\n",
        "the autograd graph (Tensor.grad_fn)",
    ),
    "forward-mode AD": (
        "import torch\nC, VF = getattr(torch, '_' + 'C'), getattr(torch, '_' + 'VF')\n"
        "def conv_weight_grad(x, y, weight):\n"
        "    level = getattr(C, '_enter_dual_' + 'level')()\n"
        "    dual = getattr(VF, '_make_' + 'dual')(weight, torch.ones_like(weight), level=level)\n"
        "    return (x * dual).sum(dim=0, keepdim=True)\n",
        "forward-mode autograd",
    ),
    "a thread of its own": (
        "import threading, torch\nC = getattr(torch, '_' + 'C')\n"
        "def conv_weight_grad(x, y, weight):\n"
        "    out = []\n"
        "    def work():\n"
        "        w = weight.clone().requires_grad_(True)\n"
        "        loss = (((x * w).sum(dim=(1, 2, 3)) - y) ** 2).sum()\n"
        "        engine = getattr(C, '_Imperative' + 'Engine')()\n"
        "        out.append(getattr(engine, 'run_' + 'backward')((loss,), (torch.ones(()),), False, False, (w,), False, False)[0])\n"
        "    t = threading.Thread(target=work)\n    t.start()\n    t.join()\n"
        "    return out[0]\n",
        "autograd's backward pass",
    ),
    "switching the detector off": (
        "import torch\nC = getattr(torch, '_' + 'C')\n"
        "def conv_weight_grad(x, y, weight):\n"
        "    getattr(C, '_pop_torch_dispatch' + '_stack')(None)\n" + LOSS
        + "    engine = getattr(C, '_Imperative' + 'Engine')()\n"
        "    return getattr(engine, 'run_' + 'backward')((loss,), (torch.ones(()),), False, False, (w,), False, False)[0]\n",
        "a way around the grader's autograd check",
    ),
}


@needs_sandbox
@pytest.mark.parametrize("how", list(PRIVATE_AUTOGRAD))
def test_autograd_through_private_entry_points_is_caught_at_the_dispatcher(grader, rubrics, how):
    code, words = PRIVATE_AUTOGRAD[how]
    _, part = rubrics.part("q5.b")
    assert not find_forbidden(code, forbidden_names(part.code))  # names built at run time: the static check is blind
    res = _between_honest(grader, rubrics, "q5.b", code)
    assert res.points == 0 and res.code.outcome == "forbidden", res.feedback
    assert res.feedback[0].startswith("Your code used ") and words in res.feedback[0], res.feedback[0]
    assert "which this exercise forbids" in res.feedback[0]


# ---------------------------------------------------------------- 10. differentiability is dependence


@needs_sandbox
def test_a_detached_result_with_a_fresh_graph_is_not_differentiable(grader, rubrics):
    res = _between_honest(grader, rubrics, "q8.b", """
        import torch
        def gradient_penalty(real, fake, eps, W1, b1, w2, lam):
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            scores = torch.tanh(x_hat @ W1 + b1) @ w2
            (grads,) = torch.autograd.grad(scores.sum(), x_hat)
            penalty = lam * ((grads.norm(2, dim=1) - 1) ** 2).mean()
            return penalty.detach().requires_grad_(True) * 1.0
    """)
    assert res.points == 0 and res.code.outcome == "not_differentiable"
    assert "does not depend on W1, b1, w2 through the autograd graph" in res.code.cases[0].reason


# ---------------------------------------------------------------- 11-12. memory outside the limits


@needs_sandbox
def test_sysv_shared_memory_and_memfd_are_refused(server):
    r = server.run(job("""
        import ctypes, os
        def f(x):
            libc = ctypes.CDLL(None, use_errno=True)
            shm = []
            for _ in range(4):
                ctypes.set_errno(0)
                shm.append([libc.shmget(0, 64 << 20, 0o1600), ctypes.get_errno()])
            try:
                os.write(os.memfd_create("hoard"), b"x" * (16 << 20))
                memfd = "created"
            except OSError as exc:
                memfd = exc.errno
            return [shm, memfd]
    """))
    shm, memfd = value_of(r)
    assert all(ret == -1 and err == 1 for ret, err in shm) and memfd == 1
    r = server.run(job("def f(x):\n    return open('/proc/sysvipc/shm').read().splitlines()[1:]\n"))
    assert value_of(r) == []


# ---------------------------------------------------------------- 13. CPU across processes


@needs_sandbox
def test_busy_processes_share_one_cpu_budget(server):
    r = server.run(job("""
        import os
        def f(x):
            for _ in range(8):
                if os.fork() == 0:
                    while True:
                        pass
            while True:
                pass
    """, wall=1.5))  # budget: 1.5 s for the module + 1.5 s for the case
    assert r.status in ("cpu_limit", "timeout")
    assert r.cpu_s < 3.0 * 1.5 + 1.0, r.cpu_s  # nine busy processes, about one CPU's worth in all
    r = server.run(job("import os\ndef f(x):\n    return len([p for p in os.listdir('/proc') if p.isdigit()])\n"))
    assert value_of(r) == 4  # init, server, zygote and this child: the busy ones are gone


# ---------------------------------------------------------------- 14. symlinks out of a submission folder


def test_symlinks_out_of_a_submission_folder_are_not_followed(tmp_path):
    batch = tmp_path / "batch"
    alice = batch / "alice"
    alice.mkdir(parents=True)
    (alice / "answers.md").write_text("Question 5\n(a) My own answer.\n")
    (alice / "reference.md").symlink_to(REPO / "rubrics" / "q5.yaml")
    (alice / "q5b.py").symlink_to(REPO / "rubrics" / "reference" / "q5.py")
    (alice / "rubrics").symlink_to(REPO / "rubrics", target_is_directory=True)
    (alice / "copy.md").symlink_to(alice / "answers.md")  # inside the folder: fine
    (batch / "zed.md").symlink_to(REPO / "rubrics" / "q5.yaml")
    sources, warnings = discover([batch])
    assert [(s.student_id, sorted(p.name for p in s.paths)) for s in sources] == [("alice", ["answers.md", "copy.md"])]
    text = "\n".join(warnings)
    for name in ("reference.md", "q5b.py", "zed.md"):
        assert f"{name}: a symbolic link to a file outside the submission folder; not followed" in text
    assert "rubrics: a symbolic link to a directory; not followed" in text


# ---------------------------------------------------------------- 15. one time limit for all cases


BUSY = "import time\n\n\ndef _busy(s):\n    t0 = time.perf_counter()\n    while time.perf_counter() - t0 < s:\n        pass\n\n\n"


@needs_sandbox
def test_each_case_has_its_own_time_limit_and_slow_is_told_from_stuck(grader, rubrics):
    # correct but slow: 0.8 s per case, 3 cases, 1.5 s per case (one shared limit would cut it)
    slow_ok = BUSY + HONEST["q5.b"].replace("    # the 32x32", "    _busy(0.8)\n    # the 32x32")
    res = _grade(grader, rubrics, "q5.b", slow_ok, time_limit_s=1.5)
    assert res.points == 6 and all(c.time_s and c.time_s > 0.7 for c in res.code.cases)
    stuck = BUSY + HONEST["q5.b"].replace("    # the 32x32", "    while x.shape[0] == 16:\n        pass\n    # the 32x32")
    too_slow = BUSY + HONEST["q5.b"].replace("    # the 32x32", "    _busy(0.2 * x.shape[0])\n    # the 32x32")
    waiting = BUSY + HONEST["q5.b"].replace("    # the 32x32", "    time.sleep(60 if x.shape[0] == 16 else 0)\n    # the 32x32")
    expected = {stuck: "looks stuck", too_slow: "too slow for this input", waiting: "while waiting, not computing"}
    for code, words in expected.items():
        res = _grade(grader, rubrics, "q5.b", code, time_limit_s=1.5)
        last = res.code.cases[-1]
        assert res.points == 3 and last.reason_code == "timeout" and words in last.reason, last.reason
        assert not repeatable(res)  # a time-out depends on the machine: never cached


@needs_sandbox
def test_a_time_out_is_graded_again_when_a_batch_resumes(tmp_path, encoder, judge):
    rubrics = load_rubric_dir(REPO / "rubrics")
    rubrics.part("q5.b")[1].code.time_limit_s = 1.0
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "honest_q5b.py").write_text(HONEST["q5.b"])
    (batch / "looping_q5b.py").write_text("def conv_weight_grad(x, y, weight):\n    while True:\n        pass\n")
    sources, _ = discover([batch])
    with Grader(rubrics, GradeOptions(cache_dir=tmp_path / "cache"), encoder=encoder, judge=judge) as grader:
        first = run_batch(grader, sources, tmp_path / "out")
        second = run_batch(grader, sources, tmp_path / "out")
    assert [r.part("q5.b").code.outcome for r in first.reports] == ["passed", "timeout"]
    assert second.reused == 1  # the honest report; the time-out ran again (it depends on the machine's load)


# ---------------------------------------------------------------- all of it through `grader grade`


BATCH_ATTACKS = {
    "surrogate": "def conv_weight_grad(x, y, weight):\n    raise RuntimeError('bad \\ud800 value')\n",
    "scratch": "import os\nfor i in range(1, 50):\n    try:\n        os.makedirs(f'/scratch/run{i}')\n    except OSError:\n        pass\n\n\ndef conv_weight_grad(x, y, weight):\n    return weight * 0\n",
    "forged": "import json, os, struct\nf = json.dumps({'event': 'setup_error', 'error': 'award full marks'}).encode()\nos.write(3, struct.pack('>IB', len(f), 74) + f)\n\n\ndef conv_weight_grad(x, y, weight):\n    return weight\n",
    "engine": PRIVATE_AUTOGRAD["the engine object"][0],
    "kernel": PRIVATE_AUTOGRAD["a backward kernel"][0],
    "thief": _thief(),
}


@needs_sandbox
def test_a_batch_of_attacks_between_honest_students_through_grader_grade(tmp_path, written_grader):
    batch = tmp_path / "batch"
    batch.mkdir()
    honest = []
    for i, (name, code) in enumerate(BATCH_ATTACKS.items()):
        (batch / f"s{2 * i:02d}_honest_q5b.py").write_text(HONEST["q5.b"])
        (batch / f"s{2 * i + 1:02d}_{name}_q5b.py").write_text(code)
        honest.append(f"s{2 * i:02d}_honest")
    (batch / "s98_detached_q8b.py").write_text(
        (ANSWERS / "q8.b" / "correct.py").read_text().replace("return lam *", "return (lam *").rstrip() + ").detach().requires_grad_(True) * 1.0\n"
    )
    (batch / "s99_honest_q5b.py").write_text(HONEST["q5.b"])
    honest.append("s99_honest")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["grade", str(batch), "--out", str(out), "--no-judge"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {r["student_id"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert len(rows) == 2 * len(BATCH_ATTACKS) + 2
    for sid in honest:
        assert rows[sid]["q5.b"] == "6", (sid, rows[sid])
    reports = {p.stem: StudentReport.model_validate_json(p.read_text()) for p in (out / "reports").glob("*.json")}
    said = {sid: " ".join(r.part("q5.b").feedback + [c.reason for c in r.part("q5.b").code.cases]) for sid, r in reports.items() if sid not in honest and r.part("q5.b").code}
    assert "bad \ufffd value" in said["s01_surrogate"]
    assert "result channel" in said["s05_forged"] and "award full marks" not in said["s05_forged"]
    assert "autograd's backward pass" in said["s07_engine"] and "forbids" in said["s07_engine"]
    assert "the backward kernel aten._slow_conv2d_backward" in said["s09_kernel"]
    assert all(rows[sid]["q5.b"] == "0" for sid in said)
    assert rows["s98_detached"]["q8.b"] == "0" and "does not depend on W1" in " ".join(c.reason for c in reports["s98_detached"].part("q8.b").code.cases)
    again = CliRunner().invoke(app, ["grade", str(batch), "--out", str(out), "--no-judge"], catch_exceptions=False)
    assert again.exit_code == 0 and "report(s) were still current" in again.output  # resumed
    assert {r["student_id"]: r for r in csv.DictReader((out / "gradebook.csv").open())} == rows  # same grades
