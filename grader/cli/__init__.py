"""Command line: one thin module per verb, each parsing its flags and calling the library.

Flags are declared once, in :mod:`grader.cli.options`, with their defaults and help read from
the library's options models (GradeOptions, ScoringConfig).
"""

from grader.cli.app import app

__all__ = ["app"]
