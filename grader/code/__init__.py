"""Code grading: run a student's function in the sandbox and compare it with an autograd reference.

One module per job: ``selection`` (which code runs), ``static`` (forbidden names, before
anything runs), ``reference`` (seeded inputs and expected outputs), ``sandbox`` (isolation),
``running`` (jobs on a pool of sandbox servers), ``comparison`` (returned values against
expected ones), ``feedback`` (the words a student reads), ``outcomes`` (reason codes and
which results may be cached), ``grader`` (CodeGrader, which ties them together).
"""

from grader.code.grader import UNSANDBOXED_WARNING, CodeGrader
from grader.code.outcomes import repeatable
from grader.code.reference import make_inputs
from grader.code.sandbox import SandboxUnavailable
from grader.code.selection import SourceCode, select_code
from grader.code.static import find_forbidden

__all__ = [
    "UNSANDBOXED_WARNING",
    "CodeGrader",
    "SandboxUnavailable",
    "SourceCode",
    "find_forbidden",
    "make_inputs",
    "repeatable",
    "select_code",
]
