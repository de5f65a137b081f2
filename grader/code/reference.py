"""Seeded inputs and what the reference makes of them: the expected outputs, and their gradients.

Reference outputs come from the rubric's reference file (trusted, written with autograd),
run in the grader's process on the same seeded inputs the student's code gets; a regrade
draws the same inputs and gives the same result. With ``reference_precision: float64`` the
reference also runs on float64 copies and those values are the target, so the tolerance
only has to absorb the student's float32 rounding. For ``output_requires_grad`` parts the
reference also gives the gradients of the output (against a seeded cotangent) with
respect to every ``requires_grad`` input: the student's must match them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.code.sandbox import Arg
from grader.rubric import CodeCase, CodeSpec, TensorInput


def _torch() -> Any:
    import torch

    return torch


class ReferenceError_(Exception):
    """The reference implementation failed: a rubric problem, not the student's."""


@dataclass
class Leaf:
    name: str
    dtype: str  # torch dtype name of the reference output on the declared inputs
    shape: tuple[int, ...]
    values: np.ndarray  # float64 (or int64/bool) target values


@dataclass
class Expected:
    leaves: list[Leaf]
    is_tuple: bool


@dataclass
class PreparedCase:
    """One case, ready to run: its arguments, and what the reference returned for them."""

    case: CodeCase
    args: list[Arg]
    expected: Expected | None
    error: str | None = None
    cotangents: list[Arg] = field(default_factory=list)  # one per output, for the gradient check
    gradients: list[Leaf] = field(default_factory=list)  # d<cotangent . output>/d input, per requires_grad input


def make_inputs(spec: CodeSpec, case: CodeCase) -> list[Any]:
    """The case's arguments, drawn from a generator seeded with the case's seed (same on every regrade)."""
    torch = _torch()
    g = torch.Generator().manual_seed(int(case.seed))
    values: list[Any] = []
    for inp in spec.inputs:
        shape = [case.dims[d] if isinstance(d, str) else d for d in inp.shape]
        if inp.value is not None:
            values.append(
                int(inp.value)
                if inp.dtype in ("int64", "int32")
                else bool(inp.value)
                if inp.dtype == "bool"
                else float(inp.value)
            )
            continue
        if inp.dtype in ("float32", "float64"):
            u = torch.rand(shape, generator=g, dtype=torch.float64)
            t = (u * (inp.high - inp.low) + inp.low).to(getattr(torch, inp.dtype))
        elif inp.dtype in ("int64", "int32"):
            lo, hi = math.ceil(inp.low), math.floor(inp.high)
            t = torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(getattr(torch, inp.dtype))
        else:
            t = torch.rand(shape, generator=g, dtype=torch.float64) < 0.5
        values.append(t.item() if inp.scalar else t)
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


def load_reference(path: Path, function: str) -> Callable[..., Any]:
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


def _leaf(name: str, t: Any) -> Leaf:
    torch = _torch()
    t = t.detach().cpu()
    arr = t.numpy() if t.dtype not in (torch.bfloat16, torch.float16) else t.float().numpy()
    if t.is_floating_point():
        arr = arr.astype(np.float64)
    return Leaf(name, str(t.dtype).replace("torch.", ""), tuple(t.shape), arr)


def _outputs(out: Any) -> tuple[list[Any], bool]:
    torch = _torch()
    if isinstance(out, torch.Tensor):
        return [out], False
    if isinstance(out, (tuple, list)) and out and all(isinstance(x, torch.Tensor) for x in out):
        return list(out), True
    raise ReferenceError_(f"the reference must return a tensor or a tuple of tensors, not {type(out).__name__}")


def leaves_of(out: Any, names: list[str]) -> Expected:
    items, is_tuple = _outputs(out)
    leaves = [
        _leaf(names[i] if i < len(names) else (f"output {i + 1}" if is_tuple else "output"), t)
        for i, t in enumerate(items)
    ]
    return Expected(leaves, is_tuple)


def float_kind(dtype: str) -> str:
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


def _cotangents(expected: Expected, seed: int) -> list[np.ndarray]:
    """Seeded weights for the outputs: a gradient check that a sum of entries could not fool."""
    rng = np.random.default_rng(seed)
    return [
        np.asarray(rng.uniform(0.5, 1.5, size=leaf.shape) * rng.choice([-1.0, 1.0], size=leaf.shape))
        for leaf in expected.leaves
    ]


def _reference_gradients(
    fn: Callable[..., Any], values: list[Any], spec: CodeSpec, cotangents: list[np.ndarray]
) -> list[Leaf]:
    """d(sum of cotangent * output)/d input for every requires_grad input, zeros where unused."""
    torch = _torch()
    to64 = spec.reference_precision == "float64"
    args = [_fresh(v, i, to64=to64) for v, i in zip(values, spec.inputs)]
    wrt = [k for k, inp in enumerate(spec.inputs) if inp.requires_grad]
    with torch.enable_grad():
        outs, _ = _outputs(fn(*args))
        total = sum(
            ((o * torch.from_numpy(c).to(o.dtype)).sum() for o, c in zip(outs, cotangents)),
            torch.zeros((), dtype=torch.float64),
        )
        grads = torch.autograd.grad(total, [args[k] for k in wrt], allow_unused=True)
    return [_leaf(spec.inputs[k].name, g if g is not None else torch.zeros_like(args[k])) for k, g in zip(wrt, grads)]


def _tensor_arg(t: Any, requires_grad: bool = False) -> Arg:
    return Arg.tensor(t.detach().cpu().numpy(), requires_grad=requires_grad)


def prepare_case(spec: CodeSpec, case: CodeCase, fn: Callable[..., Any] | Exception) -> PreparedCase:
    """The case's arguments and the reference's outputs (and gradients) for them; errors become ``error``."""
    torch = _torch()
    values = make_inputs(spec, case)
    args = [
        _tensor_arg(v, inp.requires_grad) if isinstance(v, torch.Tensor) else Arg(value=v)
        for v, inp in zip(values, spec.inputs)
    ]
    prep = PreparedCase(case, args, None)
    try:
        if isinstance(fn, Exception):
            raise fn
        exp = leaves_of(fn(*[_fresh(v, i) for v, i in zip(values, spec.inputs)]), spec.output_names)
        if spec.reference_precision == "float64":
            exp64 = leaves_of(fn(*[_fresh(v, i, to64=True) for v, i in zip(values, spec.inputs)]), spec.output_names)
            if len(exp64.leaves) != len(exp.leaves):
                raise ReferenceError_("the reference returns a different structure for float64 inputs")
            for leaf, leaf64 in zip(exp.leaves, exp64.leaves):
                if leaf64.shape != leaf.shape:
                    raise ReferenceError_("the reference returns a different shape for float64 inputs")
                if float_kind(leaf.dtype) == "float":
                    leaf.values = leaf64.values.astype(np.float64)
        prep.expected = exp
        if spec.output_requires_grad:
            cot = _cotangents(exp, case.seed)
            prep.cotangents = [Arg.tensor(c) for c in cot]
            prep.gradients = _reference_gradients(fn, values, spec, cot)
    except ReferenceError_ as exc:
        prep.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken reference must not crash the batch
        prep.error = f"the reference raised {type(exc).__name__}: {exc}"
    return prep
