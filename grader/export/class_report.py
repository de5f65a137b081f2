"""OUT/report.html: the class at a glance, one self-contained file that opens offline.

Plots are drawn with matplotlib (no pyplot state: one Figure per plot) and embedded as
base64 PNGs; the page has no script and loads nothing. Per part it shows the score
histogram (the bins of summary.json), the most-missed key points and the most frequent
misconceptions, the review progress, and the answers a person should look at: those in
another language and pairs of near-identical answers (possible collusion).
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel

from grader.export.files import atomic_write
from grader.report import ClassSummary, PartSummary, StudentReport
from grader.review.collusion import CollusionPair, class_pairs

REPORT_NAME = "report.html"
TOTAL_BINS = 10
TOP = 3

_env = Environment(loader=PackageLoader("grader.export", "templates"), autoescape=select_autoescape(["html"]))


class Count(BaseModel):
    label: str
    n: int
    of: int


class PartSection(BaseModel):
    summary: PartSummary
    plot: str
    missed: list[Count]
    misconceptions: list[Count]


class Flagged(BaseModel):
    student_id: str
    part_id: str
    language: str


def _png(fig) -> str:  # noqa: ANN001 - a matplotlib Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def histogram_png(counts: Sequence[int], edges: Sequence[float], title: str, xlabel: str, size=(3.4, 2.2)) -> str:  # noqa: ANN001
    """A bar chart of histogram counts over their bin edges, as base64 PNG.

    Drawn once per process for the same bars and labels: a regrade redraws only the parts whose
    grades moved (drawing is most of the time a report takes to write, about 0.1 s a plot).
    """
    return _histogram_png(tuple(int(c) for c in counts), tuple(float(e) for e in edges), title, xlabel, tuple(size))


MARGINS_IN = {"left": 0.55, "right": 0.12, "bottom": 0.45, "top": 0.3}
"""Fixed plot margins in inches, room for the tick labels and titles (a layout engine costs as much as the drawing)."""


@lru_cache(maxsize=512)
def _histogram_png(
    counts: tuple[int, ...], edges: tuple[float, ...], title: str, xlabel: str, size: tuple[float, float]
) -> str:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    width, height = size
    fig = Figure(figsize=size)
    fig.subplots_adjust(
        left=MARGINS_IN["left"] / width,
        right=1 - MARGINS_IN["right"] / width,
        bottom=MARGINS_IN["bottom"] / height,
        top=1 - MARGINS_IN["top"] / height,
    )
    ax = fig.add_subplot()
    widths = np.diff(edges)
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4c78a8", edgecolor="white")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("students", fontsize=8)
    ax.set_xlim(edges[0], edges[-1])
    ax.tick_params(labelsize=7)
    locator = ax.yaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
        locator.set_params(integer=True)
    return _png(fig)


def _sections(reports: Sequence[StudentReport], summary: ClassSummary) -> list[PartSection]:
    sections = []
    for ps in summary.parts:
        results = [p for r in reports for p in r.parts if p.part_id == ps.part_id and p.status == "graded"]
        missed = Counter(kp.label for p in results for kp in p.key_points if not kp.matched)
        wrong = Counter(m.label for p in results for m in p.misconceptions)
        n = len(results)
        sections.append(
            PartSection(
                summary=ps,
                plot=histogram_png(ps.histogram, ps.histogram_edges, ps.part_id, f"points (of {ps.max_points:g})"),
                missed=[Count(label=k, n=v, of=n) for k, v in missed.most_common(TOP)],
                misconceptions=[Count(label=k, n=v, of=n) for k, v in wrong.most_common(TOP)],
            )
        )
    return sections


def class_report_html(reports: Sequence[StudentReport], summary: ClassSummary) -> str:
    graded = [r for r in reports if r.status == "graded"]
    totals = np.array([r.total for r in graded], dtype=float)
    counts, edges = np.histogram(totals, bins=TOTAL_BINS, range=(0, summary.max_total or 1))
    totals_plot = histogram_png(
        counts.tolist(), edges.tolist(), "Totals", f"points (of {summary.max_total:g})", (6.4, 2.6)
    )
    answered = [p for r in graded for p in r.parts if p.answer_sha256]
    reviewed = sum(p.review is not None and p.review.status != "stale" for p in answered)
    languages = [
        Flagged(student_id=r.student_id, part_id=p.part_id, language=p.language)
        for r in graded
        for p in r.parts
        if p.language
    ]
    pairs: list[CollusionPair] = class_pairs(graded)
    return _env.get_template("class_report.html").render(
        summary=summary,
        totals_plot=totals_plot,
        total_edges=[round(e, 2) for e in edges.tolist()],
        sections=_sections(graded, summary),
        n_answered=len(answered),
        n_reviewed=reviewed,
        languages=languages,
        pairs=pairs,
    )


def write_class_report(out: Path, reports: Sequence[StudentReport], summary: ClassSummary) -> Path:
    path = Path(out) / REPORT_NAME
    atomic_write(path, class_report_html(reports, summary))
    return path
