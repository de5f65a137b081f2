"""Everything grading writes for people and other systems.

- files: the run's own outputs (per-student JSON and feedback, gradebook.csv, summary.json), written atomically;
- lms: grades in the formats Canvas, Moodle and Gradescope import, and a long CSV;
- class_report: OUT/report.html, the class at a glance with plots, one file that opens offline.
"""

from grader.export.files import (
    atomic_write,
    feedback_markdown,
    gradebook_csv,
    report_json,
    safe_name,
    write_student,
    write_summary,
)

__all__ = [
    "atomic_write",
    "feedback_markdown",
    "gradebook_csv",
    "report_json",
    "safe_name",
    "write_student",
    "write_summary",
]
