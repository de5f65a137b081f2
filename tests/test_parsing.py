"""Tests of grader.intake: discovery, file reading, and segmentation into part answers.

Fixtures are written here in the style of real PDF-extracted submissions (headings "Question N",
"- a)" parts, LaTeX, page breaks, stray bullets); nothing is read from outside the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader.intake import discover, parse_source, part_from_filename, segment
from grader.submission import SubmissionError, SubmissionSource

LAYOUT = {
    "q1": ["a", "b"],
    "q2": ["a", "b"],
    "q3": ["a"],
    "q4": ["a"],
    "q5": ["a", "b"],
    "q6": ["a", "b"],
    "q7": ["a", "b", "c", "d"],
    "q8": ["a"],
    "q9": ["a", "b", "c"],
    "q10": ["a", "b", "c"],
}
SMALL = {"q1": ["a", "b"], "q2": ["a", "b"], "q3": ["a"], "q10": ["a", "b", "c"]}


def seg(text: str, layout: dict | None = None, origin: str = "alice.txt"):
    answers, unassigned = segment(text, layout or SMALL, origin)
    return {a.part_id: a for a in answers}, unassigned


def texts(text: str, layout: dict | None = None) -> dict[str, str]:
    answers, _ = seg(text, layout)
    return {pid: a.text for pid, a in answers.items()}


# A PDF-extracted submission in the style TAs receive: title line, "- a)" labels, LaTeX,
# a stray "-", a paragraph broken by a page break, a label alone on its line, nested bullets.
PDF_STYLE = """\


Deep Learning Homework 2 - Dry Part

Question 1

- a) No. The theorem only promises that some wide network exists; it says nothing about how many units it needs or whether SGD finds the weights.
- b) Depth lets the network compose features, so it needs far fewer parameters than a single wide layer.

Question 3

- a) Yes, momentum damps the zig-zag in a narrow valley and speeds up convergence, even though the surface is convex. The heavy ball rate depends on $\\sqrt{\\kappa}$ instead of $\\kappa$.
-

Question 5

- a) There is no bias, so 1024 weights. The gradient is

$$\\begin{aligned} \\hat{y} &= \\sum_{i,j} W_{ij} x_{ij} \\\\ \\frac{\\partial L}{\\partial W_{ij}} &= 2(\\hat{y} - y) x_{ij} \\end{aligned}$$

Question 9

- a) The KL term is non-negative, so the ELBO is a lower bound on the likelihood.
- c) The prior term has no parameters because the forward process is fixed and the prior is a standard normal, so its gradient is

\x0c
zero and we can drop it during training.

Question 10

- a) Gradients are products of many Jacobians along the chain rule.
- b) Sigmoid derivatives are at most 0.25, so ten layers give at most $0.25^{10}$.

c)

- **MLP: ReLU** keeps the derivative at 1 for positive inputs.
- b) this bullet is a list item inside c, not part b again.
- **RNN: clipping** caps the gradient norm.
"""


class TestSharedStyleDocument:
    def test_every_part_lands_in_its_place(self):
        answers, unassigned = seg(PDF_STYLE, LAYOUT, "bob.txt")
        assert sorted(answers) == sorted(
            ["q1.a", "q1.b", "q3.a", "q5.a", "q9.a", "q9.c", "q10.a", "q10.b", "q10.c"]
        )
        assert answers["q1.a"].text.startswith("No. The theorem only promises")
        assert answers["q1.b"].text.startswith("Depth lets the network")

    def test_title_line_is_unassigned_and_leading_blank_lines_dropped(self):
        _, unassigned = seg(PDF_STYLE, LAYOUT, "bob.txt")
        assert [u.text for u in unassigned] == ["Deep Learning Homework 2 - Dry Part"]
        assert unassigned[0].origin == "bob.txt line 3: text before the first question"

    def test_stray_dash_is_harmless(self):
        answers, _ = seg(PDF_STYLE, LAYOUT)
        text = answers["q3.a"].text
        assert text.endswith("instead of $\\kappa$.")
        assert "\n-" not in text

    def test_latex_block_stays_in_its_part(self):
        answers, _ = seg(PDF_STYLE, LAYOUT)
        text = answers["q5.a"].text
        assert text.startswith("There is no bias, so 1024 weights.")
        assert "\\frac{\\partial L}{\\partial W_{ij}} &= 2(\\hat{y} - y) x_{ij}" in text
        assert text.endswith("\\end{aligned}$$")

    def test_page_break_mid_sentence_stays_in_one_part(self):
        answers, _ = seg(PDF_STYLE, LAYOUT)
        text = answers["q9.c"].text
        assert text.startswith("The prior term has no parameters")
        assert text.endswith("zero and we can drop it during training.")
        assert "q9.b" not in answers  # a missing part is simply absent

    def test_label_alone_on_its_line_and_nested_bullets(self):
        answers, _ = seg(PDF_STYLE, LAYOUT)
        c = answers["q10.c"].text
        assert c.startswith("- **MLP: ReLU** keeps")
        assert "- b) this bullet is a list item inside c" in c
        assert c.endswith("- **RNN: clipping** caps the gradient norm.")
        assert answers["q10.b"].text.startswith("Sigmoid derivatives")

    def test_origins_name_file_and_lines(self):
        answers, _ = seg(PDF_STYLE, LAYOUT, "bob.txt")
        assert answers["q1.a"].origin == "bob.txt line 7"
        assert re.fullmatch(r"bob\.txt lines \d+-\d+", answers["q9.c"].origin)
        lines = PDF_STYLE.split("\n")
        first, last = map(int, answers["q10.c"].origin.split()[-1].split("-"))
        assert lines[first - 1].strip() == "c)"
        assert lines[last - 1].startswith("- **RNN")


# -- label styles ------------------------------------------------------------------------------

A_TEXT = "Depth alone does not guarantee the best accuracy."
B_TEXT = "Deep nets compose features hierarchically."

LABEL_STYLES = {
    "question-dash-paren": f"Question 1\n\n- a) {A_TEXT}\n- b) {B_TEXT}\n",
    "q-space": f"Q 1\na) {A_TEXT}\nb) {B_TEXT}\n",
    "q-attached": f"Q1\na) {A_TEXT}\nb) {B_TEXT}\n",
    "markdown-headings": f"## Question 1\n\n### (a)\n{A_TEXT}\n\n### (b)\n{B_TEXT}\n",
    "bold-question-bold-label": f"**Question 1**\n\n**a)** {A_TEXT}\n\n**b)** {B_TEXT}\n",
    "problem-dot": f"Problem 1\na. {A_TEXT}\nb. {B_TEXT}\n",
    "parens": f"Question 1:\n(a) {A_TEXT}\n(b) {B_TEXT}\n",
    "qualified-colon": f"Q1a: {A_TEXT}\nQ1b: {B_TEXT}\n",
    "qualified-space-paren": f"Q1 a) {A_TEXT}\nQ1 b) {B_TEXT}\n",
    "numbered": f"1a) {A_TEXT}\n1b) {B_TEXT}\n",
    "question-n-letter": f"Question 1 a\n{A_TEXT}\n\nQuestion 1 b\n{B_TEXT}\n",
    "question-n-paren": f"Question 1 (a) {A_TEXT}\nQuestion 1 (b) {B_TEXT}\n",
    "q-dot-letter": f"Q1.a {A_TEXT}\nQ1.b {B_TEXT}\n",
    "labels-alone": f"Question 1\na)\n{A_TEXT}\nb)\n\n{B_TEXT}\n",
    "part-word": f"Question 1\nPart a: {A_TEXT}\nPart b: {B_TEXT}\n",
    "question-colon-title": f"Question 1: Universal approximation\n- a) {A_TEXT}\n- b) {B_TEXT}\n",
    "setext-and-star-bullets": f"Question 1\n==========\n* a) {A_TEXT}\n* b) {B_TEXT}\n",
    "uppercase": f"QUESTION 1\nA) {A_TEXT}\nB) {B_TEXT}\n",
    "bare-number-heading": f"1.\na) {A_TEXT}\nb) {B_TEXT}\n\n2.\na) other\n",
    "number-dot-part": f"1. a) {A_TEXT}\nb) {B_TEXT}\n",
    "points-in-heading": f"Question 1 (10 points)\na) {A_TEXT}\nb) {B_TEXT}\n",
    "task-keyword": f"Task 1.\na) {A_TEXT}\nb) {B_TEXT}\n",
}


@pytest.mark.parametrize("style", sorted(LABEL_STYLES))
def test_label_styles(style):
    got = texts(LABEL_STYLES[style])
    assert got["q1.a"] == A_TEXT
    assert got["q1.b"] == B_TEXT


def test_bold_spanning_the_label_keeps_the_rest_bold():
    got = texts("Question 1\n**a) The UAT** is an existence result.\n")
    assert got["q1.a"] == "**The UAT** is an existence result."


def test_question_heading_title_goes_to_single_part():
    got = texts("Question 3 - Momentum\nYes, it helps in ill-conditioned valleys.\n")
    assert got["q3.a"] == "Momentum\nYes, it helps in ill-conditioned valleys."


def test_single_part_question_without_label():
    got = texts("Question 3\n\nMomentum still helps: it damps oscillations.\n\nQuestion 1\na) x1\nb) y1\n")
    assert got == {"q3.a": "Momentum still helps: it damps oscillations.", "q1.a": "x1", "q1.b": "y1"}


def test_multi_part_question_without_labels_is_unassigned_with_question_noted():
    answers, unassigned = seg("Question 1\nOne hidden layer suffices in theory.\nDepth is cheaper.\n")
    assert answers == {}
    assert len(unassigned) == 1
    assert unassigned[0].text == "One hidden layer suffices in theory.\nDepth is cheaper."
    assert "Question 1" in unassigned[0].origin and "q1" in unassigned[0].origin
    assert unassigned[0].origin.startswith("alice.txt lines 1-3")


def test_text_before_the_first_label_of_a_multi_part_question_is_kept():
    answers, unassigned = seg("Question 1: UAT\nSome intro sentence.\na) x\nb) y\n")
    assert {k: a.text for k, a in answers.items()} == {"q1.a": "x", "q1.b": "y"}
    assert unassigned[0].text == "UAT\nSome intro sentence."
    assert "before its first part label" in unassigned[0].origin


def test_skipped_part_label_is_accepted():
    got = texts("Question 10\na) products of Jacobians\nc) clipping for RNNs\n")
    assert got == {"q10.a": "products of Jacobians", "q10.c": "clipping for RNNs"}


def test_missing_parts_are_absent_and_empty_labels_dropped():
    answers, unassigned = seg("Question 1\na) x\nb)\n\nQuestion 2\n- a)\n-\n")
    assert list(answers) == ["q1.a"]
    assert unassigned == []


def test_single_question_layout_without_heading():
    got = texts("a) first part\nb) second part\n", {"q5": ["a", "b"]})
    assert got == {"q5.a": "first part", "q5.b": "second part"}


def test_crlf_and_unicode_spaces():
    got = texts("Question\u00a01\r\na)\u00a0x\r\nb) y\r\n")
    assert got == {"q1.a": "x", "q1.b": "y"}


# -- false-positive guards ---------------------------------------------------------------------


def test_aka_at_line_start_is_not_a_label():
    got = texts("Question 3\na. k. a. the heavy-ball method, momentum keeps a velocity.\n")
    assert got["q3.a"] == "a. k. a. the heavy-ball method, momentum keeps a velocity."
    got = texts("Question 1\na) fine\ne. g. a sigmoid net\nb. g. not a label either\nb) real b\n")
    assert got["q1.a"] == "fine\ne. g. a sigmoid net\nb. g. not a label either"
    assert got["q1.b"] == "real b"


def test_enumerations_and_inline_labels_do_not_split_parts():
    doc = (
        "Question 1\n"
        "a) There are two reasons, a) the first reason, b) the second.\n"
        "1. first point\n"
        "2. second point\n"
        "(i) a roman item\n"
        "(ii) another\n"
        "b) The real part b.\n"
    )
    got = texts(doc)
    assert got["q1.a"].splitlines() == [
        "There are two reasons, a) the first reason, b) the second.",
        "1. first point",
        "2. second point",
        "(i) a roman item",
        "(ii) another",
    ]
    assert got["q1.b"] == "The real part b."


def test_labels_must_advance_within_a_question():
    doc = "Question 10\na) x\nb) y\nc) remedies:\n- a) MLP: ReLU\n- b) CNN: residuals\n- c) RNN: clipping\n"
    answers, unassigned = seg(doc)
    assert answers["q10.c"].text == "remedies:\n- a) MLP: ReLU\n- b) CNN: residuals\n- c) RNN: clipping"
    assert unassigned == []


def test_inner_list_in_another_style_is_not_a_new_part():
    got = texts("Question 1\na) Two reasons:\n(a) capacity\n(b) optimisation\nb) real b\n")
    assert got == {"q1.a": "Two reasons:\n(a) capacity\n(b) optimisation", "q1.b": "real b"}


def test_inner_list_continuing_past_the_last_part_is_content():
    doc = "Question 10\na) x\nb) y\nc) remedies:\na) mlp\nb) cnn\nc) rnn\nd) transformers too\n"
    answers, unassigned = seg(doc)
    assert answers["q10.c"].text.endswith("d) transformers too")
    assert unassigned == []


def test_bare_number_is_a_heading_only_when_it_advances():
    got = texts("Question 3\nThree points:\n1.\n2.\nall about momentum\n")
    assert got == {"q3.a": "Three points:\n1.\n2.\nall about momentum"}
    got = texts("Question 1\na) x\nb) y\n2.\na) z\n11.\nstill q2 a\n")
    assert got == {"q1.a": "x", "q1.b": "y", "q2.a": "z\n11.\nstill q2 a"}


def test_prose_starting_with_question_is_not_a_heading():
    got = texts("Question 1\na) Question 2 asks about CNNs, but here Q3 a student said.\nb) y\n")
    assert got["q1.a"] == "Question 2 asks about CNNs, but here Q3 a student said."


def test_labels_inside_math_and_code_blocks_are_content():
    doc = (
        "Question 1\n"
        "a) $$\n"
        "b) inside math\n"
        "$$\n"
        "```python\n"
        "# Question 2\n"
        "b) = 3\n"
        "```\n"
        "b) outside\n"
    )
    got = texts(doc)
    assert "b) inside math" in got["q1.a"] and "# Question 2" in got["q1.a"]
    assert got["q1.b"] == "outside"


def test_unclosed_fence_does_not_swallow_the_rest():
    got = texts("Question 1\na) ```python\n```python\nx = 1\nb) y\n\nQuestion 3\nz\n")
    assert got["q1.b"] == "y" and got["q3.a"] == "z"


# -- unknown labels, duplicates, code ----------------------------------------------------------


def test_unknown_question_goes_to_unassigned_with_reason():
    answers, unassigned = seg("Question 1\na) x\nb) y\n\nQuestion 11\nBonus thoughts.\nMore.\n\nQuestion 3\nz\n")
    assert set(answers) == {"q1.a", "q1.b", "q3.a"}
    (u,) = unassigned
    assert u.text == "Question 11\nBonus thoughts.\nMore."
    assert u.origin == "alice.txt lines 5-7: Question 11 is not in the rubrics"


def test_unknown_part_goes_to_unassigned():
    answers, unassigned = seg("Question 10\na) x\nb) y\nc) z\nd) an extra part\n")
    assert answers["q10.c"].text == "z"
    assert unassigned[0].text == "d) an extra part"
    assert "Question 10 has no part d" in unassigned[0].origin
    _, unassigned = seg("Q3b: not a part\n")
    assert "Question 3 has no part b" in unassigned[0].origin


def test_duplicate_answers_are_concatenated_with_a_note():
    answers, _ = seg("Question 3\nfirst try\n\nQuestion 1\na) x\nb) y\n\nQuestion 3\na) second try\n")
    a = answers["q3.a"]
    assert a.text == "first try\n\nsecond try"
    assert a.origin == "alice.txt lines 1-2 and lines 8-9 (answered 2 times; the answers are joined in order)"


def test_fenced_code_goes_to_code_and_stays_in_text():
    doc = "Q5b: here is my code\n```python\ndef f(x):\n    return 2 * x\n```\nit doubles.\n"
    answers, _ = seg(doc, {"q5": ["a", "b"]})
    a = answers["q5.b"]
    assert a.code == ["def f(x):\n    return 2 * x"]
    assert "```python\ndef f(x):\n    return 2 * x\n```" in a.text
    assert a.text.startswith("here is my code") and a.text.endswith("it doubles.")


def test_non_python_fences_are_not_code():
    answers, _ = seg("Q5b:\n```text\nnot code\n```\n", {"q5": ["a", "b"]})
    assert answers["q5.b"].code == []


# -- property tests ----------------------------------------------------------------------------

FRAGMENTS = [
    "Question 1", "Question 11", "Q3", "Q 10", "## Question 2", "**Question 3**", "Problem 1",
    "- a)", "a)", "(b)", "c.", "### (a)", "**b)**", "Q5b:", "Q1 b)", "1a)", "Question 1 b", "d)",
    "a. k. a.", "1.", "(i)", "-", "*", "$$", "$x^2$", "\\begin{aligned}", "\\end{aligned}", "```python",
    "```", "~~~", "\x0c", "\n", "\n\n", "\r\n", "  ", "\t", "Part a:", "e. g.", "[c]", "> ", "---",
]
KEYWORDS = {"question", "problem", "exercise", "task", "answer", "ans", "part"}
VOCAB = ["gradient", "momentum", "kernel", "softmax", "critic", "velocity", "lipschitz", "jacobian", "entropy"]


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in re.findall(r"[A-Za-z]{2,}", text) if t.lower() not in KEYWORDS]


def _output_tokens(answers, unassigned) -> list[str]:
    return _tokens("\n".join([a.text for a in answers] + [u.text for u in unassigned]))


def _assert_no_word_lost(doc: str, layout: dict) -> None:
    answers, unassigned = segment(doc, layout, "p.txt")
    out = _output_tokens(answers, unassigned)
    for word in set(_tokens(doc)):
        assert out.count(word) >= _tokens(doc).count(word), word


label_docs = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(VOCAB), st.text(max_size=8)), max_size=60
).map(lambda parts: " ".join(parts) if len(parts) % 3 == 0 else "\n".join(parts))
label_alphabet = st.text(alphabet=st.sampled_from(list("abcdQq0135 \n\t()[].:-*#_$`~\x0c\r")) | st.characters())
layouts = st.sampled_from([SMALL, LAYOUT, {"q5": ["a", "b"]}, {"q3": ["a"]}, {}])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(st.text(), label_docs, label_alphabet), layout=layouts)
def test_segment_never_raises_and_loses_no_word(doc, layout):
    _assert_no_word_lost(doc, layout)


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(
        st.tuples(
            st.sampled_from(FRAGMENTS),
            st.lists(st.sampled_from(VOCAB), min_size=1, max_size=6),
            st.sampled_from(["\n", "\n\n", " ", "\n\x0c\n", "\n-\n"]),
        ),
        max_size=25,
    ),
    layout=layouts,
)
def test_content_words_survive_label_soup(blocks, layout):
    doc = "".join(f"{label} {' '.join(words)}{sep}" for label, words, sep in blocks)
    _assert_no_word_lost(doc, layout)


# -- parse_source: reading files ---------------------------------------------------------------


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF with a Helvetica text layer, one list of lines per page (empty list: no text)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 770 Td"] if lines else []
        for line in lines:
            esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({esc}) Tj T*")
        if lines:
            ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for k, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def source(tmp_path: Path, name: str, data: bytes | str, student: str = "alice") -> SubmissionSource:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return SubmissionSource(student_id=student, paths=[path])


def parse(tmp_path: Path, name: str, data: bytes | str, **kw):
    return parse_source(source(tmp_path, name, data), LAYOUT, **kw)


def test_text_file(tmp_path):
    sub = parse(tmp_path, "alice.txt", "Title\n\nQuestion 3\n- a) momentum helps\n")
    assert sub.student_id == "alice" and sub.format == "text"
    assert sub.answer("q3.a").text == "momentum helps"
    assert sub.answer("q3.a").origin == "alice.txt lines 3-4"
    assert sub.files == [str(tmp_path / "alice.txt")]


def test_markdown_front_matter_overrides_student_and_keeps_line_numbers(tmp_path):
    sub = parse(tmp_path, "upload_1234.md", "---\nstudent: bob\ncourse: dl\n---\n## Question 3\nyes\n")
    assert sub.student_id == "bob" and sub.format == "markdown"
    assert sub.answer("q3.a").origin == "upload_1234.md lines 5-6"
    assert all("student:" not in u.text for u in sub.unassigned)


def test_non_utf8_is_decoded_with_a_warning(tmp_path):
    sub = parse(tmp_path, "alice.txt", "Question 3\na) caf\u00e9 \u2014 na\u00efve\n".encode("cp1252"))
    assert sub.answer("q3.a").text == "caf\u00e9 \u2014 na\u00efve"
    assert any("not valid UTF-8" in w and "cp1252" in w for w in sub.warnings)
    # 0x81 is undefined in cp1252: falls back to latin-1, nothing lost
    sub = parse(tmp_path, "bob.txt", b"Question 3\na) x\x81y \xe9t\xe9\n")
    assert sub.answer("q3.a").text == "x\x81y \u00e9t\u00e9"
    assert any("Latin-1" in w for w in sub.warnings)


def test_utf8_bom_and_utf16(tmp_path):
    sub = parse(tmp_path, "a.txt", b"\xef\xbb\xbfQuestion 3\nyes\n")
    assert sub.answer("q3.a").text == "yes" and sub.warnings == []
    sub = parse(tmp_path, "b.txt", "Question 3\nyes\n".encode("utf-16"))
    assert sub.answer("q3.a").text == "yes"
    assert any("UTF-16" in w for w in sub.warnings)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n\t \r\n", "empty file"),
        ("binary.txt", b"Question 1\x00\x01\x02 a) \x00\xff", "binary content"),
        ("controls.txt", bytes(range(1, 9)) * 20, "binary content"),
        ("essay.docx", b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "Word document"),
        ("broken.ipynb", b'{"cells": [', "cannot read the notebook"),
        ("list.ipynb", b"[1, 2, 3]", "not a Jupyter notebook"),
        ("nocells.ipynb", b'{"metadata": {}}', "no list of cells"),
        ("emptynb.ipynb", json.dumps({"cells": [{"cell_type": "markdown", "source": " "}]}).encode(), "empty notebook"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n", "cannot read the PDF"),
        ("frontonly.md", b"---\nstudent: x\n---\n", "empty file"),
    ],
)
def test_broken_files_raise_submission_error(tmp_path, name, data, expected):
    with pytest.raises(SubmissionError, match=re.escape(expected)) as info:
        parse(tmp_path, name, data)
    assert name in str(info.value)


def test_too_large_file(tmp_path):
    data = ("Question 3\n" + "momentum " * 560_000).encode()[:5_000_000]
    with pytest.raises(SubmissionError) as info:
        parse(tmp_path, "huge.txt", data)
    assert "file is 5.0 MB; the limit for a submission is 2.0 MB (--max-bytes)" in str(info.value)
    assert parse(tmp_path, "huge.txt", data, max_bytes=6_000_000).answer("q3.a") is not None


def test_scanned_pdf_without_text_layer(tmp_path):
    with pytest.raises(SubmissionError, match="no text layer") as info:
        parse(tmp_path, "scan.pdf", make_pdf([[], []]))
    assert "scanned" in str(info.value) and "2 pages" in str(info.value)


def test_pdf_text_layer_is_segmented_with_page_origins(tmp_path):
    pdf = make_pdf(
        [
            ["Homework", "Question 1", "a) A single layer can approximate it (in theory).", "b) Depth is"],
            ["cheaper.", "Question 3", "Momentum helps."],
        ]
    )
    sub = parse(tmp_path, "carol.pdf", pdf)
    assert sub.format == "pdf"
    assert sub.answer("q1.a").text == "A single layer can approximate it (in theory)."
    assert sub.answer("q1.b").text.split() == ["Depth", "is", "cheaper."]
    assert sub.answer("q1.b").origin == "carol.pdf pages 1-2"
    assert sub.answer("q3.a").origin == "carol.pdf page 2"
    assert sub.unassigned[0].text == "Homework"


def make_notebook(cells, metadata=None) -> str:
    nb = new_notebook(cells=cells)
    nb.metadata.update(metadata or {})
    return nbformat.writes(nb)


def test_notebook_markdown_and_code_cells(tmp_path):
    nb = make_notebook(
        [
            new_markdown_cell("# My answers"),
            new_code_cell("import torch", execution_count=1),
            new_markdown_cell("## Question 5\n\n**a)** 1024 weights, gradient $2(\\hat y - y)x$.\n\n**b)**"),
            new_code_cell(
                "def conv_weight_grad(x, y, weight):\n    r = (x * weight).sum(dim=(1, 2, 3)) - y\n"
                "    return (2 * r[:, None, None, None] * x).sum(0, keepdim=True)",
                execution_count=2,
                outputs=[new_output("stream", name="stdout", text="junk output\n" * 50)],
            ),
            new_code_cell("", execution_count=None),
            new_markdown_cell("## Question 3\nMomentum helps."),
        ],
        metadata={"kernelspec": {"name": "python3"}, "widgets": {"junk": list(range(100))}},
    )
    sub = parse(tmp_path, "dana.ipynb", nb)
    assert sub.format == "notebook" and sub.student_id == "alice"
    b = sub.answer("q5.b")
    assert b.code == [
        "def conv_weight_grad(x, y, weight):\n    r = (x * weight).sum(dim=(1, 2, 3)) - y\n"
        "    return (2 * r[:, None, None, None] * x).sum(0, keepdim=True)"
    ]
    assert b.text.startswith("```python\ndef conv_weight_grad") and "junk output" not in b.text
    assert b.origin == "dana.ipynb cells 3-4"
    assert sub.answer("q5.a").text == "1024 weights, gradient $2(\\hat y - y)x$."
    assert sub.answer("q3.a").text == "Momentum helps."
    assert [u.text for u in sub.unassigned] == ["# My answers\n\n```python\nimport torch\n```"]


def test_notebook_metadata_student_and_backticks_in_code(tmp_path):
    nb = make_notebook(
        [new_markdown_cell("Q5b:"), new_code_cell('s = """\n```\n"""\nprint(s)')],
        metadata={"grader": {"student": "erin"}},
    )
    sub = parse(tmp_path, "x.ipynb", nb)
    assert sub.student_id == "erin"
    assert sub.answer("q5.b").code == ['s = """\n```\n"""\nprint(s)']


def test_notebook_list_sources_and_junk_cells(tmp_path):
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"anything": [1, {"x": None}]},
        "cells": [
            "not a cell",
            {"cell_type": "markdown", "source": ["Question 3\n", "It helps."], "attachments": {"a": 1}},
            {"cell_type": "code", "source": 42, "outputs": "junk"},
            {"cell_type": "raw", "source": "raw text"},
        ],
    }
    sub = parse(tmp_path, "junk.ipynb", json.dumps(nb))
    assert sub.answer("q3.a").text == "It helps.\n\nraw text"


def test_python_part_file(tmp_path):
    src = "def conv_weight_grad(x, y, weight):\n    return x.sum(0, keepdim=True)\n"
    sub = parse(tmp_path, "alice_q5b.py", src)
    assert sub.format == "python"
    a = sub.answer("q5.b")
    assert a.code == [src.rstrip("\n")]
    assert a.text == f"```python\n{src.rstrip()}\n```"
    sub = parse(tmp_path, "q11a.py", src)
    assert sub.answers == [] and "Question 11 is not in the rubrics" in sub.unassigned[0].origin
    sub = parse(tmp_path, "helpers.py", src)
    assert sub.answers == [] and "names no part" in sub.unassigned[0].origin


def test_student_directory_mixed_and_merged(tmp_path):
    d = tmp_path / "frank"
    d.mkdir()
    (d / "answers.md").write_text("## Question 5\n(a) 1024 weights\n(b) see my file\n")
    (d / "q5b.py").write_text("def conv_weight_grad(x, y, weight):\n    return x\n")
    sub = parse_source(SubmissionSource(student_id="frank", paths=[d / "answers.md", d / "q5b.py"]), LAYOUT)
    assert sub.format == "mixed"
    b = sub.answer("q5.b")
    assert b.text.startswith("see my file\n\n```python")
    assert b.code == ["def conv_weight_grad(x, y, weight):\n    return x"]
    assert "answers.md line 3" in b.origin and "q5b.py" in b.origin


def test_one_broken_file_of_several_is_a_warning(tmp_path):
    d = tmp_path / "gina"
    d.mkdir()
    (d / "answers.md").write_text("## Question 3\nyes\n")
    (d / "notes.txt").write_bytes(b"")
    sub = parse_source(SubmissionSource(student_id="gina", paths=[d / "answers.md", d / "notes.txt"]), LAYOUT)
    assert sub.answer("q3.a").text == "yes"
    assert any("notes.txt: empty file" in w for w in sub.warnings)
    (d / "answers.md").write_bytes(b"\x00\x00")
    with pytest.raises(SubmissionError, match="binary content.*empty file"):
        parse_source(SubmissionSource(student_id="gina", paths=[d / "answers.md", d / "notes.txt"]), LAYOUT)


def test_unknown_extension_is_read_as_text(tmp_path):
    sub = parse(tmp_path, "alice.rst", "Question 3\nyes\n")
    assert sub.answer("q3.a").text == "yes"
    assert any("unknown file type '.rst'" in w for w in sub.warnings)


EXTENSIONS = [".txt", ".md", ".ipynb", ".pdf", ".py", ".text", ".markdown", ".bin", ""]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"%PDF-1.4\n", b'{"cells": ', b"\xff\xfe", b"---\nstudent: x\n---"]).flatmap(
            lambda head: st.binary(max_size=200).map(lambda tail: head + tail)
        ),
    ),
    ext=st.sampled_from(EXTENSIONS),
)
def test_parse_source_raises_only_submission_error(tmp_path, data, ext):
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(data)
    try:
        sub = parse_source(SubmissionSource(student_id="fuzz", paths=[path]), LAYOUT, max_bytes=10_000)
    except SubmissionError as exc:
        assert str(exc).strip() and "internal parser error" not in str(exc)
    else:
        assert sub.student_id and not any("internal parser error" in w for w in sub.warnings)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pages=st.lists(st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126)), max_size=5), min_size=1, max_size=3))
def test_parse_source_on_generated_pdfs(tmp_path, pages):
    path = tmp_path / "gen.pdf"
    path.write_bytes(make_pdf(pages))
    try:
        parse_source(SubmissionSource(student_id="p", paths=[path]), LAYOUT)
    except SubmissionError as exc:
        assert "no text layer" in str(exc)


# -- discovery ---------------------------------------------------------------------------------


def touch(path: Path, text: str = "Question 3\nyes\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_discover_files_directories_and_part_files(tmp_path):
    root = tmp_path / "subs"
    touch(root / "bob.txt")
    touch(root / "alice.md")
    touch(root / "alice_q5b.py", "def f(): pass\n")
    touch(root / "carl.ipynb", make_notebook([new_markdown_cell("Question 3\nyes")]))
    touch(root / "dora" / "answers.md")
    touch(root / "dora" / "q5b.py", "def f(): pass\n")
    touch(root / "dora" / "extra" / "more.txt")
    touch(root / "dora" / ".DS_Store", "junk")
    touch(root / "dora" / "photo.png", "junk")
    touch(root / ".hidden.txt")
    touch(root / "essay.docx", "junk")
    touch(root / "Eve-Q5.b.py", "def f(): pass\n")
    (root / "empty_dir").mkdir()
    sources, warnings = discover([root])
    by_id = {s.student_id: [p.relative_to(root).as_posix() for p in s.paths] for s in sources}
    assert [s.student_id for s in sources] == ["alice", "bob", "carl", "dora", "Eve"]
    assert by_id["alice"] == ["alice.md", "alice_q5b.py"]
    assert by_id["dora"] == ["dora/answers.md", "dora/extra/more.txt", "dora/q5b.py"]
    assert by_id["Eve"] == ["Eve-Q5.b.py"]
    joined = "\n".join(warnings)
    for skipped in [".DS_Store", "photo.png", ".hidden.txt", "essay.docx", "empty_dir"]:
        assert skipped in joined
    assert "unsupported file type '.docx'" in joined and "hidden file" in joined
    assert discover([root]) == (sources, warnings)  # deterministic


def test_discover_single_file_and_missing_path(tmp_path):
    f = touch(tmp_path / "zoe.txt")
    sources, warnings = discover([f, tmp_path / "nope.txt"])
    assert [(s.student_id, s.paths) for s in sources] == [("zoe", [f])]
    assert warnings == [f"{tmp_path / 'nope.txt'}: no such file or directory; skipped"]


def test_discover_one_students_folder_given_directly(tmp_path):
    d = tmp_path / "hana"
    touch(d / "answers.md")
    touch(d / "q5_b.py", "def f(): pass\n")
    sources, warnings = discover([d])
    assert [(s.student_id, [p.name for p in s.paths]) for s in sources] == [("hana", ["answers.md", "q5_b.py"])]
    assert "one student's folder" in warnings[0]


def test_discover_same_stem_twice_is_merged_with_a_warning(tmp_path):
    touch(tmp_path / "ivy.md")
    touch(tmp_path / "ivy.pdf")
    sources, warnings = discover([tmp_path])
    assert [(s.student_id, [p.name for p in s.paths]) for s in sources] == [("ivy", ["ivy.md", "ivy.pdf"])]
    assert "merged" in warnings[0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("q5b.py", ("", 5, "b")),
        ("q5.b.py", ("", 5, "b")),
        ("q5_b.py", ("", 5, "b")),
        ("Q5b.py", ("", 5, "b")),
        ("alice_q5b.py", ("alice", 5, "b")),
        ("alice-Q10(c).py", ("alice", 10, "c")),
        ("question5b.py", ("", 5, "b")),
        ("alice.py", None),
        ("helpers.py", None),
    ],
)
def test_part_from_filename(name, expected):
    assert part_from_filename(name) == expected
