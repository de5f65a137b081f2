"""Grade code parts: run the student's function in the sandbox, compare with an autograd reference.

Flow for one answer (``CodeGrader.submit``):

1. **Pick the code.** All of the answer's code blocks (fenced blocks, notebook
   cells, or the part's ``.py`` file) are joined in order, as a notebook would run
   them: students split helpers and the entry point across cells. IPython magics
   (``%time``, ``!pip``) become ``pass``. A block that is not valid Python on its
   own (pasted output, pseudo-code) is dropped, with a note, when another block
   defines the entry point. With no code block at all, an answer whose text is
   valid Python (or has a ``def`` of the entry point) is used as code.
2. **Static checks** (grader process, ``ast``): syntax errors (with the line) and
   forbidden calls (``torch.autograd.grad``, ``.backward()``, ...) including
   aliases, ``from`` imports, ``getattr(torch, "autograd")`` and ``__import__``.
   Either ends grading: a forbidden call earns 0 for the part.
3. **Run** in a warm sandbox server (grader/sandbox.py): one forked, locked-down
   child per answer calls the entry point once per case, on the seeded inputs,
   with a runtime guard that makes the forbidden functions raise.
4. **Compare** in the grader process, after the child is gone, on ``.npy`` data
   read without pickle: structure, type, shape, dtype, NaN/inf, then values with
   ``torch.allclose`` semantics (``|a - b| <= atol + rtol * |b|``, b the reference).

Reference outputs come from the rubric's reference file (trusted, written with
autograd) run in this process on the same seeded inputs, and are cached per
(part, case); a regrade draws the same inputs and gives the same result.

Type and dtype policy (also in docs/sandbox.md):

* A torch.Tensor is required. A numpy array earns no credit for the case unless
  the rubric sets ``accept_numpy: true``; the feedback says whether its values
  were right. Python numbers, lists and None are wrong types.
* A floating reference output accepts float32 or float64 (compared in float64)
  unless ``exact_dtype``; float16/bfloat16 (too little precision), integer, bool
  and complex outputs are wrong dtypes. Integer/bool references need an integer
  (bool) output and exact equality.
* By default the reference also runs on float64 copies of the inputs and those
  values are the target, so the tolerance only has to absorb the student's
  float32 rounding, not the reference's.
"""

from __future__ import annotations

import ast
import concurrent.futures
import difflib
import hashlib
import importlib.util
import io
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.report import CodeCaseResult, CodeResult, PartResult
from grader.rubric import CodeCase, CodeSpec, Part, Rubric, RubricSet, TensorInput
from grader.sandbox import (
    EXIT_RESULT_CHANNEL,
    Arg,
    Job,
    JobCase,
    Limits,
    RunResult,
    SandboxServer,
    SandboxUnavailable,
    detect,
    require_sandbox,
)
from grader.submission import Answer

__all__ = [
    "CodeGrader",
    "SandboxUnavailable",
    "find_forbidden",
    "make_inputs",
    "select_code",
    "UNSANDBOXED_WARNING",
]

MAX_CODE_BYTES = 1_000_000

UNSANDBOXED_WARNING = (
    "UNSANDBOXED: this code ran WITHOUT isolation (--allow-unsandboxed): it could read files, "
    "use the network and interfere with the grader. Only resource limits applied."
)

# Names under a forbidden module that do not compute gradients (static check only; the
# runtime guard leaves classes such as no_grad alone anyway).
_HARMLESS = {
    "torch.autograd.no_grad",
    "torch.autograd.enable_grad",
    "torch.autograd.set_grad_enabled",
    "torch.autograd.grad_mode",
    "torch.autograd.Variable",
    "torch.autograd.inference_mode",
}


# ----------------------------------------------------------------------------------------
# Picking the code
# ----------------------------------------------------------------------------------------


@dataclass
class SourceCode:
    """The program to run, and how its lines map back to the student's blocks."""

    text: str
    blocks: list[tuple[int, int]]  # (first line in text, number of lines), one per kept block
    block_ids: list[int]  # 1-based index in the answer of each kept block
    notes: list[str] = field(default_factory=list)
    origin: str = "code blocks"

    def where(self, line: int | None) -> str:
        if line is None:
            return "(line unknown)"
        if len(self.blocks) <= 1:
            return f"line {line}"
        for (start, n), bid in zip(self.blocks, self.block_ids):
            if start <= line < start + n:
                return f"line {line - start + 1} of code block {bid}"
        return f"line {line}"


_MAGIC = re.compile(r"^(\s*)[%!].*$")


def _strip_magics(block: str) -> str:
    return "\n".join(_MAGIC.sub(lambda m: m.group(1) + "pass  # notebook magic removed", ln) for ln in block.splitlines())


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError):
        return False


def _defines(text: str, name: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(|^\s*{re.escape(name)}\s*=", text, re.M) is not None


def select_code(answer: Answer, entry_point: str) -> SourceCode | None:
    """Join the answer's code blocks into one program (see module docstring); None if it has no code."""
    blocks = [_strip_magics(b) for b in answer.code if b and b.strip()]
    origin = "code blocks"
    if not blocks:
        text = answer.text or ""
        if text.strip() and _parses(text) and _defines(text, entry_point):
            blocks, origin = [text], "answer text"
        else:
            m = re.search(rf"^[ \t]*(import |from |def {re.escape(entry_point)}\b)", text, re.M)
            if m and _defines(text, entry_point):
                tail = text[m.start() :]
                lines = tail.splitlines()
                for end in range(len(lines), 0, -1):  # longest prefix that parses
                    cand = "\n".join(lines[:end])
                    if _defines(cand, entry_point) and _parses(cand):
                        blocks, origin = [cand], "answer text"
                        break
    if not blocks:
        return None
    ids = list(range(1, len(blocks) + 1))
    notes: list[str] = []
    if len(blocks) > 1 and not _parses("\n\n".join(blocks)):
        good = [(i, b) for i, b in zip(ids, blocks) if _parses(b)]
        if good and any(_defines(b, entry_point) for _, b in good) and len(good) < len(blocks):
            dropped = [i for i in ids if i not in {g for g, _ in good}]
            notes.append(
                "code block(s) " + ", ".join(map(str, dropped)) + " are not valid Python on their own and were ignored"
            )
            ids, blocks = [g for g, _ in good], [b for _, b in good]
    spans = []
    line = 1
    parts = []
    for b in blocks:
        b = b.rstrip("\n")
        n = b.count("\n") + 1
        spans.append((line, n))
        parts.append(b)
        line += n + 1  # blank separator line
    return SourceCode("\n\n".join(parts) + "\n", spans, ids, notes, origin)


# ----------------------------------------------------------------------------------------
# Static check for forbidden calls
# ----------------------------------------------------------------------------------------


def _forbidden_match(dotted: str, forbidden: list[str]) -> str | None:
    if dotted in _HARMLESS or any(dotted.startswith(h + ".") for h in _HARMLESS):
        return None
    parts = dotted.split(".")
    for f in forbidden:
        if "." in f:
            if dotted == f or dotted.startswith(f + "."):
                return f
        elif f in parts:
            return f
    return None


def find_forbidden(code: str, forbidden: list[str]) -> list[tuple[str, int]]:
    """Forbidden names the code uses, as (what, line). Raises SyntaxError if the code does not parse.

    Catches direct use (``torch.autograd.grad``), aliases (``import torch as T``,
    ``from torch import autograd as ag``), attribute access on any object for bare
    names (``loss.backward()``), and string look-ups (``getattr(torch, "autograd")``,
    ``__import__("functorch")``, ``importlib.import_module(...)``). It cannot see
    names assembled at run time; the runtime guard is the second line.
    """
    if not forbidden:
        return []
    tree = ast.parse(code)
    aliases: dict[str, str] = {}
    hits: dict[tuple[str, int], None] = {}

    def hit(dotted: str, line: int) -> None:
        f = _forbidden_match(dotted, forbidden)
        if f is not None:
            hits[(dotted, line)] = None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                hit(a.name, node.lineno)
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            hit(node.module, node.lineno)
            for a in node.names:
                full = f"{node.module}.{a.name}"
                hit(full, node.lineno)
                aliases[a.asname or a.name] = full

    def dotted_of(node: ast.AST) -> str | None:
        chain: list[str] = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            base = aliases.get(node.id, node.id)
            return ".".join([base, *reversed(chain)])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            inner = _getattr_dotted(node)
            if inner:
                return ".".join([inner, *reversed(chain)])
        return "?." + ".".join(reversed(chain)) if chain else None

    def _getattr_dotted(call: ast.Call) -> str | None:
        if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str):
            base = dotted_of(call.args[0]) or "?"
            return f"{base}.{call.args[1].value}"
        return None

    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if id(node) in inner:  # judge only the whole chain: torch.autograd.no_grad, not torch.autograd
                continue
            d = dotted_of(node)
            if d:
                hit(d, node.lineno)
        elif isinstance(node, ast.Name) and node.id in aliases and isinstance(node.ctx, ast.Load):
            hit(aliases[node.id], node.lineno)
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name == "getattr":
                d = _getattr_dotted(node)
                if d:
                    hit(d, node.lineno)
            elif name in ("__import__", "import_module") and node.args:
                a0 = node.args[0]
                if isinstance(a0, ast.Constant) and isinstance(a0.value, str):
                    hit(a0.value, node.lineno)
    # report the most specific name per line once
    out: list[tuple[str, int]] = []
    for dotted, line in hits:
        if any(o_line == line and (o.startswith(dotted + ".")) for o, o_line in hits):
            continue
        out.append((dotted.replace("?.", "."), line))
    return sorted(set(out), key=lambda t: (t[1], t[0]))


# ----------------------------------------------------------------------------------------
# Inputs and reference
# ----------------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def make_inputs(spec: CodeSpec, case: CodeCase) -> list[Any]:
    """The case's arguments, drawn from a generator seeded with the case's seed (same on every regrade)."""
    torch = _torch()
    g = torch.Generator().manual_seed(int(case.seed))
    values: list[Any] = []
    for inp in spec.inputs:
        shape = [case.dims[d] if isinstance(d, str) else d for d in inp.shape]
        if inp.value is not None:
            values.append(int(inp.value) if inp.dtype in ("int64", "int32") else bool(inp.value) if inp.dtype == "bool" else float(inp.value))
            continue
        if inp.dtype in ("float32", "float64"):
            u = torch.rand(shape, generator=g, dtype=torch.float64)
            t = (u * (inp.high - inp.low) + inp.low).to(getattr(torch, inp.dtype))
        elif inp.dtype in ("int64", "int32"):
            lo, hi = math.ceil(inp.low), math.floor(inp.high)
            t = torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(getattr(torch, inp.dtype))
        else:
            t = torch.rand(shape, generator=g, dtype=torch.float64) < 0.5
        if inp.scalar:
            values.append(t.item())
        else:
            values.append(t)
    return values


def _fresh(value: Any, inp: TensorInput, to64: bool = False) -> Any:
    torch = _torch()
    if not isinstance(value, torch.Tensor):
        return value
    t = value.detach().clone()
    if to64 and t.is_floating_point():
        t = t.to(torch.float64)
    if inp.requires_grad:
        t.requires_grad_(True)
    return t


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@dataclass
class _Leaf:
    name: str
    dtype: str  # torch dtype name of the reference output on the declared inputs
    shape: tuple[int, ...]
    values: np.ndarray  # float64 (or int64/bool) target values


@dataclass
class _Expected:
    leaves: list[_Leaf]
    is_tuple: bool


@dataclass
class _PreparedCase:
    case: CodeCase
    args: list[Arg]
    expected: _Expected | None
    error: str | None = None


class ReferenceError_(Exception):
    """The reference implementation failed: a rubric problem, not the student's."""


def _load_reference(path: Path, function: str):
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_grader_reference_{digest}", path)
    if spec is None or spec.loader is None:
        raise ReferenceError_(f"cannot load reference file {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ReferenceError_(f"reference file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ReferenceError_(f"reference file {path} defines no function {function!r}")
    return fn


def _leaves_of(out: Any, names: list[str]) -> _Expected:
    torch = _torch()
    if isinstance(out, torch.Tensor):
        items, is_tuple = [out], False
    elif isinstance(out, (tuple, list)) and out and all(isinstance(x, torch.Tensor) for x in out):
        items, is_tuple = list(out), True
    else:
        raise ReferenceError_(f"the reference must return a tensor or a tuple of tensors, not {type(out).__name__}")
    leaves = []
    for i, t in enumerate(items):
        name = names[i] if i < len(names) else (f"output {i + 1}" if is_tuple else "output")
        t = t.detach().cpu()
        arr = t.numpy() if t.dtype not in (torch.bfloat16, torch.float16) else t.float().numpy()
        if t.is_floating_point():
            arr = arr.astype(np.float64)
        leaves.append(_Leaf(name, str(t.dtype).replace("torch.", ""), tuple(t.shape), arr))
    return _Expected(leaves, is_tuple)


# ----------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------


@dataclass
class _Verdict:
    ok: bool
    code: str
    message: str
    max_abs: float | None = None
    max_rel: float | None = None
    ratio: float | None = None  # worst |a-b| / tolerance


def _fmt_shape(shape: Any) -> str:
    shape = tuple(shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _fmt_index(idx: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, idx)) + ")" if idx else "()"


def _load_npy(blob: bytes) -> np.ndarray:
    arr = np.load(io.BytesIO(blob), allow_pickle=False)
    if not isinstance(arr, np.ndarray):
        raise ValueError("not an array")
    return arr


def _float_kind(dtype: str) -> str:
    if dtype in ("float32", "float64"):
        return "float"
    if dtype in ("float16", "bfloat16", "half"):
        return "half"
    if dtype.startswith("complex"):
        return "complex"
    if dtype == "bool":
        return "bool"
    if dtype.startswith("int") or dtype.startswith("uint"):
        return "int"
    return "other"


def _compare_values(a: np.ndarray, leaf: _Leaf, spec: CodeSpec, label: str) -> _Verdict:
    b = leaf.values
    exact = _float_kind(leaf.dtype) in ("int", "bool")
    if exact:
        a64, b64 = a.astype(np.int64), b.astype(np.int64)
        diff = np.abs(a64 - b64)
        n_bad = int((diff != 0).sum())
        if n_bad:
            idx = np.unravel_index(int(diff.argmax()), diff.shape) if diff.ndim else ()
            return _Verdict(False, "values_differ", f"{label}{n_bad} of {diff.size} values differ from the reference (e.g. at index {_fmt_index(tuple(int(i) for i in idx))})", float(diff.max()), None, math.inf)
        return _Verdict(True, "ok", "ok", 0.0, 0.0, 0.0)
    a = a.astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a & ~nan_b).any():
        n = int((nan_a & ~nan_b).sum())
        idx = tuple(int(i) for i in np.argwhere(nan_a & ~nan_b)[0]) if a.ndim else ()
        return _Verdict(False, "nan", f"{label}contains NaN in {n} of {a.size} entries (first at index {_fmt_index(idx)}); check for a division by zero or log of a non-positive number", math.nan, math.nan, math.inf)
    inf_bad = np.isinf(a) & ~(a == b)
    if inf_bad.any():
        n = int(inf_bad.sum())
        return _Verdict(False, "inf", f"{label}contains infinite values in {n} of {a.size} entries (overflow?)", math.inf, math.inf, math.inf)
    finite = np.isfinite(a) & np.isfinite(b)
    diff = np.where(finite, np.abs(a - b), 0.0)
    tol = spec.atol + spec.rtol * np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_arr = np.where(finite, diff / np.where(tol > 0, tol, np.inf), 0.0)
        rel_arr = np.where(finite, diff / np.maximum(np.abs(b), max(spec.atol, 1e-300)), 0.0)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float(rel_arr.max()) if rel_arr.size else 0.0
    worst = float(ratio_arr.max()) if ratio_arr.size else 0.0
    if diff.size and (diff > tol).any():
        n_bad = int((diff > tol).sum())
        idx = np.unravel_index(int(diff.argmax()), diff.shape) if diff.ndim else ()
        idx = tuple(int(i) for i in idx)
        ref_v, got_v = float(b[idx]) if b.ndim else float(b), float(a[idx]) if a.ndim else float(a)
        return _Verdict(
            False,
            "values_differ",
            f"{label}values differ from the reference in {n_bad} of {diff.size} entries: largest absolute error "
            f"{max_abs:.2g} at index {_fmt_index(idx)} (yours {got_v:.6g}, expected {ref_v:.6g}), largest relative error "
            f"{max_rel:.2g} (allowed: {spec.atol:g} + {spec.rtol:g} x |expected|)",
            max_abs,
            max_rel,
            worst,
        )
    return _Verdict(True, "ok", "ok", max_abs, max_rel, worst)


def _compare_leaf(desc: dict, blobs: list[bytes], base: int, leaf: _Leaf, spec: CodeSpec, label: str) -> _Verdict:
    kind = desc.get("type")
    exp = f"a torch.Tensor of shape {_fmt_shape(leaf.shape)}"
    if kind == "none":
        return _Verdict(False, "wrong_type", f"{label}returned None instead of {exp}; did you forget `return`?")
    if kind in ("float", "int", "bool"):
        return _Verdict(False, "wrong_type", f"{label}returned a Python {kind} instead of {exp} (do not call .item() or float())")
    if kind in ("tuple", "list"):
        n = len(desc.get("items") or []) if desc.get("items") is not None else desc.get("length")
        return _Verdict(False, "wrong_type", f"{label}returned a {kind} of {n} items instead of {exp}")
    if kind in ("dict", "other", "str"):
        what = {"dict": "a dict", "str": "a string"}.get(kind) or f"an object of type {desc.get('pytype')}"
        return _Verdict(False, "wrong_type", f"{label}returned {what} instead of {exp}")
    if kind not in ("tensor", "ndarray"):
        return _Verdict(False, "wrong_type", f"{label}returned something unexpected instead of {exp}")
    if desc.get("error") or not isinstance(desc.get("blob"), int):
        return _Verdict(False, "wrong_type", f"{label}returned a {kind} that cannot be read ({desc.get('error', 'no data')}); expected {exp}")
    try:
        arr = _load_npy(blobs[base + desc["blob"]])
    except Exception as exc:  # noqa: BLE001 - student-controlled bytes
        return _Verdict(False, "unreadable", f"{label}the returned data could not be read ({type(exc).__name__}); expected {exp}")
    dtype = str(desc.get("dtype") if kind == "tensor" else arr.dtype)
    shape = tuple(desc.get("shape") if kind == "tensor" else arr.shape)
    if tuple(arr.shape) != shape:
        return _Verdict(False, "unreadable", f"{label}the returned data is inconsistent (shape {tuple(arr.shape)} vs {shape})")
    numpy_note = None
    if kind == "ndarray":
        numpy_note = f"{label}returned a numpy.ndarray; the function must return a torch.Tensor (convert with torch.from_numpy)"
    if shape != leaf.shape:
        hint = ""
        if len(shape) == 2 and shape == leaf.shape[::-1]:
            hint = " (transposed?)"
        elif int(np.prod(shape)) == int(np.prod(leaf.shape)):
            hint = " (same number of elements: reshape it)"
        elif len(shape) == len(leaf.shape) - 1 or (leaf.shape[:1] == (1,) and shape == leaf.shape[1:]):
            hint = " (a dimension is missing, e.g. keepdim=True or unsqueeze)"
        msg = f"{label}wrong shape: got {_fmt_shape(shape)}, expected {_fmt_shape(leaf.shape)}{hint}"
        return _Verdict(False, "wrong_shape", (numpy_note + "; also " + msg[len(label):]) if numpy_note and not spec.accept_numpy else msg)
    want, got = _float_kind(leaf.dtype), _float_kind(dtype)
    dtype_msg = None
    if spec.exact_dtype and dtype != leaf.dtype:
        dtype_msg = f"{label}wrong dtype: got {dtype}, expected exactly {leaf.dtype}"
    elif want == "float" and got != "float":
        extra = " (too little precision)" if got == "half" else ""
        dtype_msg = f"{label}wrong dtype: got {dtype}{extra}, expected a floating-point tensor ({leaf.dtype})"
    elif want in ("int", "bool") and got != want:
        dtype_msg = f"{label}wrong dtype: got {dtype}, expected {leaf.dtype}"
    if dtype_msg:
        return _Verdict(False, "wrong_dtype", dtype_msg)
    verdict = _compare_values(arr, leaf, spec, label)
    if numpy_note and not spec.accept_numpy:
        verdict.ok = False
        verdict.code = "wrong_type"
        verdict.message = numpy_note + (" (its values are correct)" if verdict.message == "ok" else "; also " + verdict.message[len(label):])
        return verdict
    if verdict.ok and spec.output_requires_grad and kind == "tensor" and not desc.get("has_grad_fn"):
        return _Verdict(
            False,
            "not_differentiable",
            f"{label}the values are right but the result is detached from the autograd graph, so it cannot be "
            "back-propagated (use create_graph=True and avoid .detach()/.item())",
            verdict.max_abs,
            verdict.max_rel,
            verdict.ratio,
        )
    return verdict


def _compare_output(desc: dict, blobs: list[bytes], base: int, exp: _Expected, spec: CodeSpec) -> list[_Verdict]:
    if not exp.is_tuple:
        return [_compare_leaf(desc, blobs, base, exp.leaves[0], spec, "")]
    names = ", ".join(l.name for l in exp.leaves)
    k = len(exp.leaves)
    if desc.get("type") not in ("tuple", "list"):
        what = {"tensor": "a single tensor", "ndarray": "a single numpy array", "none": "None"}.get(desc.get("type", ""), f"a {desc.get('type')}")
        return [_Verdict(False, "wrong_structure", f"returned {what}; expected a tuple of {k} tensors ({names})")]
    items = desc.get("items")
    if items is None or len(items) != k:
        n = len(items) if items is not None else desc.get("length")
        return [_Verdict(False, "wrong_structure", f"returned {n} values; expected a tuple of {k} tensors ({names})")]
    return [_compare_leaf(d, blobs, base, leaf, spec, f"{leaf.name}: ") for d, leaf in zip(items, exp.leaves)]


# ----------------------------------------------------------------------------------------
# The grader
# ----------------------------------------------------------------------------------------

_SIGNAL_TEXT = {
    "SIGXCPU": ("timeout", "used more CPU time than allowed ({limit:g} s)"),
    "SIGXFSZ": ("file_limit", "wrote a file larger than the limit ({file_mb} MB)"),
    "SIGKILL": ("killed", "was killed by the system (SIGKILL), most likely for using too much memory"),
    "SIGSEGV": ("crashed", "crashed the Python process (segmentation fault, SIGSEGV)"),
    "SIGBUS": ("crashed", "crashed the Python process (bus error, SIGBUS)"),
    "SIGABRT": ("crashed", "aborted the Python process (SIGABRT)"),
    "SIGILL": ("crashed", "crashed the Python process (illegal instruction, SIGILL)"),
    "SIGFPE": ("crashed", "crashed the Python process (arithmetic error, SIGFPE)"),
    "SIGSYS": ("crashed", "made a system call the sandbox does not allow (SIGSYS)"),
}


class CodeGrader:
    """Grades code parts in a sandbox; a context manager that owns the sandbox servers.

    Servers start lazily (about 1.5 s each, importing torch) on the first code answer
    and are reused for the whole batch, one per worker thread. ``submit`` returns a
    Future so the caller can grade written parts meanwhile.

    Raises SandboxUnavailable at construction when the rubrics contain code parts,
    the machine lacks the protections (e.g. bubblewrap) and ``allow_unsandboxed`` is
    False. With ``allow_unsandboxed=True`` on such a machine every code result
    carries a loud warning.
    """

    def __init__(self, rubrics: RubricSet, *, allow_unsandboxed: bool = False, workers: int = 1):
        self.rubrics = rubrics
        self.allow_unsandboxed = allow_unsandboxed
        self.workers = max(1, int(workers))
        self.has_code = any(p.kind == "code" for _, p in rubrics.parts())
        caps = detect()
        if self.has_code:
            caps = require_sandbox(allow_unsandboxed)
        self.capabilities = caps
        self.unsandboxed = caps.problem is not None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._servers: list[SandboxServer] = []
        self._lock = threading.Lock()
        self._ref_lock = threading.Lock()
        self._refs: dict[tuple[str, str], _PreparedCase] = {}
        self._ref_fns: dict[tuple[str, str], Any] = {}
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> "CodeGrader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the servers (no process is left behind) and the worker threads."""
        self._closed = True
        with self._lock:
            servers, self._servers = self._servers, []
            pool, self._pool = self._pool, None
        for s in servers:
            s.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for s in servers:  # a run that was in flight may have restarted one
            s.close()

    def _server(self) -> SandboxServer:
        server = getattr(self._local, "server", None)
        if server is None:
            server = SandboxServer(allow_unsandboxed=self.allow_unsandboxed)
            self._local.server = server
            with self._lock:
                self._servers.append(server)
        return server

    @property
    def sandbox_description(self) -> str:
        with self._lock:
            if self._servers:
                return self._servers[0].description
        if self.unsandboxed:
            return "UNSANDBOXED"
        return "bubblewrap (" + self.capabilities.describe() + ")"

    # -- API ----------------------------------------------------------------------------

    def submit(
        self, rubric: Rubric, part: Part, answer: Answer | None, student_id: str
    ) -> "concurrent.futures.Future[PartResult]":
        """Grade one code answer in the background; the Future never raises for anything the student did."""
        if part.kind != "code" or part.code is None:
            raise ValueError(f"{rubric.qualified(part)} is not a code part")
        if self._closed:
            raise RuntimeError("CodeGrader is closed")
        quick = self._static(rubric, part, answer)
        if isinstance(quick, PartResult):
            fut: concurrent.futures.Future[PartResult] = concurrent.futures.Future()
            fut.set_result(quick)
            return fut
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="codegrade")
            pool = self._pool
        return pool.submit(self._run_and_grade, rubric, part, quick, student_id)

    def grade(self, rubric: Rubric, part: Part, answer: Answer | None, student_id: str) -> PartResult:
        return self.submit(rubric, part, answer, student_id).result()

    def check_references(self) -> list[str]:
        """Run every code part's reference on every case; return problems (empty when all is well)."""
        problems = []
        for rubric, part in self.rubrics.parts():
            if part.kind != "code" or part.code is None:
                continue
            for case in part.code.cases:
                prep = self._prepare(rubric, part, case)
                if prep.error:
                    problems.append(f"{rubric.qualified(part)} case {case.name}: {prep.error}")
                elif prep.expected and any(
                    l.values.dtype.kind == "f" and not np.isfinite(l.values).all() for l in prep.expected.leaves
                ):
                    problems.append(f"{rubric.qualified(part)} case {case.name}: the reference output is not finite")
        return problems

    # -- reference ----------------------------------------------------------------------

    def _prepare(self, rubric: Rubric, part: Part, case: CodeCase) -> _PreparedCase:
        key = (rubric.qualified(part), case.name)
        with self._ref_lock:
            if key in self._refs:
                return self._refs[key]
            spec = part.code
            assert spec is not None
            torch = _torch()
            values = make_inputs(spec, case)
            args: list[Arg] = []
            for v, inp in zip(values, spec.inputs):
                if isinstance(v, torch.Tensor):
                    args.append(Arg(npy=_npy(v.detach().numpy()), torch_dtype=str(v.dtype).replace("torch.", ""), requires_grad=inp.requires_grad))
                else:
                    args.append(Arg(value=v))
            prep = _PreparedCase(case, args, None)
            try:
                fn_key = (str(self.rubrics.reference_path(rubric, part)), spec.reference_function or spec.entry_point)
                if fn_key not in self._ref_fns:
                    self._ref_fns[fn_key] = _load_reference(Path(fn_key[0]), fn_key[1])
                fn = self._ref_fns[fn_key]
                out = fn(*[_fresh(v, i) for v, i in zip(values, spec.inputs)])
                exp = _leaves_of(out, spec.output_names)
                if spec.reference_precision == "float64":
                    out64 = fn(*[_fresh(v, i, to64=True) for v, i in zip(values, spec.inputs)])
                    exp64 = _leaves_of(out64, spec.output_names)
                    if len(exp64.leaves) != len(exp.leaves):
                        raise ReferenceError_("the reference returns a different structure for float64 inputs")
                    for leaf, leaf64 in zip(exp.leaves, exp64.leaves):
                        if leaf64.shape != leaf.shape:
                            raise ReferenceError_("the reference returns a different shape for float64 inputs")
                        if _float_kind(leaf.dtype) == "float":
                            leaf.values = leaf64.values.astype(np.float64)
                prep.expected = exp
            except ReferenceError_ as exc:
                prep.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a broken reference must not crash the batch
                prep.error = f"the reference raised {type(exc).__name__}: {exc}"
            self._refs[key] = prep
            return prep

    # -- static stage -------------------------------------------------------------------

    def _base(self, rubric: Rubric, part: Part, status: str = "graded") -> PartResult:
        assert part.code is not None
        warnings = [UNSANDBOXED_WARNING] if self.unsandboxed else []
        return PartResult(
            part_id=rubric.qualified(part),
            kind="code",
            status=status,  # type: ignore[arg-type]
            points=0.0,
            max_points=part.max_points,
            raw_score=0.0,
            confidence=1.0,
            code=CodeResult(entry_point=part.code.entry_point, sandbox="not run"),
            warnings=warnings,
        )

    def _not_run_cases(self, spec: CodeSpec, reason: str, code: str) -> list[CodeCaseResult]:
        return [CodeCaseResult(name=c.name, points=0.0, max_points=c.points, passed=False, reason=reason, reason_code=code) for c in spec.cases]

    def _static(self, rubric: Rubric, part: Part, answer: Answer | None) -> PartResult | SourceCode:
        spec = part.code
        assert spec is not None
        sig = _signature(spec)
        if answer is None or (not answer.code and not (answer.text or "").strip()):
            res = self._base(rubric, part, "missing")
            res.feedback = [f"No answer: define {sig}."]
            res.code.outcome = "missing"  # type: ignore[union-attr]
            res.code.cases = self._not_run_cases(spec, "not run: no answer", "not_run")  # type: ignore[union-attr]
            return res
        src = select_code(answer, spec.entry_point)
        if src is None:
            res = self._base(rubric, part)
            res.feedback = [f"No Python code found in the answer. Put your function {sig} in a ```python code block (or a notebook code cell / a .py file for this part)."]
            res.code.outcome = "no_code"  # type: ignore[union-attr]
            res.code.cases = self._not_run_cases(spec, "not run: no code found", "not_run")  # type: ignore[union-attr]
            return res
        if len(src.text) > MAX_CODE_BYTES:
            res = self._base(rubric, part)
            res.feedback = [f"Your code is too long to grade ({len(src.text):,} characters; the limit is {MAX_CODE_BYTES:,})."]
            res.code.outcome = "too_large"  # type: ignore[union-attr]
            res.code.cases = self._not_run_cases(spec, "not run: the code is too long", "not_run")  # type: ignore[union-attr]
            return res
        try:
            hits = find_forbidden(src.text, spec.forbidden)
        except SyntaxError as exc:
            res = self._base(rubric, part)
            where = src.where(exc.lineno)
            text = (exc.text or "").strip()
            detail = f": `{text[:80]}`" if text else ""
            res.feedback = [f"Your code has a syntax error on {where}: {exc.msg}{detail}. Nothing was run; fix it so the file runs."] + [f"Note: {n}." for n in src.notes]
            res.code.outcome = "syntax_error"  # type: ignore[union-attr]
            res.code.stderr_tail = f"SyntaxError: {exc.msg} ({where})"  # type: ignore[union-attr]
            res.code.cases = self._not_run_cases(spec, f"not run: syntax error on {where}", "syntax_error")  # type: ignore[union-attr]
            return res
        except (ValueError, RecursionError) as exc:
            res = self._base(rubric, part)
            res.feedback = [f"Your code could not be parsed ({type(exc).__name__}: {exc})."]
            res.code.outcome = "syntax_error"  # type: ignore[union-attr]
            res.code.cases = self._not_run_cases(spec, "not run: the code could not be parsed", "syntax_error")  # type: ignore[union-attr]
            return res
        if hits:
            res = self._base(rubric, part)
            listed = ", ".join(f"{name} ({src.where(line)})" for name, line in hits[:8])
            res.feedback = [
                f"Your code uses {listed}, which this exercise forbids ({_forbid_hint(spec)}). "
                "Nothing was run and the part earns no credit."
            ]
            res.code.outcome = "forbidden"  # type: ignore[union-attr]
            res.code.forbidden_calls = [f"{name} ({src.where(line)})" for name, line in hits]  # type: ignore[union-attr]
            res.code.cases = self._not_run_cases(spec, "not run: the code uses a forbidden call", "forbidden")  # type: ignore[union-attr]
            return res
        return src

    # -- run + interpret ----------------------------------------------------------------

    def _run_and_grade(self, rubric: Rubric, part: Part, src: SourceCode, student_id: str) -> PartResult:
        spec = part.code
        assert spec is not None
        try:
            preps = [self._prepare(rubric, part, c) for c in spec.cases]
            bad = [p for p in preps if p.error]
            if bad:
                res = self._base(rubric, part, "error")
                res.feedback = ["This part could not be graded automatically (a problem with the grader's reference); a TA will grade it."]
                res.warnings.append(f"reference failed for {rubric.qualified(part)}: {bad[0].error}")
                res.code.outcome = "reference_error"  # type: ignore[union-attr]
                res.confidence = 0.0
                return res
            job = Job(
                code=src.text,
                entry_point=spec.entry_point,
                cases=[JobCase(p.case.name, p.args) for p in preps],
                forbidden=list(spec.forbidden),
                limits=Limits(wall_s=spec.time_limit_s, memory_mb=spec.memory_limit_mb),
            )
            server = self._server()
            run = server.run(job)
            if run.status in ("sandbox_died", "sandbox_error"):
                run2 = server.run(job)  # once more on a fresh server: tell flakiness from a hostile answer
                if run2.status not in ("sandbox_died", "sandbox_error"):
                    run = run2
            return self._interpret(rubric, part, src, preps, run)
        except Exception as exc:  # noqa: BLE001 - never let one answer crash the batch
            res = self._base(rubric, part, "error")
            res.feedback = ["This part could not be graded automatically; a TA will grade it."]
            res.warnings.append(f"internal error while grading {rubric.qualified(part)} for {student_id}: {type(exc).__name__}: {exc}")
            res.confidence = 0.0
            return res

    def _interpret(self, rubric: Rubric, part: Part, src: SourceCode, preps: list[_PreparedCase], run: RunResult) -> PartResult:
        spec = part.code
        assert spec is not None
        res = self._base(rubric, part)
        cr = res.code
        assert cr is not None
        cr.sandbox = run.sandbox
        cr.stdout_tail = run.stdout_tail or None
        cr.stderr_tail = run.stderr_tail or None
        cr.wall_s = round(run.wall_s, 4)
        cr.process_status = run.status
        notes = [f"Note: {n}." for n in src.notes]

        if run.status in ("sandbox_died", "sandbox_error"):
            res.status = "error"
            res.confidence = 0.0
            cr.outcome = "sandbox_error"
            res.feedback = ["Your code could not be run to completion by the grader's sandbox; a TA will look at it."]
            res.warnings.append(f"sandbox failure ({run.status}): {run.detail[:600]}")
            cr.cases = self._not_run_cases(spec, "not run: sandbox failure", "sandbox_error")
            return res

        events = run.events
        forbidden_rt = sorted({e.get("name", "?") for e in events if e.get("event") == "forbidden"})
        setup = next((e for e in events if e.get("event") == "setup_error"), None)
        load = next((e for e in events if e.get("event") == "load_error"), None)
        no_entry = next((e for e in events if e.get("event") == "no_entry"), None)
        case_events = {e.get("name"): e for e in events if e.get("event") == "case"}
        started = [e.get("name") for e in events if e.get("event") == "case_start"]

        if setup is not None:
            res.status = "error"
            res.confidence = 0.0
            cr.outcome = "sandbox_error"
            res.feedback = ["The grader's sandbox failed to set up the run; a TA will look at it."]
            res.warnings.append(f"sandbox setup error: {setup.get('error')}")
            cr.cases = self._not_run_cases(spec, "not run: sandbox failure", "sandbox_error")
            return res

        # the process-level reason, for cases that did not report
        proc_code, proc_msg = self._process_reason(run, spec)
        if proc_code == "ok" and not any(e.get("event") == "done" for e in events):
            if not run.stream_complete:
                proc_code, proc_msg = "no_result", "sent back data the grader could not read (did your code write to or close file descriptor 3?)"
            elif load is None and no_entry is None:
                proc_code, proc_msg = "exited", "ended the Python process before returning (exit code 0); do not call exit() or os._exit()"

        if load is not None:
            exc = load.get("exc") or {}
            code, msg = self._exception_reason(exc, src, spec, while_loading=True)
            cr.outcome = code if code != "exception" else "load_error"
            cr.cases = self._not_run_cases(spec, f"not run: {msg}", code)
            res.feedback = [f"Your code failed while loading, before any test ran: {msg}."] + notes
            if forbidden_rt:
                cr.forbidden_calls = forbidden_rt
            cr.stderr_tail = _exc_text(exc, src) or cr.stderr_tail
            return self._finish(res, spec, forbidden_rt)
        if no_entry is not None:
            found = no_entry.get("found") or []
            if no_entry.get("not_callable"):
                msg = f"`{spec.entry_point}` is defined but is not a function"
            else:
                msg = f"no function named `{spec.entry_point}` was defined"
                close = difflib.get_close_matches(spec.entry_point, found, n=1)
                if close:
                    msg += f" (you defined `{close[0]}`; rename it to `{spec.entry_point}`)"
                elif found:
                    msg += f" (your code defines: {', '.join(found[:6])})"
            cr.outcome = "entry_point_missing"
            cr.cases = self._not_run_cases(spec, f"not run: {msg}", "entry_point_missing")
            res.feedback = [f"The grader calls {_signature(spec)}, but {msg}."] + notes
            return self._finish(res, spec, forbidden_rt)
        if not started and proc_code != "ok":
            cr.outcome = proc_code
            cr.cases = self._not_run_cases(spec, f"not run: {proc_msg} while loading your code", proc_code)
            res.feedback = [f"Your code {proc_msg} while loading (module-level statements), before any test ran."] + notes
            return self._finish(res, spec, forbidden_rt)

        cases: list[CodeCaseResult] = []
        ratios: list[float] = []
        abs_errs: list[float] = []
        rel_errs: list[float] = []
        stopped_at: str | None = None
        for prep in preps:
            c = prep.case
            ev = case_events.get(c.name)
            if ev is None:
                if c.name in started and stopped_at is None:
                    stopped_at = c.name
                    cases.append(CodeCaseResult(name=c.name, points=0.0, max_points=c.points, passed=False, reason=f"{proc_msg}" if proc_code != "ok" else "no result came back", reason_code=proc_code if proc_code != "ok" else "no_result", stderr_tail=(run.stderr_tail or None)))
                else:
                    why = f"not run: stopped in case {stopped_at}" if stopped_at else ("not run: " + (proc_msg if proc_code != "ok" else "no result came back"))
                    cases.append(CodeCaseResult(name=c.name, points=0.0, max_points=c.points, passed=False, reason=why, reason_code="not_run" if stopped_at else (proc_code if proc_code != "ok" else "no_result")))
                continue
            if not ev.get("ok"):
                exc = ev.get("exc") or {}
                code, msg = self._exception_reason(exc, src, spec)
                cases.append(CodeCaseResult(name=c.name, points=0.0, max_points=c.points, passed=False, reason=msg, reason_code=code, stderr_tail=_exc_text(exc, src)))
                continue
            assert prep.expected is not None
            verdicts = _compare_output(ev.get("output") or {}, run.blobs, int(ev.get("_blob_base", 0)), prep.expected, spec)
            ok = all(v.ok for v in verdicts)
            mabs = [v.max_abs for v in verdicts if v.max_abs is not None and not math.isnan(v.max_abs)]
            mrel = [v.max_rel for v in verdicts if v.max_rel is not None and not math.isnan(v.max_rel)]
            ratios += [v.ratio for v in verdicts if v.ratio is not None and math.isfinite(v.ratio)]
            abs_errs += mabs
            rel_errs += mrel
            first_bad = next((v for v in verdicts if not v.ok), None)
            cases.append(
                CodeCaseResult(
                    name=c.name,
                    points=c.points if ok else 0.0,
                    max_points=c.points,
                    passed=ok,
                    reason="ok" if ok else "; ".join(v.message for v in verdicts if not v.ok),
                    reason_code="ok" if ok else first_bad.code,  # type: ignore[union-attr]
                    max_abs_error=_finite_or_none(max(mabs)) if mabs else None,
                    max_rel_error=_finite_or_none(max(mrel)) if mrel else None,
                    time_s=round(float(ev.get("time_s", 0.0)), 6),
                )
            )
        cr.cases = cases
        cr.max_abs_error = _finite_or_none(max(abs_errs)) if abs_errs else None
        cr.max_rel_error = _finite_or_none(max(rel_errs)) if rel_errs else None
        cr.forbidden_calls = forbidden_rt
        n_pass = sum(c.passed for c in cases)
        if n_pass == len(cases):
            cr.outcome = "passed"
        elif n_pass:
            cr.outcome = "partial"
        else:
            cr.outcome = next((c.reason_code for c in cases if c.reason_code not in ("not_run",)), "failed")
        # feedback
        points = sum(c.points for c in cases)
        fb = []
        if n_pass == len(cases):
            fb.append(f"All {len(cases)} test cases passed ({_pts(points)} of {_pts(part.max_points)} points).")
        else:
            fb.append(f"{n_pass} of {len(cases)} test cases passed ({_pts(points)} of {_pts(part.max_points)} points).")
        fb += _grouped_failures(preps, cases)
        if run.stdout_bytes and n_pass < len(cases):
            fb.append("Your code printed output; it is shown in the report (stdout).")
        res.feedback = fb + notes
        if ratios and any(0.3 < r < 3.0 for r in ratios):
            res.confidence = 0.6
            res.warnings.append("an error is close to the tolerance: check the case results")
        return self._finish(res, spec, forbidden_rt)

    def _finish(self, res: PartResult, spec: CodeSpec, forbidden_rt: list[str]) -> PartResult:
        cr = res.code
        assert cr is not None
        if forbidden_rt:
            cr.forbidden_calls = sorted(set(cr.forbidden_calls) | set(forbidden_rt))
            cr.outcome = "forbidden"
            for c in cr.cases:
                c.points = 0.0
            res.feedback.insert(
                0,
                f"Your code called {', '.join(forbidden_rt)}, which this exercise forbids ({_forbid_hint(spec)}). "
                "The part earns no credit.",
            )
        res.points = round(sum(c.points for c in cr.cases), 6)
        res.raw_score = res.points / res.max_points if res.max_points else 0.0
        return res

    def _process_reason(self, run: RunResult, spec: CodeSpec) -> tuple[str, str]:
        if run.status == "ok":
            return "ok", ""
        if run.status == "timeout":
            return "timeout", f"timed out: it was still running after {spec.time_limit_s:g} s (the limit for all cases together); look for an infinite loop"
        if run.status == "output_limit":
            return "output_limit", f"printed too much output (more than {Limits().max_output_bytes:,} bytes); remove debugging prints"
        if run.status == "result_limit":
            return "result_limit", "returned too much data (more than 64 MB)"
        if run.status == "signal":
            code, text = _SIGNAL_TEXT.get(run.signal_name or "", ("crashed", f"was killed by signal {run.signal_name}"))
            return code, text.format(limit=spec.time_limit_s, file_mb=Limits().max_file_mb)
        if run.status == "exit" and run.exit_code == EXIT_RESULT_CHANNEL:
            return "no_result", "closed the grader's result channel (file descriptor 3), so no result came back"
        if run.status == "exit":
            return "exited", f"ended the Python process (exit code {run.exit_code}); do not call exit() or os._exit()"
        return "no_result", "produced no result"

    def _exception_reason(self, exc: dict, src: SourceCode, spec: CodeSpec, while_loading: bool = False) -> tuple[str, str]:
        typ = exc.get("type", "Exception")
        msg = (exc.get("message") or "").strip()
        where = src.where(exc.get("line")) if exc.get("line") else "a line outside your code"
        short = msg.splitlines()[0][:300] if msg else ""
        if exc.get("forbidden"):
            return "forbidden", f"called a forbidden function ({short})"
        if exc.get("memory"):
            m = re.search(r"tried to allocate (\d+) bytes", msg)
            what = f"tried to allocate {_human_bytes(int(m.group(1)))}" if m else (short or typ)
            return "memory", f"ran out of memory on {where}: {what}; the limit is {spec.memory_limit_mb} MB"
        if typ == "SystemExit":
            return "exited", f"called exit() on {where}; do not exit, return the result"
        if typ == "KeyboardInterrupt":
            return "exception", f"raised KeyboardInterrupt on {where}"
        if typ == "RecursionError":
            return "exception", f"recursed too deeply (RecursionError) on {where}"
        blocked = _sandbox_block(exc, src)
        if blocked is not None:
            code, what = blocked
            if code == "file_blocked" or not short:
                return code, f"{what} on {where} ({typ})"
            return code, f"{what} on {where} ({typ}: {short})"
        text = f"raised {typ} on {where}"
        if short:
            text += f": {short}"
        return "exception", text


def _sandbox_block(exc: dict, src: SourceCode) -> tuple[str, str] | None:
    """Recognise an exception caused by a sandbox protection, so the report names it."""
    typ = exc.get("type", "")
    err = exc.get("errno")
    libs = set(exc.get("libs") or [])
    frames = exc.get("frames") or []
    line_text = " ".join(str(f[2]) for f in frames if isinstance(f, list) and len(f) == 3)
    fname = exc.get("filename")
    if "socket.py" in libs or exc.get("module") == "socket" or typ in ("gaierror", "herror") or (
        "socket" in line_text and err in (1, 13, 97, 101, 111, 113)
    ):
        return "network_blocked", "tried to use the network, which the sandbox blocks"
    if err == 11 and ("fork" in line_text or "Thread" in line_text or "Popen" in line_text or "start" in line_text or "threading.py" in libs):
        return "process_limit", "hit the sandbox's limit on processes and threads"
    if typ == "RuntimeError" and "can't start new thread" in (exc.get("message") or ""):
        return "process_limit", "hit the sandbox's limit on processes and threads"
    if err in (1, 3) and "kill" in line_text:
        return "signal_blocked", "tried to signal a process outside its own, which the sandbox forbids"
    if err == 27:
        return "file_limit", "wrote a file larger than the sandbox allows"
    if err == 28:
        return "file_limit", "filled the sandbox's scratch space"
    if fname and str(fname).startswith("/") and err in (2, 13, 30):
        what = {2: "does not exist in the sandbox", 13: "is not accessible in the sandbox", 30: "is read-only in the sandbox"}[err]
        return "file_blocked", f"tried to access {fname}, which {what} (code runs with only its working directory writable)"
    if typ == "PermissionError" and err in (1, 13):
        return "sandbox_blocked", "tried an operation the sandbox does not permit"
    return None


def _human_bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _grouped_failures(preps: list[_PreparedCase], cases: list[CodeCaseResult]) -> list[str]:
    """One line per failure reason: 'Case batch16 (N=16) failed: ...' or 'Cases a, b failed: ...'."""
    groups: dict[str, list[str]] = {}
    for prep, c in zip(preps, cases):
        if not c.passed:
            groups.setdefault(c.reason, []).append(_case_label(prep.case))
    out = []
    for reason, labels in groups.items():
        if len(labels) == 1:
            out.append(f"Case {labels[0]} failed: {reason}.")
        else:
            out.append(f"Cases {', '.join(labels[:-1])} and {labels[-1]} failed: {reason}.")
    return out


def _signature(spec: CodeSpec) -> str:
    return f"{spec.entry_point}({', '.join(i.name for i in spec.inputs)})"


def _forbid_hint(spec: CodeSpec) -> str:
    return "forbidden here: " + ", ".join(spec.forbidden) if spec.forbidden else "forbidden"


def _case_label(case: CodeCase) -> str:
    if case.dims:
        return f"{case.name} ({', '.join(f'{k}={v}' for k, v in case.dims.items())})"
    return case.name


def _pts(x: float) -> str:
    return f"{x:g}"


def _finite_or_none(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _exc_text(exc: dict, src: SourceCode) -> str | None:
    if not exc:
        return None
    lines = [f"{exc.get('type', 'Exception')}: {(exc.get('message') or '')[:500]}"]
    if exc.get("line"):
        lines.append(f"  at {src.where(exc.get('line'))}")
    for fr in exc.get("frames") or []:
        if isinstance(fr, list) and len(fr) == 3:
            lines.append(f"  {src.where(fr[0])}, in {fr[1]}: {fr[2]}")
    return "\n".join(lines)
