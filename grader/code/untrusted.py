"""Text and data that crossed from the sandbox: bounded in size and depth, and safe to write anywhere.

Everything a student's process sent back (exception messages, printed output, returned
strings, names of types) is cleaned here before any report sees it: lone UTF-16
surrogates (which no UTF-8 writer accepts) and control characters become U+FFFD, and
every string, list and mapping is cut to a size a report can carry.
"""

from __future__ import annotations

import re
from typing import Any

_BAD = re.compile(r"[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
"""Lone surrogates, control characters other than tab and newline, and invisible separators."""

REPLACEMENT = "\ufffd"


def clean_text(text: Any, limit: int = 4000) -> str:
    """A str safe for JSON, CSV and Markdown: no lone surrogate, no control character, at most `limit` characters."""
    if not isinstance(text, str):
        text = str(text)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "\u2026"
    return _BAD.sub(REPLACEMENT, text)


def clean_json(value: Any, *, depth: int = 0, text_limit: int = 4000, max_items: int = 64) -> Any:
    """A copy of a decoded JSON value with every string cleaned and every container bounded."""
    if depth > 8:
        return None
    if isinstance(value, str):
        return clean_text(value, text_limit)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        return [clean_json(v, depth=depth + 1, text_limit=text_limit, max_items=max_items) for v in value[:max_items]]
    if isinstance(value, dict):
        out = {}
        for k, v in list(value.items())[:max_items]:
            out[clean_text(k, 100)] = clean_json(v, depth=depth + 1, text_limit=text_limit, max_items=max_items)
        return out
    return clean_text(repr(value), 200)
