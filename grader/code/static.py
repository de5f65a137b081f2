"""The static check for forbidden names: the first, friendly line of defence, before anything runs.

It reads the code's syntax tree (``ast``): direct use (``torch.autograd.grad``), aliases
(``import torch as T``, ``from torch import autograd as ag``), attribute access on any
object for bare names (``loss.backward()``), and string look-ups (``getattr(torch,
"autograd")``, ``__import__("functorch")``, ``importlib.import_module(...)``). A name may
be a glob (``torch.ops.*backward*``). It cannot see names built at run time: the sandbox's
runtime guards are the second line. Linear in the code's length.
"""

from __future__ import annotations

import ast
import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase

from grader.rubric import CodeSpec

# Names under a forbidden module that do not compute gradients (the runtime guard leaves
# classes such as no_grad alone anyway).
_HARMLESS = {
    "torch.autograd.no_grad",
    "torch.autograd.enable_grad",
    "torch.autograd.set_grad_enabled",
    "torch.autograd.grad_mode",
    "torch.autograd.Variable",
    "torch.autograd.inference_mode",
}

AUTOGRAD_NAMES = [
    "torch.autograd",
    "backward",
    "torch.func",
    "functorch",
    "torch._functorch",
    "torch.nn.grad",
    "torch._C",
    "torch._VF",
    "torch.ops.*backward*",
    "torch.utils._python_dispatch",
    "grad_fn",
    "_grad_fn",
    "next_functions",
    "run_backward",
    "_engine_run_backward",
    "_execution_engine",
]
"""What a part that forbids autograd also forbids statically: every way into the engine we know of."""


def forbidden_names(spec: CodeSpec) -> list[str]:
    """The names the static check refuses for a part: the rubric's, plus autograd's ways in when it is forbidden."""
    names = list(spec.forbidden)
    if spec.forbid_autograd:
        names += [n for n in AUTOGRAD_NAMES if n not in names]
    return names


class _Matcher:
    """Is a dotted name forbidden? Built once per check: a 1 MB answer has a million names to judge."""

    def __init__(self, forbidden: list[str]) -> None:
        self.harmless_prefixes = tuple(h + "." for h in _HARMLESS)
        self.globs = [f for f in forbidden if "*" in f]
        dotted = [f for f in forbidden if "." in f and "*" not in f]
        self.exact = set(dotted)
        self.prefixes = tuple(f + "." for f in dotted)
        self.bare = {f for f in forbidden if "." not in f and "*" not in f}

    def __call__(self, name: str) -> bool:
        if name in _HARMLESS or name.startswith(self.harmless_prefixes):
            return False
        if name in self.exact or name.startswith(self.prefixes):
            return True
        if self.bare and not self.bare.isdisjoint(name.split(".")):
            return True
        return any(fnmatchcase(name, g) for g in self.globs)


def _aliases(nodes: list[ast.AST], hit) -> dict[str, str]:  # noqa: ANN001
    """Import aliases (name -> dotted module path); an import of a forbidden name is itself a hit."""
    aliases: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                hit(a.name, node.lineno)
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            hit(node.module, node.lineno)
            for a in node.names:
                full = f"{node.module}.{a.name}"
                hit(full, node.lineno)
                aliases[a.asname or a.name] = full
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """torch.autograd.grad for an attribute chain (through aliases and getattr with a constant)."""
    chain: list[str] = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([aliases.get(node.id, node.id), *reversed(chain)])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
        inner = _getattr_dotted(node, aliases)
        if inner:
            return ".".join([inner, *reversed(chain)])
    return "?." + ".".join(reversed(chain)) if chain else None


def _getattr_dotted(call: ast.Call, aliases: dict[str, str]) -> str | None:
    if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str):
        base = _dotted(call.args[0], aliases) or "?"
        return f"{base}.{call.args[1].value}"
    return None


def _most_specific(hits: dict[tuple[str, int], None]) -> list[tuple[str, int]]:
    """Per line, drop a name when a longer one on that line extends it (torch.autograd vs torch.autograd.grad)."""
    by_line: dict[int, set[str]] = defaultdict(set)
    for dotted, line in hits:
        by_line[line].add(dotted)
    out: set[tuple[str, int]] = set()
    for line, names in by_line.items():
        covered = {n.rsplit(".", k)[0] for n in names for k in range(1, n.count(".") + 1)}
        out.update((n.replace("?.", "."), line) for n in names if n not in covered)
    return sorted(out, key=lambda t: (t[1], t[0]))


@contextmanager
def _no_gc() -> Iterator[None]:
    """Building a large syntax tree makes the cyclic collector run over and over (4-5x slower); trees have no cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse(code: str) -> ast.Module:
    """ast.parse, without the collector's overhead on large inputs."""
    with _no_gc():
        return ast.parse(code)


def find_forbidden(code: str, forbidden: list[str]) -> list[tuple[str, int]]:
    """Forbidden names the code uses, as (what, line). Raises SyntaxError if the code does not parse."""
    if not forbidden:
        return []
    with _no_gc():
        return _find(parse(code), _Matcher(forbidden))


def _find(tree: ast.Module, forbidden_name: _Matcher) -> list[tuple[str, int]]:
    hits: dict[tuple[str, int], None] = {}

    def hit(dotted: str, line: int) -> None:
        if forbidden_name(dotted):
            hits[(dotted, line)] = None

    nodes = list(ast.walk(tree))  # one walk: aliases are known only at its end, so names are judged after it
    aliases = _aliases(nodes, hit)
    inner = {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
    for node in nodes:
        if isinstance(node, ast.Attribute):
            if id(node) in inner:  # judge only the whole chain: torch.autograd.no_grad, not torch.autograd
                continue
            d = _dotted(node, aliases)
            if d:
                hit(d, node.lineno)
        elif isinstance(node, ast.Name) and node.id in aliases and isinstance(node.ctx, ast.Load):
            hit(aliases[node.id], node.lineno)
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name == "getattr":
                d = _getattr_dotted(node, aliases)
                if d:
                    hit(d, node.lineno)
            elif name in ("__import__", "import_module") and node.args:
                a0 = node.args[0]
                if isinstance(a0, ast.Constant) and isinstance(a0.value, str):
                    hit(a0.value, node.lineno)
    return _most_specific(hits)
