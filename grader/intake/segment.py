"""Segmentation: one document's text -> part answers and unassigned text (pure; never raises on any text).

Label rules of :func:`segment`, in order of precedence (only at the start of a line,
after Markdown decoration -- ``#`` headings, ``-``/``*`` bullets, ``>`` quotes, ``**bold**``
-- and never inside a fenced code block or a ``$$ ... $$`` / ``\\begin ... \\end`` math block):

1. A *qualified* label names question and part: ``Q5b:``, ``Q5 b)``, ``Q5.b``, ``Q5(b)``,
   ``Question 5 b``, ``Question 5 (b)``, ``Question 5, part b``, ``5b)``, ``5(b)``. It is
   always accepted (the student said exactly what it is).
2. A *question heading*: ``Question N``, ``Problem N``, ``Exercise N``, ``Task N``, ``Q N``,
   ``**Question N**``, ``## Question N``; the number must be followed by the end of the line, a
   delimiter (``: . ) - ( [``) or closing bold, or the line must be a Markdown heading -- so a
   sentence such as "Question 2 asks ..." is not a heading. A Markdown heading that is only a
   number (``## 3``) is a heading; a bare ``3.`` / ``3)`` alone on its line is one only when it is
   a later question than the last heading (an enumerated list ``1. first`` never is).
3. A *part label* alone: ``a)``, ``(a)``, ``a.``, ``a:``, ``[a]``, ``Part a``, decorated
   or not (``- a)``, ``### (a)``, ``**a)**``). It is accepted only inside a known question and
   only if it advances: the letter is the expected next part of the question (or a later
   one, when the student skipped a part); an earlier or the current letter is content
   (e.g. ``- b)`` inside q10 c). A label written in another style than the question's
   previous label (``(b)`` after ``a)``) is accepted only if it is the expected next part
   and stands out (alone on its line, a heading, or bold) -- otherwise it is a list inside
   the answer. ``a.`` followed by another single-letter abbreviation (``a. k. a.``, ``e. g.``)
   is never a label.

Anything else is content of the open part. Unknown questions (``Question 11``) and parts
the layout lacks (``d)`` after ``c)`` in a three-part question, when it is not the
continuation of a list inside the answer) open an *unassigned* block whose origin says why.
Text under a heading before any part label belongs to the question's only part when it has
one, and is unassigned (question noted) when it has several. Text before the first question
is unassigned. Lines that are only a bullet or rule (``-``, ``*``, ``---``) are dropped; a part
answered twice is joined, its origin saying so. Fenced ``python`` (or unlabelled) code blocks
are copied into ``Answer.code`` and kept in the text.
"""

from __future__ import annotations

import re
import textwrap
from bisect import bisect_right
from dataclasses import dataclass, field

from grader.intake.decode import clean_text
from grader.submission import Answer, Layout, Unassigned

_EMPH = r"(?:\*\*|__|\*|_)"
_DECOR_RE = re.compile(r"#{1,6}[ \t]*|>[ \t]*|[-*+•·▪●◦‣–][ \t]+|\*\*|__|\*|_")
_STRAY_RE = re.compile(r"[-*+•·▪●◦‣–—_=~#>]+")
_HEAD_RE = re.compile(
    r"(?P<kw>question|problem|exercise|task|answer|ans|q)[ \t]*\.?[ \t]*(?:\#[ \t]*)?"
    r"(?P<num>\d{1,3})(?!\d)(?P<emph>" + _EMPH + r")?",
    re.I | re.A,
)
_PART_AFTER_RE = re.compile(
    r"(?P<sep>[ \t]*(?:[,:.\-_–—][ \t]*)?(?:part[ \t]*)?)"
    r"(?P<emph>" + _EMPH + r")?"
    r"(?:\((?P<p1>[a-z])\)|(?P<p2>[a-z])(?P<close>\))?)"
    r"(?P<emph2>" + _EMPH + r")?",
    re.I | re.A,
)
_NUM_PART_RE = re.compile(
    r"(?P<num>\d{1,3})[ \t]*\.?[ \t]*(?:\((?P<p1>[a-z])\)|(?P<p2>[a-z])(?:\)|(?P<d>[.:])(?=\s|$)))"
    r"(?P<emph>" + _EMPH + r")?",
    re.I | re.A,
)
_NUM_HEADING_RE = re.compile(r"(?P<num>\d{1,3})(?!\d)[ \t]*[.):]?(?P<emph>" + _EMPH + r")?(?=\s|$)", re.A)
_BARE_NUM_RE = re.compile(r"(?P<num>\d{1,3})[.):]" + _EMPH + r"?[ \t]*$", re.A)
_LABEL_RE = re.compile(
    r"(?P<kw>part[ \t]*)?"
    r"(?:\((?P<p1>[a-z])\)|\[(?P<p4>[a-z])\]|(?P<p2>[a-z])\)|(?P<p3>[a-z])(?P<d3>[.:])(?=\s|$|\*|_)"
    r"|(?(kw)(?P<p5>[a-z])(?=$|[ \t]*[:.\-–—]|\*|_)|(?!)))"
    r"(?P<emph>" + _EMPH + r")?",
    re.I | re.A,
)
_ABBREV_RE = re.compile(r"[ \t]*[a-z][ \t]*\.(?:\s|$)", re.I | re.A)
_REST_RE = re.compile(r"[ \t]*(?:" + _EMPH + r"[ \t]*)?(?:[:.)\-–—](?=\s|$))?[ \t]*")
_FENCE_OPEN = re.compile(r"^[ \t]*(?P<f>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^`]*$")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?P<f>`{3,}|~{3,})[ \t]*$")
_BEGIN_RE = re.compile(r"\\begin\{(?P<env>[A-Za-z*]+)\}")
_CODE_INFOS = {"", "python", "py", "python3", "py3", "ipython", "ipython3", "pycon", "pytorch", "torch", "{python}"}
_MAX_BLOCK_LINES = 400


@dataclass
class _Label:
    kind: str  # "question" (heading, maybe with a part letter) or "part"
    num: int | None
    letter: str | None
    shape: str
    strong: bool
    rest: str


def _norm(s: str) -> str:
    """Same-length copy of a line for matching: every Unicode space becomes a plain space."""
    return "".join(" " if c.isspace() else c for c in s)


def _strip_decor(t: str) -> tuple[int, bool, bool, str | None]:
    """Skip Markdown decoration at the start: (position, was a heading, was emphasised, last emphasis)."""
    pos = 0
    heading = emph = False
    last_emph = None
    for _ in range(12):
        m = _DECOR_RE.match(t, pos)
        if not m or m.end() == pos:
            break
        tok = m.group(0)
        if tok.startswith("#"):
            heading = True
        elif tok in ("**", "__", "*", "_"):
            emph = True
            last_emph = tok
        pos = m.end()
    return pos, heading, emph, last_emph


def _rest(s: str, t: str, pos: int, last_emph: str | None, closed: bool) -> str:
    m = _REST_RE.match(t, pos)
    rest = s[m.end() :] if m else s[pos:]
    if last_emph and len(last_emph) == 2 and not closed and last_emph in rest:
        rest = last_emph + rest  # "**a) The UAT** says" keeps its bold: "**The UAT** says"
    return rest.strip()


def _delimiter_ok(t: str, pos: int, loose: bool) -> bool:
    """After a bare part letter: is this the end of a label (not a word, not an abbreviation)?"""
    c = t[pos : pos + 1]
    if c == "":
        return True
    if c in ":)-–—*_":
        return True
    if c == ".":
        return not _ABBREV_RE.match(t, pos + 1)
    if c == " " or c == "\t":
        return not loose
    return False


def _question_heading(s: str, t: str, m: re.Match[str], heading: bool, last_emph: str | None) -> _Label | None:
    """After ``Question N`` (or ``Q N``...): a qualified label if a part letter follows, a heading, or None."""
    num = int(m.group("num"))
    end = m.end()
    closed = m.group("emph") is not None
    if not closed:
        pm = _PART_AFTER_RE.match(t, end)
        if pm:
            letter = (pm.group("p1") or pm.group("p2")).lower()
            sep = pm.group("sep")
            if pm.group("p1") or pm.group("close"):
                ok = True
            else:
                loose = bool(re.search(r"[ \t,:]|part", sep, re.I))
                ok = _delimiter_ok(t, pm.end(), loose)
            if ok:
                rest = _rest(s, t, pm.end(), last_emph, pm.group("emph2") is not None)
                if pm.group("p1"):
                    shape = "(x)"
                elif pm.group("close"):
                    shape = "x)"
                else:
                    after_letter = t[pm.end() : pm.end() + 1]
                    shape = "x" + after_letter if after_letter in (":", ".") else "qualified"
                return _Label("question", num, letter, shape, True, rest)
    nxt = t[end : end + 1]
    after = t[end:].lstrip()
    if closed or heading or not after or after[:1] in ":.)-–—([" or nxt in ":.)-–—":
        if nxt == "." and _ABBREV_RE.match(t, end + 1) and not closed:
            return None
        rest = _rest(s, t, end, last_emph, closed)
        return _Label("question", num, None, "heading", True, rest)
    return None


def _match_line(s: str) -> _Label | None:
    """Classify a stripped, non-empty line: a question heading / qualified label, a part label, or None."""
    t = _norm(s)
    pos, heading, emph, last_emph = _strip_decor(t)
    strong_base = heading or emph

    m = _HEAD_RE.match(t, pos)
    if m:
        return _question_heading(s, t, m, heading, last_emph)

    m = _NUM_PART_RE.match(t, pos)
    if m:
        letter = (m.group("p1") or m.group("p2")).lower()
        if m.group("d") == "." and _ABBREV_RE.match(t, m.end()):
            return None
        rest = _rest(s, t, m.end(), last_emph, m.group("emph") is not None)
        shape = "(x)" if m.group("p1") else ("x" + m.group("d") if m.group("d") else "x)")
        return _Label("question", int(m.group("num")), letter, "numbered " + shape, True, rest)

    m = _BARE_NUM_RE.match(t, pos)
    if m and not heading:  # "3." alone on its line: a heading only if it advances (checked by the caller)
        return _Label("question", int(m.group("num")), None, "bare-number", True, "")

    if heading:
        m = _NUM_HEADING_RE.match(t, pos)
        if m:
            rest = _rest(s, t, m.end(), last_emph, m.group("emph") is not None)
            return _Label("question", int(m.group("num")), None, "heading", True, rest)

    m = _LABEL_RE.match(t, pos)
    if m:
        if m.group("p1"):
            letter, shape = m.group("p1"), "(x)"
        elif m.group("p4"):
            letter, shape = m.group("p4"), "[x]"
        elif m.group("p2"):
            letter, shape = m.group("p2"), "x)"
        elif m.group("p3"):
            letter, shape = m.group("p3"), "x" + m.group("d3")
            if m.group("d3") == "." and _ABBREV_RE.match(t, m.end() if not m.group("emph") else m.start("emph")):
                return None
        else:
            letter, shape = m.group("p5"), "part x"
        if m.group("kw"):
            shape = "part " + shape
        closed = m.group("emph") is not None
        rest = _rest(s, t, m.end(), last_emph, closed)
        strong = strong_base or not rest
        return _Label("part", None, letter.lower(), shape, strong, rest)
    return None


def question_map(layout: Layout) -> dict[int, str]:
    out: dict[int, str] = {}
    for key in layout:
        m = re.fullmatch(r"(?:q|question|problem)?[ _-]*0*(\d+)", str(key), re.I | re.A)
        if m:
            out.setdefault(int(m.group(1)), key)
    return out


def _scan(texts: list[str]) -> tuple[list[bool], dict[int, tuple[int, str]]]:
    """Lines inside fenced code or display math (never labels), and the fences: start -> (end, info)."""
    n = len(texts)
    protected = [False] * n
    fences: dict[int, tuple[int, str]] = {}
    closers: dict[str, list[tuple[int, int]]] = {"`": [], "~": []}
    for i, line in enumerate(texts):
        m = _FENCE_CLOSE.match(line)
        if m:
            closers[m.group("f")[0]].append((i, len(m.group("f"))))
    closer_idx = {ch: [c[0] for c in lst] for ch, lst in closers.items()}

    def mark(a: int, b: int) -> None:
        for k in range(a, b + 1):
            protected[k] = True

    i = 0
    while i < n:
        line = texts[i]
        m = _FENCE_OPEN.match(line)
        if m:
            ch, length = m.group("f")[0], len(m.group("f"))
            lst = closers[ch]
            k = bisect_right(closer_idx[ch], i)
            end = None
            for j, ln in lst[k : k + 200]:
                if ln >= length:
                    end = j
                    break
            if end is not None:
                mark(i + 1, end)
                fences[i] = (end, m.group("info").lower())
                i = end + 1
                continue
        end = None
        if line.count("$$") % 2 == 1:
            end = _find_close(texts, i, lambda s: s.count("$$") % 2 == 1)
        else:
            stripped = line.strip()
            bm = _BEGIN_RE.search(stripped)
            if bm and f"\\end{{{bm.group('env')}}}" not in stripped:
                closing = f"\\end{{{bm.group('env')}}}"
                end = _find_close(texts, i, lambda s, c=closing: c in s)
            elif stripped.startswith("\\[") and "\\]" not in stripped:
                end = _find_close(texts, i, lambda s: "\\]" in s)
        if end is not None:
            mark(i + 1, end)
            i = end + 1
            continue
        i += 1
    return protected, fences


def _find_close(texts: list[str], i: int, closes) -> int | None:  # noqa: ANN001
    for j in range(i + 1, min(len(texts), i + 1 + _MAX_BLOCK_LINES)):
        if not texts[j].strip():
            return None  # display math never spans a blank line
        if closes(texts[j]):
            return j
    return None


@dataclass
class _Block:
    kind: str  # pre | prelabel | part | unknown_q | unknown_part
    q: str | None = None
    part: str | None = None
    note: str = ""
    lines: list[tuple[int, str]] = field(default_factory=list)
    start: int | None = None  # index of the line that opened it (its label or heading)


def segment(text: str, layout: Layout, origin: str) -> tuple[list[Answer], list[Unassigned]]:
    """Split one document into part answers and unassigned text (pure; never raises on any text).

    ``origin`` names the document (``alice.txt``); each answer's origin adds its line range.
    """
    text = clean_text(text, drop_nul=False).replace("\r\n", "\n").replace("\r", "\n")
    units: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), 1):
        if "\f" in line:  # a page break: split, keeping the physical line number
            units.extend((number, piece) for piece in line.split("\f"))
        else:
            units.append((number, line))
    return segment_units(units, layout, origin, ("line", "lines"))


def segment_units(
    units: list[tuple[int, str]], layout: Layout, origin: str, unit_words: tuple[str, str]
) -> tuple[list[Answer], list[Unassigned]]:
    """Segment numbered lines (a document's lines, a notebook's cells or a PDF's pages, per `unit_words`)."""
    texts = [u[1] for u in units]
    protected, fences = _scan(texts)
    segmenter = _Segmenter(layout)
    for i, raw in enumerate(texts):
        segmenter.line(i, raw, protected[i])
    return _collect(segmenter.finish(), units, fences, layout, segmenter.qname, origin, unit_words)


class _Segmenter:
    """One pass over a document's lines: the open block, and where in the layout the student is."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.qmap = question_map(layout)
        self.qname = {key: num for num, key in self.qmap.items()}
        only_q = next(iter(layout)) if len(layout) == 1 else None
        self.blocks: list[_Block] = []
        self.cur = _Block("prelabel", q=only_q) if only_q else _Block("pre")
        self.q: str | None = only_q
        self.part_idx = -1
        self.last_letter: str | None = None
        self.shape_by_q: dict[str, str] = {}
        self.inner: set[str] = set()
        """Letters seen inside the current part as a list in the answer, not as labels."""
        self.last_qnum = 0

    def open_block(self, block: _Block) -> None:
        self.blocks.append(self.cur)
        self.cur = block

    def finish(self) -> list[_Block]:
        self.blocks.append(self.cur)
        return self.blocks

    def line(self, i: int, raw: str, protected: bool) -> None:
        if protected:
            self.cur.lines.append((i, raw))
            return
        s = raw.strip()
        if not s or _STRAY_RE.fullmatch(s):
            self.cur.lines.append((i, ""))
            return
        lab = _match_line(s)
        if lab is None:
            self.cur.lines.append((i, raw))
        elif lab.kind == "question":
            self._question(lab, i, raw)
        else:
            self._part_label(lab, i, raw)

    def _open_part(self, q: str, lab: _Label, i: int, shape: str) -> None:
        assert lab.letter is not None
        self.part_idx, self.last_letter = self.layout[q].index(lab.letter), lab.letter
        self.shape_by_q[q] = shape
        self.open_block(_Block("part", q=q, part=lab.letter, start=i))
        if lab.rest:
            self.cur.lines.append((i, lab.rest))

    def _question(self, lab: _Label, i: int, raw: str) -> None:
        """A question heading, maybe with a part letter (a qualified label)."""
        assert lab.num is not None
        key = self.qmap.get(lab.num)
        if lab.shape == "bare-number" and (key is None or lab.num <= self.last_qnum):
            self.cur.lines.append((i, raw))  # "2." alone is a heading only if it is a later question we know
            return
        self.last_qnum = lab.num
        if key is None:
            if lab.shape.startswith("numbered"):  # "7b)" for a question we do not have: just text
                self.cur.lines.append((i, raw))
                return
            label = f"Question {lab.num}" + (f" {lab.letter}" if lab.letter else "")
            self.open_block(_Block("unknown_q", note=f"{label} is not in the rubrics", lines=[(i, raw)], start=i))
            self.q, self.part_idx, self.last_letter, self.inner = None, -1, None, set()
            return
        self.q, self.inner = key, set()
        if lab.letter is None:
            self.part_idx, self.last_letter = -1, None
            self.open_block(_Block("prelabel", q=key, start=i))
            if lab.rest:
                self.cur.lines.append((i, lab.rest))
        elif lab.letter in self.layout[key]:
            self._open_part(key, lab, i, lab.shape.removeprefix("numbered "))
        else:
            self.last_letter = lab.letter
            note = f"Question {lab.num} has no part {lab.letter} in the rubrics"
            self.open_block(_Block("unknown_part", q=key, note=note, lines=[(i, raw)], start=i))

    def _part_label(self, lab: _Label, i: int, raw: str) -> None:
        """A bare part label: a new part if it advances in the current question, else content."""
        q = self.q
        if q is None or self.cur.kind in ("unknown_q", "unknown_part") or lab.letter is None:
            self.cur.lines.append((i, raw))
            return
        parts = self.layout[q]
        prev_shape = self.shape_by_q.get(q)
        if lab.letter not in parts and self._continues_past_layout(lab, parts, prev_shape):
            num = self.qname.get(q, q)
            self.open_block(
                _Block(
                    "unknown_part",
                    q=q,
                    note=f"Question {num} has no part {lab.letter} in the rubrics",
                    lines=[(i, raw)],
                    start=i,
                )
            )
            self.last_letter = lab.letter
            return
        if not self._advances(lab, parts, prev_shape):
            self.inner.add(lab.letter)
            self.cur.lines.append((i, raw))
            return
        self.inner = set()
        self._open_part(q, lab, i, lab.shape)

    def _advances(self, lab: _Label, parts: list[str], prev_shape: str | None) -> bool:
        """The expected next part (in the question's label style, or standing out), or a later one in that style."""
        if lab.letter not in parts:
            return False
        same_shape = prev_shape is None or prev_shape == lab.shape
        idx = parts.index(lab.letter)
        if idx == self.part_idx + 1:
            return same_shape or lab.strong
        return idx > self.part_idx + 1 and same_shape

    def _continues_past_layout(self, lab: _Label, parts: list[str], prev_shape: str | None) -> bool:
        """``d)`` right after ``c)``, in its style, in a question whose parts end before it: a part the rubrics lack."""
        assert lab.letter is not None
        return (
            self.last_letter is not None
            and prev_shape == lab.shape
            and all(len(p) == 1 and p < lab.letter for p in parts)
            and ord(lab.letter) == ord(self.last_letter) + 1
            and chr(ord(lab.letter) - 1) not in self.inner
        )


def _span(block: _Block, units: list[tuple[int, str]]) -> tuple[int, int] | None:
    idx = [i for i, line in block.lines if line.strip()]
    if not idx:
        return None
    first = idx[0] if block.start is None else min(block.start, idx[0])
    return units[first][0], units[idx[-1]][0]


def _fmt_span(span: tuple[int, int], unit_words: tuple[str, str]) -> str:
    a, b = span
    return f"{unit_words[0]} {a}" if a == b else f"{unit_words[1]} {a}-{b}"


def _block_text(block: _Block) -> str:
    return "\n".join(line for _, line in block.lines).strip()


def _block_code(block: _Block, texts: list[str], fences: dict[int, tuple[int, str]]) -> list[str]:
    code = []
    for i, _ in block.lines:
        if i in fences:
            end, info = fences[i]
            if info in _CODE_INFOS:
                body = textwrap.dedent("\n".join(texts[i + 1 : end])).strip("\n")
                if body.strip():
                    code.append(body)
    return code


def _collect(
    blocks: list[_Block],
    units: list[tuple[int, str]],
    fences: dict[int, tuple[int, str]],
    layout: Layout,
    qname: dict[str, int],
    origin: str,
    unit_words: tuple[str, str],
) -> tuple[list[Answer], list[Unassigned]]:
    texts = [u[1] for u in units]
    labelled_q = {b.q for b in blocks if b.kind == "part"}
    # (part id) -> list of runs; a run is a list of consecutive blocks (prelabel + part of a 1-part question)
    runs: dict[str, list[list[int]]] = {}
    unassigned: list[tuple[int, Unassigned]] = []
    for bi, block in enumerate(blocks):
        text = _block_text(block)
        prev = blocks[bi - 1] if bi else None
        if (
            block.kind == "part"
            and prev is not None
            and prev.kind == "prelabel"
            and prev.q == block.q
            and len(layout.get(block.q or "", [])) == 1
            and prev.start is not None
        ):
            block.start = prev.start  # "Question 3" + "a)": the answer starts at the heading
        span = _span(block, units)
        if not text or span is None:
            continue
        where = f"{origin} {_fmt_span(span, unit_words)}"
        target: str | None = None
        if block.kind == "part":
            target = f"{block.q}.{block.part}"
        elif block.kind == "prelabel" and block.q is not None:
            parts = layout.get(block.q, [])
            if len(parts) == 1:
                target = f"{block.q}.{parts[0]}"
            else:
                num = qname.get(block.q, block.q)
                plist = ", ".join(parts)
                if block.q in labelled_q:
                    why = f"under Question {num} before its first part label ({block.q} has parts {plist})"
                else:
                    why = f"Question {num} has parts {plist} but this text has no part labels ({block.q})"
                unassigned.append((bi, Unassigned(text=text, origin=f"{where}: {why}")))
                continue
        if target is None:
            why = block.note or "text before the first question"
            unassigned.append((bi, Unassigned(text=text, origin=f"{where}: {why}")))
            continue
        lst = runs.setdefault(target, [])
        if lst and lst[-1][-1] == bi - 1 and blocks[bi - 1].kind == "prelabel" and blocks[bi - 1].q == block.q:
            lst[-1].append(bi)
        else:
            lst.append([bi])

    order: dict[str, int] = {}
    for qk, ps in layout.items():
        for p in ps:
            order.setdefault(f"{qk}.{p}", len(order))
    answers: list[Answer] = []
    for pid, pid_runs in runs.items():
        texts_out: list[str] = []
        code: list[str] = []
        spans: list[str] = []
        for run in pid_runs:
            run_blocks = [blocks[bi] for bi in run]
            merged = _Block("part", lines=[ln for b in run_blocks for ln in b.lines], start=run_blocks[0].start)
            texts_out.append(_block_text(merged))
            code.extend(c for b in run_blocks for c in _block_code(b, texts, fences))
            span = _span(merged, units)
            if span is not None:
                spans.append(_fmt_span(span, unit_words))
        where = f"{origin} " + " and ".join(spans)
        if len(pid_runs) > 1:
            where += f" (answered {len(pid_runs)} times; the answers are joined in order)"
        answers.append(Answer(part_id=pid, text="\n\n".join(texts_out), code=code, origin=where))
    answers.sort(key=lambda a: (order.get(a.part_id, len(order)), a.part_id))
    return answers, [u for _, u in unassigned]
