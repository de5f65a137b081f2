"""Bytes -> text a TA can trust: size limits, encodings, and binary files refused with a reason."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from grader.intake.filetypes import BINARY_HINTS
from grader.submission import SubmissionError


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    if n >= 1_000:
        return f"{n / 1_000:.1f} kB"
    return f"{n} bytes"


def clean_text(text: str, *, drop_nul: bool = True) -> str:
    """Drop NUL characters (PDF junk) and replace lone surrogates (from JSON escapes), which no report can encode."""
    if drop_nul and "\x00" in text:
        text = text.replace("\x00", "")
    return re.sub(r"[\ud800-\udfff]", "\ufffd", text)


def read_bytes(path: Path, name: str, max_bytes: int) -> bytes:
    try:
        if path.is_dir():
            raise SubmissionError(f"{name}: is a directory, not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise SubmissionError(
                f"{name}: file is {_size(size)}; the limit for a submission is {_size(max_bytes)} (--max-bytes)"
            )
        data = path.read_bytes()
    except SubmissionError:
        raise
    except OSError as exc:
        raise SubmissionError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:  # the file grew while we looked
        raise SubmissionError(
            f"{name}: file is {_size(len(data))}; the limit for a submission is {_size(max_bytes)} (--max-bytes)"
        )
    if not data.strip():
        raise SubmissionError(f"{name}: empty file" + (" (0 bytes)" if not data else " (only whitespace)"))
    return data


def _binary_error(name: str, ext: str, why: str) -> SubmissionError:
    hint = BINARY_HINTS.get(ext)
    tail = f"; it looks like {hint}" if hint else "; is this the right file?"
    return SubmissionError(f"{name}: binary content, not text ({why}){tail}")


def decode(data: bytes, name: str, ext: str, notes: list[str]) -> str:
    """Bytes -> text: UTF-8 (BOM allowed), UTF-16 with a BOM, else cp1252 then latin-1, with a warning."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _binary_error(name, ext, "it starts like UTF-16 text but does not decode as such") from None
        notes.append(f"{name}: saved as UTF-16; read as UTF-16")
        return _check_text(clean_text(text), name, ext)
    if b"\x00" in data:
        raise _binary_error(name, ext, "it contains NUL bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        try:
            text = data.decode("cp1252")
            enc = "Windows-1252 (cp1252)"
        except UnicodeDecodeError:
            text = data.decode("latin-1")
            enc = "Latin-1"
        notes.append(
            f"{name}: not valid UTF-8 (first bad {where}); read as {enc}, so check accented or special "
            "characters in its answers"
        )
    return _check_text(text, name, ext)


_ALLOWED_CONTROLS = set("\t\n\r\f\v")


def _check_text(text: str, name: str, ext: str) -> str:
    controls = sum(1 for c in text if c not in _ALLOWED_CONTROLS and unicodedata.category(c) == "Cc")
    if controls and controls > 0.05 * len(text):
        raise _binary_error(name, ext, "it is mostly control characters")
    if not text.strip():
        raise SubmissionError(f"{name}: empty file (only whitespace)")
    return text
