"""Submission intake moved to grader.intake (discover, decode, formats, read, segment).

This name stays importable while work that imports it is merged; import grader.intake instead.
"""

from grader.intake import SUPPORTED_EXTENSIONS, discover, parse_source, part_from_filename, segment

__all__ = ["SUPPORTED_EXTENSIONS", "discover", "parse_source", "part_from_filename", "segment"]
