"""Where the command line speaks: stdout for results, stderr for progress and problems."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def fail(title: str, problems: Iterable[str] = (), code: int = 2) -> NoReturn:
    """Print the title in bold red and one line per problem, then exit with `code`.

    Both are printed as plain text, so a file name or a rubric's text is never read as markup.
    """
    err.print(title, style="bold red", markup=False, highlight=False, soft_wrap=True)
    for line in problems:
        err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)
