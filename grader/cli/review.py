"""`grader review`: the TA's review of a graded class, in the browser or as a queue in the terminal."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from grader.cli.options import GradedOutArgument
from grader.cli.output import fail, out
from grader.cli.workspace import open_workspace
from grader.written.confidence import why_unsure


def review(
    out_dir: GradedOutArgument,
    as_list: Annotated[
        bool, typer.Option("--list", help="Print the review queue instead of opening the browser.")
    ] = False,
    part: Annotated[str | None, typer.Option("--part", help="Only this part (e.g. q3.a).")] = None,
    below: Annotated[float | None, typer.Option("--below", help="Only answers with confidence below this.")] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: a free one).")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Serve without opening a browser.")] = False,
) -> None:
    """Review the grades in OUT: a local web app on 127.0.0.1 (or the queue in the terminal with --list)."""
    ws = open_workspace(out_dir)
    if part is not None and part not in ws.part_ids:
        fail(f"No part {part} (parts: {', '.join(ws.part_ids)})")
    if as_list:
        items = ws.queue(part, below)
        table = Table(title=f"{len(items)} answer(s) waiting for review, least sure first")
        for col in ("student", "part", "points", "confidence", "flags", "why unsure"):
            table.add_column(col, justify="right" if col in {"points", "confidence"} else "left")
        for i in items:
            table.add_row(
                i.student_id,
                i.part.part_id,
                f"{i.part.points:g}/{i.part.max_points:g}",
                f"{i.part.confidence:.2f}",
                "; ".join(i.flags),
                "; ".join(why_unsure(i.part)),
            )
        out.print(table)
        return
    from grader.review.app import serve

    serve(ws, port=port, open_browser=not no_browser)
