"""Which code runs: the answer's code blocks, joined as a notebook would run them.

All of the answer's code blocks (fenced blocks, notebook cells, or the part's ``.py``
file) are joined in order: students split helpers and the entry point across cells.
IPython magics (``%time``, ``!pip``) become ``pass``. A block that is not valid Python on
its own (pasted output, pseudo-code) is dropped, with a note, when another block defines
the entry point. With no code block at all, an answer whose text is valid Python (or has
a ``def`` of the entry point) is used as code.

Every step is linear in the answer's length (a 2 MB answer is selected in about a
second): the text is parsed a bounded number of times, never once per prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grader.submission import Answer

_MAGIC = re.compile(r"^([ \t]*)[%!].*$")
_PREFIX_TRIES = 12  # parses of a text answer's tail before giving up on finding its code
_TOP_LEVEL = re.compile(r"(?:def |class |async def |import |from |@)")


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


def _strip_magics(block: str) -> str:
    return "\n".join(
        _MAGIC.sub(lambda m: m.group(1) + "pass  # notebook magic removed", ln) for ln in block.splitlines()
    )


def _parse_error(text: str) -> SyntaxError | None:
    """None when the text compiles; else the error (a ValueError or a too-deep nesting counts as line 1).

    Compiling to bytecode stays in C (no syntax tree objects), about twice as fast as ast.parse.
    """
    try:
        compile(text, "<answer>", "exec", dont_inherit=True)
        return None
    except SyntaxError as exc:
        return exc
    except (ValueError, RecursionError, MemoryError):
        return SyntaxError("cannot parse", ("<answer>", 1, 0, ""))


def _parses(text: str) -> bool:
    return _parse_error(text) is None


def _defines(text: str, name: str) -> bool:
    # [ \t] rather than \s: \s would let every line start scan all blank lines below it (quadratic)
    pattern = rf"^[ \t]*(async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(|^[ \t]*{re.escape(name)}[ \t]*="
    return re.search(pattern, text, re.M) is not None


def _longest_prefix(lines: list[str], entry_point: str | None) -> list[str] | None:
    """The longest start of these lines that compiles (and defines the entry point, when one is named).

    Each failed parse cuts the candidate just before the line the error is on (an unclosed
    bracket is reported where it opens), so a few parses suffice, whatever the length.
    """
    end = len(lines)
    for _ in range(_PREFIX_TRIES):
        cand = "\n".join(lines[:end])
        if entry_point is not None and not _defines(cand, entry_point):
            return None
        err = _parse_error(cand)
        if err is None:
            return lines[:end]
        end = min(end - 1, max((err.lineno or end) - 1, 0))
        if end <= 0:
            return None
    return None


def _code_in_text(text: str, entry_point: str) -> str | None:
    """The longest start of the text's code part that compiles and defines the entry point.

    Top-level definitions and imports split the code into pieces that compile on their own,
    so only the piece where the code ends (and the result, once) is parsed in full.
    """
    m = re.search(rf"^[ \t]*(import |from |def {re.escape(entry_point)}\b)", text, re.M)
    if not m or not _defines(text, entry_point):
        return None
    lines = text[m.start() :].splitlines()
    starts = [0] + [i for i, ln in enumerate(lines) if i and _TOP_LEVEL.match(ln) and not lines[i - 1].startswith("@")]
    good = 0
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        if _parse_error("\n".join(lines[a:b])) is not None:
            break
        good = b
    need = None if _defines("\n".join(lines[:good]), entry_point) else entry_point
    cand = lines[:good] + (_longest_prefix(lines[good:], need) or [])
    if cand and _defines("\n".join(cand), entry_point) and _parses("\n".join(cand)):
        return "\n".join(cand)
    found = _longest_prefix(lines, entry_point)  # pieces that only compile together (a rare layout)
    return "\n".join(found) if found else None


def _drop_broken_blocks(blocks: list[str], ids: list[int], entry_point: str) -> tuple[list[str], list[int], list[str]]:
    if len(blocks) <= 1 or _parses("\n\n".join(blocks)):
        return blocks, ids, []
    good = [(i, b) for i, b in zip(ids, blocks) if _parses(b)]
    if good and any(_defines(b, entry_point) for _, b in good) and len(good) < len(blocks):
        kept = {g for g, _ in good}
        dropped = [i for i in ids if i not in kept]
        note = "code block(s) " + ", ".join(map(str, dropped)) + " are not valid Python on their own and were ignored"
        return [b for _, b in good], [g for g, _ in good], [note]
    return blocks, ids, []


def select_code(answer: Answer, entry_point: str) -> SourceCode | None:
    """Join the answer's code blocks into one program (see module docstring); None if it has no code."""
    blocks = [_strip_magics(b) for b in answer.code if b and b.strip()]
    origin = "code blocks"
    if not blocks:
        text = answer.text or ""
        if text.strip() and _defines(text, entry_point) and _parses(text):
            blocks, origin = [text], "answer text"
        else:
            found = _code_in_text(text, entry_point)
            if found is not None:
                blocks, origin = [found], "answer text"
    if not blocks:
        return None
    blocks, ids, notes = _drop_broken_blocks(blocks, list(range(1, len(blocks) + 1)), entry_point)
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
