"""Returned values against expected ones, in the grader's process, after the student's process is gone.

The values arrive as ``.npy`` bytes read without pickle; the description next to them
(type, dtype, shape) comes from the student's process too, so every claim in it is
checked against the data. Checks, in order: structure, type, shape, dtype, NaN/inf, then
values with ``torch.allclose`` semantics (``|a - b| <= atol + rtol * |b|``, b expected),
and for ``output_requires_grad`` parts the gradients with respect to each input.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.code.reference import Expected, Leaf, PreparedCase, float_kind
from grader.rubric import CodeSpec


@dataclass
class Verdict:
    ok: bool
    code: str
    message: str
    max_abs: float | None = None
    max_rel: float | None = None
    ratio: float | None = None  # worst |a-b| / tolerance


def fmt_shape(shape: Any) -> str:
    shape = tuple(shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _fmt_index(idx: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, idx)) + ")" if idx else "()"


def _load_npy(blob: bytes) -> np.ndarray:
    arr = np.load(io.BytesIO(blob), allow_pickle=False)
    if not isinstance(arr, np.ndarray):
        raise ValueError("not an array")
    return arr


def _compare_exact(a: np.ndarray, b: np.ndarray, label: str) -> Verdict:
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    n_bad = int((diff != 0).sum())
    if n_bad:
        idx = np.unravel_index(int(diff.argmax()), diff.shape) if diff.ndim else ()
        where = _fmt_index(tuple(int(i) for i in idx))
        return Verdict(
            False,
            "values_differ",
            f"{label}{n_bad} of {diff.size} values differ from the reference (e.g. at index {where})",
            float(diff.max()),
            None,
            math.inf,
        )
    return Verdict(True, "ok", "ok", 0.0, 0.0, 0.0)


def compare_values(a: np.ndarray, leaf: Leaf, spec: CodeSpec, label: str) -> Verdict:
    b = leaf.values
    if float_kind(leaf.dtype) in ("int", "bool"):
        return _compare_exact(a, b, label)
    a = a.astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a & ~nan_b).any():
        n = int((nan_a & ~nan_b).sum())
        idx = tuple(int(i) for i in np.argwhere(nan_a & ~nan_b)[0]) if a.ndim else ()
        return Verdict(
            False,
            "nan",
            f"{label}contains NaN in {n} of {a.size} entries (first at index {_fmt_index(idx)}); check for a "
            "division by zero or log of a non-positive number",
            math.nan,
            math.nan,
            math.inf,
        )
    inf_bad = np.isinf(a) & ~(a == b)
    if inf_bad.any():
        return Verdict(
            False,
            "inf",
            f"{label}contains infinite values in {int(inf_bad.sum())} of {a.size} entries (overflow?)",
            math.inf,
            math.inf,
            math.inf,
        )
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
        idx = tuple(int(i) for i in (np.unravel_index(int(diff.argmax()), diff.shape) if diff.ndim else ()))
        ref_v, got_v = float(b[idx]) if b.ndim else float(b), float(a[idx]) if a.ndim else float(a)
        message = (
            f"{label}values differ from the reference in {n_bad} of {diff.size} entries: largest absolute error "
            f"{max_abs:.2g} at index {_fmt_index(idx)} (yours {got_v:.6g}, expected {ref_v:.6g}), largest relative "
            f"error {max_rel:.2g} (allowed: {spec.atol:g} + {spec.rtol:g} x |expected|)"
        )
        return Verdict(False, "values_differ", message, max_abs, max_rel, worst)
    return Verdict(True, "ok", "ok", max_abs, max_rel, worst)


def _type_problem(desc: dict, exp: str, label: str) -> Verdict | None:
    """A verdict when the returned value is not an array at all (None, a number, a list, ...)."""
    kind = desc.get("type")
    if kind == "none":
        return Verdict(False, "wrong_type", f"{label}returned None instead of {exp}; did you forget `return`?")
    if kind in ("float", "int", "bool"):
        return Verdict(
            False, "wrong_type", f"{label}returned a Python {kind} instead of {exp} (do not call .item() or float())"
        )
    if kind in ("tuple", "list"):
        n = len(desc.get("items") or []) if desc.get("items") is not None else desc.get("length")
        return Verdict(False, "wrong_type", f"{label}returned a {kind} of {n} items instead of {exp}")
    if kind in ("dict", "other", "str"):
        what = {"dict": "a dict", "str": "a string"}.get(str(kind)) or f"an object of type {desc.get('pytype')}"
        return Verdict(False, "wrong_type", f"{label}returned {what} instead of {exp}")
    if kind not in ("tensor", "ndarray"):
        return Verdict(False, "wrong_type", f"{label}returned something unexpected instead of {exp}")
    if desc.get("error") or not isinstance(desc.get("blob"), int):
        return Verdict(
            False,
            "wrong_type",
            f"{label}returned a {kind} that cannot be read ({desc.get('error', 'no data')}); expected {exp}",
        )
    return None


def _read_array(
    desc: dict, blobs: list[bytes], base: int, exp: str, label: str
) -> tuple[np.ndarray, str, tuple] | Verdict:
    """(array, dtype, shape) from the payload, its description checked against the data."""
    try:
        arr = _load_npy(blobs[base + desc["blob"]])
    except Exception as exc:  # noqa: BLE001 - student-controlled bytes
        return Verdict(
            False, "unreadable", f"{label}the returned data could not be read ({type(exc).__name__}); expected {exp}"
        )
    kind = desc.get("type")
    try:
        dtype = str(desc.get("dtype") if kind == "tensor" else arr.dtype)
        raw_shape: Any = desc.get("shape") if kind == "tensor" else arr.shape  # the child's word, checked here
        shape = tuple(int(d) for d in raw_shape)
    except (TypeError, ValueError):
        return Verdict(False, "unreadable", f"{label}the returned data is inconsistent")
    if tuple(arr.shape) != shape:
        return Verdict(
            False, "unreadable", f"{label}the returned data is inconsistent (shape {tuple(arr.shape)} vs {shape})"
        )
    return arr, dtype, shape


def _shape_problem(shape: tuple, leaf: Leaf, label: str, numpy_note: str | None, spec: CodeSpec) -> Verdict | None:
    if shape == leaf.shape:
        return None
    hint = ""
    if len(shape) == 2 and shape == leaf.shape[::-1]:
        hint = " (transposed?)"
    elif int(np.prod(shape)) == int(np.prod(leaf.shape)):
        hint = " (same number of elements: reshape it)"
    elif len(shape) == len(leaf.shape) - 1 or (leaf.shape[:1] == (1,) and shape == leaf.shape[1:]):
        hint = " (a dimension is missing, e.g. keepdim=True or unsqueeze)"
    msg = f"{label}wrong shape: got {fmt_shape(shape)}, expected {fmt_shape(leaf.shape)}{hint}"
    if numpy_note and not spec.accept_numpy:
        msg = numpy_note + "; also " + msg[len(label) :]
    return Verdict(False, "wrong_shape", msg)


def _dtype_problem(dtype: str, leaf: Leaf, label: str, spec: CodeSpec) -> Verdict | None:
    want, got = float_kind(leaf.dtype), float_kind(dtype)
    if spec.exact_dtype and dtype != leaf.dtype:
        return Verdict(False, "wrong_dtype", f"{label}wrong dtype: got {dtype}, expected exactly {leaf.dtype}")
    if want == "float" and got != "float":
        extra = " (too little precision)" if got == "half" else ""
        return Verdict(
            False,
            "wrong_dtype",
            f"{label}wrong dtype: got {dtype}{extra}, expected a floating-point tensor ({leaf.dtype})",
        )
    if want in ("int", "bool") and got != want:
        return Verdict(False, "wrong_dtype", f"{label}wrong dtype: got {dtype}, expected {leaf.dtype}")
    return None


def compare_leaf(desc: dict, blobs: list[bytes], base: int, leaf: Leaf, spec: CodeSpec, label: str) -> Verdict:
    exp = f"a torch.Tensor of shape {fmt_shape(leaf.shape)}"
    problem = _type_problem(desc, exp, label)
    if problem is not None:
        return problem
    read = _read_array(desc, blobs, base, exp, label)
    if isinstance(read, Verdict):
        return read
    arr, dtype, shape = read
    numpy_note = None
    if desc.get("type") == "ndarray":
        numpy_note = (
            f"{label}returned a numpy.ndarray; the function must return a torch.Tensor (convert with torch.from_numpy)"
        )
    problem = _shape_problem(shape, leaf, label, numpy_note, spec) or _dtype_problem(dtype, leaf, label, spec)
    if problem is not None:
        return problem
    verdict = compare_values(arr, leaf, spec, label)
    if numpy_note and not spec.accept_numpy:
        verdict.ok, verdict.code = False, "wrong_type"
        verdict.message = numpy_note + (
            " (its values are correct)" if verdict.message == "ok" else "; also " + verdict.message[len(label) :]
        )
    return verdict


def compare_output(desc: dict, blobs: list[bytes], base: int, exp: Expected, spec: CodeSpec) -> list[Verdict]:
    if not exp.is_tuple:
        return [compare_leaf(desc, blobs, base, exp.leaves[0], spec, "")]
    names = ", ".join(leaf.name for leaf in exp.leaves)
    k = len(exp.leaves)
    if desc.get("type") not in ("tuple", "list"):
        what = {"tensor": "a single tensor", "ndarray": "a single numpy array", "none": "None"}.get(
            str(desc.get("type", "")), f"a {desc.get('type')}"
        )
        return [Verdict(False, "wrong_structure", f"returned {what}; expected a tuple of {k} tensors ({names})")]
    items = desc.get("items")
    if not isinstance(items, list) or len(items) != k:
        n = len(items) if isinstance(items, list) else desc.get("length")
        return [Verdict(False, "wrong_structure", f"returned {n} values; expected a tuple of {k} tensors ({names})")]
    return [
        compare_leaf(d if isinstance(d, dict) else {}, blobs, base, leaf, spec, f"{leaf.name}: ")
        for d, leaf in zip(items, exp.leaves)
    ]


_DETACHED_HINT = "avoid .detach(), .item(), torch.tensor(...) or a new requires_grad_() on an intermediate result"


def compare_gradients(report: Any, blobs: list[bytes], base: int, prep: PreparedCase, spec: CodeSpec) -> Verdict | None:
    """None when the result depends on every requires_grad input as the reference's does; else why not.

    The gradients were computed in the student's process (where the graph lives) and come back
    as values: a made-up gradient only passes if it is the right one.
    """
    names = ", ".join(g.name for g in prep.gradients)
    report = report if isinstance(report, dict) else {}
    grads = report.get("grads")
    if not isinstance(grads, list) or len(grads) != len(prep.gradients):
        why = report.get("error") or "no gradients came back"
        return Verdict(
            False,
            "not_differentiable",
            f"the values are right, but the result cannot be differentiated with respect to {names} ({why}); "
            f"{_DETACHED_HINT}",
        )
    missing = [
        ref.name for desc, ref in zip(grads, prep.gradients) if desc is None and np.abs(ref.values).max(initial=0) > 0
    ]
    if missing:
        return Verdict(
            False,
            "not_differentiable",
            f"the values are right, but the result does not depend on {', '.join(missing)} through the autograd "
            f"graph; {_DETACHED_HINT}",
        )
    for desc, ref in zip(grads, prep.gradients):
        if desc is None:
            continue
        verdict = compare_leaf(
            desc if isinstance(desc, dict) else {}, blobs, base, ref, spec, f"gradient with respect to {ref.name}: "
        )
        if not verdict.ok:
            return Verdict(
                False,
                "not_differentiable",
                f"the values are right, but the result's {verdict.message} (the reference's gradient differs: the "
                f"result is connected to {ref.name} in a different way); {_DETACHED_HINT}",
            )
    return None
