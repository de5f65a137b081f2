"""Which files are submissions: the extensions grader reads, and what to tell a TA about the others."""

from __future__ import annotations

FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".ipynb": "notebook",
    ".pdf": "pdf",
    ".py": "python",
}
SUPPORTED_EXTENSIONS = tuple(FORMATS)
SUPPORTED_TEXT = ".txt, .md, .ipynb, .pdf, .py"
BINARY_HINTS = {
    ".docx": "a Word document: export it as PDF or text",
    ".doc": "a Word document: export it as PDF or text",
    ".odt": "an OpenDocument file: export it as PDF or text",
    ".pages": "a Pages document: export it as PDF or text",
    ".rtf": "an RTF document: export it as PDF or text",
    ".zip": "an archive: unpack it first",
    ".png": "an image: it has no text to grade",
    ".jpg": "an image: it has no text to grade",
    ".jpeg": "an image: it has no text to grade",
    ".heic": "an image: it has no text to grade",
}
