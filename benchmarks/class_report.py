"""Time to draw report.html's histograms: the shipped fixed margins against matplotlib's layout engine.

    python benchmarks/class_report.py [--parts 26] [--rounds 3]

report.html carries one histogram per part and one of the totals (26 for the shipped rubrics), and
every batch run rewrites it, a regrade of one student included. Drawing is most of that time. The
baseline draws the same bars with `layout="constrained"` (how the report drew them before); the
shipped function (grader.export.class_report.histogram_png) uses fixed margins and draws a
histogram once per process for the same bars, which the last column shows.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from grader.export.class_report import _histogram_png, _png, histogram_png


def constrained_png(counts: list[int], edges: list[float], title: str, xlabel: str) -> str:
    """The same bar chart laid out by matplotlib's constrained layout engine (the baseline)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.4, 2.2), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c78a8", edgecolor="white")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("students", fontsize=8)
    ax.set_xlim(edges[0], edges[-1])
    ax.tick_params(labelsize=7)
    return _png(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=26, help="Histograms per report (26: the shipped rubrics).")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    plots = [
        (rng.integers(0, 40, 8).tolist(), np.linspace(0, 4, 9).tolist(), f"q{i}.a", "points (of 4)")
        for i in range(args.parts)
    ]
    constrained_png(*plots[0])  # import and font caches warm for both
    histogram_png(*plots[0])
    baseline, shipped, again = [], [], []
    for _ in range(args.rounds):
        _histogram_png.cache_clear()
        for times, draw in ((baseline, constrained_png), (shipped, histogram_png), (again, histogram_png)):
            started = time.perf_counter()
            for plot in plots:
                draw(*plot)
            times.append(time.perf_counter() - started)
    b, s, a = (statistics.median(t) for t in (baseline, shipped, again))
    print(
        f"{args.parts} histograms, median of {args.rounds}: layout engine {b:.2f} s, fixed margins {s:.2f} s "
        f"({b / s:.2f}x), the same bars again {a * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
