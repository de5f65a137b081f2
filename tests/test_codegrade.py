"""Code parts graded against autograd references: credit, reasons, policies, determinism.

One CodeGrader (one warm sandbox server) serves the whole module. Sample answers
live in tests/data/code_answers/<part>/ (correct*, wrong*, hostile*); the `code_batch` fixture
makes a folder of Q5 b submissions from them, one <student>_q5b.py per student.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from grader.code import CodeGrader, SandboxUnavailable, find_forbidden, make_inputs, select_code
from grader.code.sandbox import capabilities, detect
from grader.rubric import load_rubric_dir
from grader.submission import Answer

from .sandboxing import code_grader, needs_sandbox

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
ANSWERS = DATA / "code_answers"

# file -> (points, outcome) for every non-correct sample answer
EXPECTED: dict[str, dict[str, tuple[float, str]]] = {
    "q5.b": {
        "wrong_no_factor2.py": (0, "values_differ"),
        "wrong_mean.py": (1, "partial"),
        "wrong_shape.py": (0, "wrong_shape"),
        "wrong_numpy.py": (0, "wrong_type"),
        "wrong_dtype_int.py": (0, "wrong_dtype"),
        "wrong_exception.py": (1, "partial"),
        "wrong_syntax.py": (0, "syntax_error"),
        "wrong_name.py": (0, "entry_point_missing"),
        "wrong_autograd.py": (0, "forbidden"),
        "hostile_infinite_loop.py": (0, "timeout"),
        "hostile_alloc_40gb.py": (0, "memory"),
        "hostile_fork_bomb.py": (0, "process_limit"),
        "hostile_read_files.py": (0, "file_blocked"),
        "hostile_read_rubric.py": (0, "file_blocked"),
        "hostile_network.py": (0, "network_blocked"),
        "hostile_kill_parent.py": (0, "signal_blocked"),
        "hostile_stdout_flood.py": (0, "output_limit"),
        "hostile_monkeypatch.py": (0, "values_differ"),
        "hostile_write_outside.py": (0, "file_blocked"),
        "hostile_autograd_obfuscated.py": (0, "forbidden"),
    },
    "q3.b": {
        "wrong_lr_in_velocity.py": (0, "values_differ"),
        "wrong_sign.py": (0, "values_differ"),
        "wrong_uses_optim.py": (0, "forbidden"),
        "wrong_returns_param_only.py": (0, "wrong_structure"),
    },
    "q7.e": {
        "wrong_diagonal_only.py": (0, "values_differ"),
        "wrong_dim.py": (0, "values_differ"),
        "wrong_autograd.py": (0, "forbidden"),
    },
    "q8.b": {
        "wrong_no_create_graph.py": (0, "not_differentiable"),
        "wrong_global_norm.py": (1, "partial"),
        "wrong_item.py": (0, "wrong_type"),
        "wrong_backward.py": (0, "forbidden"),
    },
    "q10.d": {
        "wrong_no_relu_mask.py": (0, "values_differ"),
        "wrong_transposed_weight_grad.py": (0, "wrong_shape"),
        "wrong_bias_mean.py": (1, "partial"),
        "wrong_two_outputs.py": (0, "wrong_structure"),
    },
}

# student -> the Q5 b sample answer they hand in, in the `code_batch` folder
BATCH_FILES: dict[str, str] = {
    "alice": "correct_vectorized.py",
    "bob": "correct_loop.py",
    "carol": "correct_conv_float64.py",
    "dave": "wrong_mean.py",
    "erin": "wrong_shape.py",
    "frank": "wrong_numpy.py",
    "grace": "wrong_syntax.py",
    "heidi": "wrong_autograd.py",
    "ivan": "hostile_infinite_loop.py",
    "judy": "hostile_alloc_40gb.py",
    "mallory": "hostile_fork_bomb.py",
    "niaj": "hostile_read_rubric.py",
    "olivia": "hostile_network.py",
    "peggy": "hostile_kill_parent.py",
    "rupert": "hostile_stdout_flood.py",
    "sybil": "hostile_monkeypatch.py",
    "trent": "hostile_write_outside.py",
    "victor": "hostile_autograd_obfuscated.py",
}

# student -> (points, outcome) for the `code_batch` folder (Q5 b, 6 points)
BATCH: dict[str, tuple[float, str]] = {
    "alice": (6, "passed"),
    "bob": (6, "passed"),
    "carol": (6, "passed"),
    "dave": (1, "partial"),
    "erin": (0, "wrong_shape"),
    "frank": (0, "wrong_type"),
    "grace": (0, "syntax_error"),
    "heidi": (0, "forbidden"),
    "ivan": (0, "timeout"),
    "judy": (0, "memory"),
    "mallory": (0, "process_limit"),
    "niaj": (0, "file_blocked"),
    "olivia": (0, "network_blocked"),
    "peggy": (0, "signal_blocked"),
    "rupert": (0, "output_limit"),
    "sybil": (0, "values_differ"),
    "trent": (0, "file_blocked"),
    "victor": (0, "forbidden"),
}

FAST_TIME_LIMIT_S = 2.0  # per case: the hostile infinite loops would otherwise take the rubric's 5 s each


@pytest.fixture(scope="module")
def rubrics():
    rs = load_rubric_dir(REPO / "rubrics")
    for _, part in rs.parts():
        if part.code is not None:
            part.code.time_limit_s = min(part.code.time_limit_s, FAST_TIME_LIMIT_S)
    return rs


@pytest.fixture(scope="module")
def code_batch(tmp_path_factory) -> Path:
    """A folder of Q5 b submissions as a TA receives it: <student>_q5b.py for each student of BATCH_FILES."""
    folder = tmp_path_factory.mktemp("code_batch")
    for student, sample in BATCH_FILES.items():
        shutil.copy(ANSWERS / "q5.b" / sample, folder / f"{student}_q5b.py")
    return folder


@pytest.fixture(scope="module")
def grader(rubrics):
    with code_grader(rubrics) as g:
        yield g


def _answer(pid: str, code: str | list[str], text: str | None = None) -> Answer:
    blocks = [code] if isinstance(code, str) else code
    return Answer(part_id=pid, text=text if text is not None else "\n\n".join(blocks), code=blocks, origin="test")


def _grade(grader, rubrics, pid: str, code, text=None):
    rubric, part = rubrics.part(pid)
    return grader.grade(rubric, part, _answer(pid, code, text), "student")


def _files(prefix: str) -> list[tuple[str, str]]:
    return [(d.name, f.name) for d in sorted(ANSWERS.iterdir()) for f in sorted(d.glob(f"{prefix}*.py"))]


# ---------------------------------------------------------------------------- the rubric side


def test_every_code_part_has_a_reference_and_samples(rubrics):
    code_parts = [r.qualified(p) for r, p in rubrics.parts() if p.kind == "code"]
    assert "q5.b" in code_parts and len(code_parts) >= 4
    for pid in code_parts:
        folder = ANSWERS / pid
        assert list(folder.glob("correct*.py")), f"no correct sample for {pid}"
        assert list(folder.glob("wrong*.py")), f"no wrong sample for {pid}"
        assert pid in EXPECTED


@needs_sandbox
def test_references_run_on_every_case(grader):
    assert grader.check_references() == []


# ---------------------------------------------------------------------------- samples


@needs_sandbox
@pytest.mark.parametrize("pid,name", _files("correct"))
def test_correct_answers_get_full_credit(grader, rubrics, pid, name):
    res = _grade(grader, rubrics, pid, (ANSWERS / pid / name).read_text())
    assert res.status == "graded"
    assert res.points == res.max_points, res.feedback
    assert res.code.outcome == "passed" and all(c.passed for c in res.code.cases)
    assert res.feedback[0].startswith(f"All {len(res.code.cases)} test cases passed")
    assert res.confidence == 1.0 and not res.warnings


@needs_sandbox
@pytest.mark.parametrize("pid,name", [(p, n) for p, files in EXPECTED.items() for n in files])
def test_wrong_and_hostile_answers_get_the_right_reason(grader, rubrics, pid, name):
    points, outcome = EXPECTED[pid][name]
    res = _grade(grader, rubrics, pid, (ANSWERS / pid / name).read_text())
    assert res.status == "graded", res.warnings
    assert (res.points, res.code.outcome) == (points, outcome), (res.feedback, [c.reason for c in res.code.cases])
    assert res.feedback and all(isinstance(f, str) and f for f in res.feedback)
    if outcome == "partial":
        assert any(c.passed for c in res.code.cases) and not all(c.passed for c in res.code.cases)


@needs_sandbox
def test_feedback_reads_like_a_report(grader, rubrics):
    res = _grade(grader, rubrics, "q5.b", (ANSWERS / "q5.b" / "wrong_mean.py").read_text())
    assert res.feedback[0] == "1 of 3 test cases passed (1 of 6 points)."
    line = next(f for f in res.feedback if f.startswith("Case batch16 (N=16) failed"))
    assert "values differ" in line and "largest absolute error" in line and "largest relative error" in line
    case = next(c for c in res.code.cases if c.name == "batch16")
    assert case.max_abs_error > 1 and 0 < case.max_rel_error <= 1
    assert res.code.max_abs_error >= case.max_abs_error


# ---------------------------------------------------------------------------- policies and reasons


@needs_sandbox
def test_numpy_result_earns_no_credit_but_says_the_values_are_right(grader, rubrics):
    res = _grade(grader, rubrics, "q5.b", (ANSWERS / "q5.b" / "wrong_numpy.py").read_text())
    assert res.points == 0 and {c.reason_code for c in res.code.cases} == {"wrong_type"}
    assert "numpy.ndarray" in res.code.cases[0].reason and "values are correct" in res.code.cases[0].reason


@needs_sandbox
def test_accept_numpy_gives_credit(grader, rubrics):
    rubric, part = rubrics.part("q5.b")
    lenient = part.model_copy(deep=True)
    lenient.code.accept_numpy = True
    res = grader.grade(rubric, lenient, _answer("q5.b", (ANSWERS / "q5.b" / "wrong_numpy.py").read_text()), "s")
    assert res.points == res.max_points


@needs_sandbox
def test_dtype_policy(grader, rubrics):
    base = "import torch\ndef conv_weight_grad(x, y, weight):\n    r = (x * weight).sum(dim=(1, 2, 3)) - y\n    g = (2 * r[:, None, None, None] * x).sum(dim=0, keepdim=True)\n"
    ok64 = _grade(grader, rubrics, "q5.b", base + "    return g.double()\n")
    assert ok64.points == 6  # float64 for a float32 reference: accepted
    half = _grade(grader, rubrics, "q5.b", base + "    return g.half()\n")
    assert half.code.outcome == "wrong_dtype" and "too little precision" in half.code.cases[0].reason
    boolean = _grade(grader, rubrics, "q5.b", base + "    return g > 0\n")
    assert boolean.code.outcome == "wrong_dtype"
    rubric, part = rubrics.part("q5.b")
    strict = part.model_copy(deep=True)
    strict.code.exact_dtype = True
    res = grader.grade(rubric, strict, _answer("q5.b", base + "    return g.double()\n"), "s")
    assert res.code.outcome == "wrong_dtype" and "exactly float32" in res.code.cases[0].reason


@needs_sandbox
def test_nan_and_none_and_python_number(grader, rubrics):
    nan = _grade(grader, rubrics, "q5.b", "import torch\ndef conv_weight_grad(x, y, weight):\n    return weight / 0 * 0\n")
    assert nan.code.outcome == "nan" and "NaN" in nan.code.cases[0].reason
    none = _grade(grader, rubrics, "q5.b", "def conv_weight_grad(x, y, weight):\n    g = 2 * x\n")
    assert none.code.outcome == "wrong_type" and "forget `return`" in none.code.cases[0].reason
    num = _grade(grader, rubrics, "q5.b", "def conv_weight_grad(x, y, weight):\n    return 0.0\n")
    assert num.code.outcome == "wrong_type" and "Python float" in num.code.cases[0].reason


@needs_sandbox
def test_exception_reports_type_message_and_line(grader, rubrics):
    res = _grade(grader, rubrics, "q5.b", (ANSWERS / "q5.b" / "wrong_exception.py").read_text())
    case = next(c for c in res.code.cases if c.name == "batch4")
    assert case.reason_code == "exception"
    assert "RuntimeError" in case.reason and "line 8" in case.reason and "cannot be converted" in case.reason
    assert "RuntimeError" in case.stderr_tail and "line 8" in case.stderr_tail


@needs_sandbox
def test_syntax_error_reports_the_line_and_runs_nothing(grader, rubrics):
    res = _grade(grader, rubrics, "q5.b", (ANSWERS / "q5.b" / "wrong_syntax.py").read_text())
    assert res.code.outcome == "syntax_error" and res.code.wall_s is None
    assert "line 4" in res.feedback[0] and "expected ':'" in res.feedback[0]


@needs_sandbox
def test_error_in_module_code_fails_every_case(grader, rubrics):
    res = _grade(grader, rubrics, "q5.b", "import torch\nfoo = undefined_name\ndef conv_weight_grad(x, y, weight):\n    return weight\n")
    assert res.code.outcome == "load_error" and res.points == 0
    assert "NameError" in res.feedback[0] and "line 2" in res.feedback[0]


@needs_sandbox
def test_forbidden_runtime_call_costs_the_whole_part(grader, rubrics):
    # one case computes by hand (would pass), another sneaks autograd in
    code = (
        "import importlib\n"
        "def conv_weight_grad(x, y, weight):\n"
        "    r = (x * weight).sum(dim=(1, 2, 3)) - y\n"
        "    if x.shape[0] == 16:\n"
        "        getattr(importlib.import_module('torch.' + 'autograd'), 'gr' + 'ad')\n"
        "        w = weight.clone().requires_grad_(True)\n"
        "        return getattr(importlib.import_module('torch.' + 'autograd'), 'gr' + 'ad')((((x * w).sum(dim=(1, 2, 3)) - y) ** 2).sum(), w)[0]\n"
        "    return (2 * r[:, None, None, None] * x).sum(dim=0, keepdim=True)\n"
    )
    res = _grade(grader, rubrics, "q5.b", code)
    assert res.points == 0 and res.code.outcome == "forbidden"
    assert res.code.forbidden_calls == ["torch.autograd.grad"]
    assert "forbids" in res.feedback[0]


@needs_sandbox
def test_missing_and_codeless_answers(grader, rubrics):
    rubric, part = rubrics.part("q5.b")
    res = grader.grade(rubric, part, None, "s")
    assert res.status == "missing" and res.points == 0 and res.code.outcome == "missing"
    res = grader.grade(rubric, part, Answer(part_id="q5.b", text="I did not manage this one.", code=[], origin="t"), "s")
    assert res.status == "graded" and res.code.outcome == "no_code" and "No Python code" in res.feedback[0]


@needs_sandbox
def test_code_in_plain_text_and_split_cells(grader, rubrics):
    text = "My answer:\n\nimport torch\n\ndef conv_weight_grad(x, y, weight):\n    r = (x * weight).sum(dim=(1, 2, 3)) - y\n    return (2 * r[:, None, None, None] * x).sum(dim=0, keepdim=True)\n"
    res = grader.grade(*rubrics.part("q5.b"), Answer(part_id="q5.b", text=text, code=[], origin="t"), "s")
    assert res.points == 6
    cells = [
        "%matplotlib inline\nimport torch",
        "def residual(x, y, weight):\n    return (x * weight).sum(dim=(1, 2, 3)) - y",
        "The output was:\n  tensor([1., 2.])",
        "def conv_weight_grad(x, y, weight):\n    return (2 * residual(x, y, weight)[:, None, None, None] * x).sum(dim=0, keepdim=True)",
    ]
    res = _grade(grader, rubrics, "q5.b", cells)
    assert res.points == 6 and any("code block(s) 3" in f for f in res.feedback)


@needs_sandbox
def test_line_numbers_point_into_the_right_block(grader, rubrics):
    cells = ["import torch", "def conv_weight_grad(x, y, weight):\n    raise ValueError('boom')"]
    res = _grade(grader, rubrics, "q5.b", cells)
    assert "line 2 of code block 2" in res.code.cases[0].reason


@needs_sandbox
def test_near_tolerance_lowers_confidence(grader, rubrics):
    # perturb by ~1x the tolerance
    code = (
        "import torch\n"
        "def conv_weight_grad(x, y, weight):\n"
        "    r = (x * weight).sum(dim=(1, 2, 3)) - y\n"
        "    g = (2 * r[:, None, None, None] * x).sum(dim=0, keepdim=True)\n"
        "    return g + 0.8e-4\n"
    )
    res = _grade(grader, rubrics, "q5.b", code)
    assert res.confidence < 1.0 and res.warnings


# ---------------------------------------------------------------------------- determinism and API


def test_inputs_are_seeded(rubrics):
    _, part = rubrics.part("q5.b")
    case = part.code.cases[1]
    a, b = make_inputs(part.code, case), make_inputs(part.code, case)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert a[0].shape == (4, 1, 32, 32) and a[0].dtype == torch.float32
    other = make_inputs(part.code, part.code.cases[2])
    assert other[0].shape[0] == 16 and not torch.equal(other[2], a[2])


@needs_sandbox
def test_regrade_is_identical(grader, rubrics):
    code = (ANSWERS / "q5.b" / "wrong_mean.py").read_text()

    def stable(res):
        d = res.model_dump()
        d["code"].pop("wall_s")
        for c in d["code"]["cases"]:
            c.pop("time_s")
        return d

    first = _grade(grader, rubrics, "q5.b", code)
    with CodeGrader(load_rubric_dir(REPO / "rubrics")) as fresh:  # new server, new reference cache
        second = _grade(fresh, rubrics, "q5.b", code)
    assert stable(first) == stable(second)


@needs_sandbox
def test_submit_returns_at_once_and_overlaps(grader, rubrics):
    rubric, part = rubrics.part("q5.b")
    slow = grader.submit(rubric, part, _answer("q5.b", (ANSWERS / "q5.b" / "hostile_infinite_loop.py").read_text()), "s1")
    fast = grader.submit(rubric, part, _answer("q5.b", (ANSWERS / "q5.b" / "correct_vectorized.py").read_text()), "s2")
    assert not slow.done()  # submit returned while the infinite loop still runs (it takes the 2 s time limit)
    assert slow.result().code.outcome == "timeout" and fast.result().points == 6


@needs_sandbox
def test_batch_folder(grader, rubrics, code_batch):
    """`grader grade` on a folder mixing correct, wrong and hostile Q5 b answers."""
    from grader.intake import discover, parse_source

    layout = {r.id: [p.id for p in r.parts] for r in rubrics.rubrics}
    sources, _ = discover([code_batch])
    assert {s.student_id for s in sources} == set(BATCH)
    rubric, part = rubrics.part("q5.b")
    futures = {}
    for src in sources:
        sub = parse_source(src, layout)
        futures[src.student_id] = grader.submit(rubric, part, sub.answer("q5.b"), src.student_id)
    got = {sid: (f.result().points, f.result().code.outcome) for sid, f in futures.items()}
    assert got == BATCH
    # the grader process is fine and still grades
    assert _grade(grader, rubrics, "q5.b", (ANSWERS / "q5.b" / "correct_loop.py").read_text()).points == 6


@needs_sandbox
def test_code_workers_run_one_sandbox_server_each(rubrics):
    """GradeOptions.code_workers: N worker threads, each with its own warm server, grading side by side."""
    rubric, part = rubrics.part("q5.b")
    correct = (ANSWERS / "q5.b" / "correct_vectorized.py").read_text()
    slow = correct.replace("    # the 32x32", "    __import__('time').sleep(0.3)\n    # the 32x32")
    with CodeGrader(rubrics, workers=2) as g:
        futures = [g.submit(rubric, part, _answer("q5.b", slow), f"s{i}") for i in range(4)]
        assert [f.result().points for f in futures] == [6, 6, 6, 6]
        servers = {s.pid for s in g._servers._servers}
    assert len(servers) == 2


def test_unsandboxed_needs_the_flag_and_is_loud(rubrics, monkeypatch):
    monkeypatch.setattr(capabilities, "_find_bwrap", lambda: None)
    try:
        detect(refresh=True)
        with pytest.raises(SandboxUnavailable, match="apt-get install -y bubblewrap"):
            CodeGrader(rubrics)
        with CodeGrader(rubrics, allow_unsandboxed=True) as g:
            res = _grade(g, rubrics, "q5.b", (ANSWERS / "q5.b" / "correct_vectorized.py").read_text())
        assert res.points == 6
        assert any("UNSANDBOXED" in w for w in res.warnings) and "UNSANDBOXED" in res.code.sandbox
    finally:
        monkeypatch.undo()
        detect(refresh=True)


# ---------------------------------------------------------------------------- static helpers (no sandbox)


@pytest.mark.parametrize(
    "code,found",
    [
        ("import torch\ndef f(x):\n    return torch.autograd.grad(x, x)\n", ["torch.autograd.grad"]),
        ("import torch as T\ndef f(x):\n    return T.autograd.grad(x, x)\n", ["torch.autograd.grad"]),
        ("from torch.autograd import grad as g\n", ["torch.autograd.grad"]),
        ("from torch import autograd\nautograd.grad(1, 2)\n", ["torch.autograd", "torch.autograd.grad"]),
        ("def f(loss):\n    loss.backward()\n", ["loss.backward"]),
        ("def f(x):\n    x.sum().backward()\n", [".backward"]),
        ("import torch\nag = torch.autograd\n", ["torch.autograd"]),
        ("import torch\nh = getattr(torch, 'autograd')\n", ["torch.autograd"]),
        ("m = __import__('functorch')\n", ["functorch"]),
        ("import functorch.dim\n", ["functorch.dim"]),
        ("import torch\nwith torch.autograd.no_grad():\n    pass\n", []),
        ("import torch\ndef f(x):\n    return torch.no_grad\n", []),
        ("def backward_pass(x):\n    return x  # backward in a comment\n", []),
        ("'''torch.autograd.grad in a docstring'''\n", []),
    ],
)
def test_find_forbidden(code, found):
    hits = [name for name, _ in find_forbidden(code, ["torch.autograd", "backward", "torch.func", "functorch"])]
    assert sorted(set(hits)) == sorted(found)


def test_find_forbidden_raises_on_syntax_error():
    with pytest.raises(SyntaxError):
        find_forbidden("def f(:\n", ["backward"])


def test_select_code_joins_blocks_and_maps_lines():
    ans = Answer(part_id="q5.b", text="", code=["import torch\n", "x = 1\ny = 2", "!pip install foo\ndef f(): pass"], origin="t")
    src = select_code(ans, "f")
    assert "pass  # notebook magic removed" in src.text
    compile(src.text, "s", "exec")
    assert src.where(1) == "line 1 of code block 1"
    assert src.where(4) == "line 2 of code block 2"
    assert src.where(6) == "line 1 of code block 3"
    assert select_code(Answer(part_id="q5.b", text="no code here", code=[], origin="t"), "f") is None


def test_code_in_plain_text_ends_where_the_prose_starts():
    def selected(text: str) -> str | None:
        src = select_code(Answer(part_id="q5.b", text=text, code=[], origin="t"), "f")
        return None if src is None else src.text

    text = "My answer:\nimport torch\ndef f(x):\n    return g(x)\n\n@torch.no_grad()\ndef g(x):\n    return {\n    'x': x,\n}['x']\nThe output was (1, 2\n"
    assert selected(text) == "import torch\ndef f(x):\n    return g(x)\n\n@torch.no_grad()\ndef g(x):\n    return {\n    'x': x,\n}['x']\n"
    assert selected("def f(x):\n    return x +\n") is None


def test_code_section_limits_and_autograd_switch_are_validated(rubrics):
    from pydantic import ValidationError

    from grader.rubric import CodeSpec

    _, part = rubrics.part("q8.b")
    data = part.code.model_dump()
    assert part.code.forbid_autograd is False and rubrics.part("q5.b")[1].code.forbid_autograd is True
    with pytest.raises(ValidationError, match="cannot go with forbid_autograd"):
        CodeSpec.model_validate(data | {"forbid_autograd": True})
    with pytest.raises(ValidationError, match="less than or equal to 300"):
        CodeSpec.model_validate(data | {"cases": [data["cases"][0] | {"time_limit_s": 301}], "time_limit_s": 5})
    spec = CodeSpec.model_validate(data | {"forbidden": ["torch.autograd"], "output_requires_grad": False, "forbid_autograd": None})
    assert spec.forbid_autograd is True  # the default follows `forbidden`
