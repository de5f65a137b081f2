"""`grader schema`: the rubric JSON Schema, for editors' YAML validation."""

from __future__ import annotations

import json
import sys

from grader.rubric import rubric_json_schema


def schema() -> None:
    """Print the rubric JSON Schema (point your editor's YAML validation at it)."""
    sys.stdout.write(json.dumps(rubric_json_schema(), indent=2) + "\n")
