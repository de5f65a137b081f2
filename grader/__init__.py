"""grader: offline grading of written and code answers against YAML rubrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("grader")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
