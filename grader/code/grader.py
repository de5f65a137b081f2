"""Grade code parts: run the student's function in the sandbox, compare it with an autograd reference.

Flow for one answer (``CodeGrader.submit``):

1. **Pick the code** (grader.code.selection).
2. **Static checks** (grader.code.static): syntax errors (with the line) and forbidden
   names, a friendly first message. Either ends grading; a forbidden name earns 0.
3. **Run** in a warm sandbox server (grader.code.sandbox): a fresh child, forked from a
   process that never saw another student, calls the entry point once per case, each case
   under its own time limit, with runtime guards on the forbidden names and, where autograd
   is forbidden, a dispatch-level tripwire on every use of it.
4. **Compare** in the grader's process, after the child is gone (grader.code.comparison).

Only this side decides a part's outcome: the sandbox server's report says how the process
ended and what the guards saw; the child's own stream only carries return values and
exception details, which are checked and quoted, never believed.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grader.code import feedback as words
from grader.code.comparison import compare_gradients, compare_output
from grader.code.reference import PreparedCase, ReferenceError_, load_reference, make_inputs, prepare_case
from grader.code.running import SANDBOX_FAILURES, ServerPool, build_job
from grader.code.sandbox import RunResult, SandboxUnavailable, detect, require_sandbox
from grader.code.selection import SourceCode, select_code
from grader.code.static import find_forbidden, forbidden_names
from grader.report import CodeCaseResult, CodeResult, PartResult
from grader.rubric import CodeCase, CodeSpec, Part, Rubric, RubricSet
from grader.submission import Answer

__all__ = ["CodeGrader", "SandboxUnavailable", "find_forbidden", "make_inputs", "select_code", "UNSANDBOXED_WARNING"]

MAX_CODE_BYTES = 1_000_000

UNSANDBOXED_WARNING = (
    "UNSANDBOXED: this code ran WITHOUT isolation (--allow-unsandboxed): it could read files, "
    "use the network and interfere with the grader. Only resource limits applied."
)


def _dict_at(event: dict, key: str) -> dict:
    """event[key] when the child sent a dict there, else an empty one."""
    value = event.get(key)
    return value if isinstance(value, dict) else {}


def _failed_case(case: CodeCase, reason: str, code: str, **details: Any) -> CodeCaseResult:
    """A case that earns nothing, with why (`details`: the stderr tail, the case's time)."""
    return CodeCaseResult(
        name=case.name, points=0.0, max_points=case.points, passed=False, reason=reason, reason_code=code, **details
    )


def _not_run_cases(spec: CodeSpec, reason: str, code: str) -> list[CodeCaseResult]:
    return [_failed_case(c, reason, code) for c in spec.cases]


class CodeGrader:
    """Grades code parts in a sandbox; a context manager that owns the sandbox servers.

    Servers start lazily (about 1.5 s each, importing torch) on the first code answer
    and are reused for the whole batch, one per worker thread (``workers``). ``submit``
    returns a Future so the caller can grade written parts meanwhile.

    Raises SandboxUnavailable at construction when the rubrics contain code parts,
    the machine lacks the protections (e.g. bubblewrap) and ``allow_unsandboxed`` is
    False. With ``allow_unsandboxed=True`` on such a machine every code result
    carries a loud warning.
    """

    def __init__(self, rubrics: RubricSet, *, allow_unsandboxed: bool = False, workers: int = 1) -> None:
        self.rubrics = rubrics
        self.workers = max(1, int(workers))
        self.has_code = any(p.kind == "code" for _, p in rubrics.parts())
        caps = require_sandbox(allow_unsandboxed) if self.has_code else detect()
        self.capabilities = caps
        self.unsandboxed = caps.problem is not None
        self._servers = ServerPool(allow_unsandboxed)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._ref_lock = threading.Lock()
        self._refs: dict[tuple[str, str], PreparedCase] = {}
        self._ref_fns: dict[tuple[str, str], Callable[..., Any] | Exception] = {}
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> CodeGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the servers (no process is left behind) and the worker threads."""
        self._closed = True
        with self._lock:
            pool, self._pool = self._pool, None
        self._servers.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._servers.close()  # a run that was in flight may have restarted one

    # -- API ----------------------------------------------------------------------------

    def submit(
        self, rubric: Rubric, part: Part, answer: Answer | None, student_id: str
    ) -> concurrent.futures.Future[PartResult]:
        """Grade one code answer in the background; the Future never raises for anything the student did."""
        if part.kind != "code" or part.code is None:
            raise ValueError(f"{rubric.qualified(part)} is not a code part")
        if self._closed:
            raise RuntimeError("CodeGrader is closed")
        quick = self._static(rubric, part, answer)
        if isinstance(quick, PartResult):
            fut: concurrent.futures.Future[PartResult] = concurrent.futures.Future()
            fut.set_result(quick)
            return fut
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="codegrade")
            pool = self._pool
        return pool.submit(self._run_and_grade, rubric, part, quick, student_id)

    def grade(self, rubric: Rubric, part: Part, answer: Answer | None, student_id: str) -> PartResult:
        return self.submit(rubric, part, answer, student_id).result()

    def check_references(self) -> list[str]:
        """Run every code part's reference on every case; return problems (empty when all is well)."""
        problems = []
        for rubric, part in self.rubrics.parts():
            if part.kind != "code" or part.code is None:
                continue
            for case in part.code.cases:
                prep = self._prepare(rubric, part, case)
                if prep.error:
                    problems.append(f"{rubric.qualified(part)} case {case.name}: {prep.error}")
                elif prep.expected and any(
                    leaf.values.dtype.kind == "f" and not np.isfinite(leaf.values).all()
                    for leaf in prep.expected.leaves
                ):
                    problems.append(f"{rubric.qualified(part)} case {case.name}: the reference output is not finite")
        return problems

    # -- reference ----------------------------------------------------------------------

    def _prepare(self, rubric: Rubric, part: Part, case: CodeCase) -> PreparedCase:
        key = (rubric.qualified(part), case.name)
        with self._ref_lock:
            if key not in self._refs:
                spec = part.code
                assert spec is not None
                fn_key = (str(self.rubrics.reference_path(rubric, part)), spec.reference_function or spec.entry_point)
                if fn_key not in self._ref_fns:
                    try:
                        self._ref_fns[fn_key] = load_reference(Path(fn_key[0]), fn_key[1])
                    except ReferenceError_ as exc:
                        self._ref_fns[fn_key] = exc
                self._refs[key] = prepare_case(spec, case, self._ref_fns[fn_key])
            return self._refs[key]

    # -- static stage -------------------------------------------------------------------

    def _base(self, rubric: Rubric, part: Part, status: str = "graded") -> PartResult:
        assert part.code is not None
        return PartResult(
            part_id=rubric.qualified(part),
            kind="code",
            status=status,  # type: ignore[arg-type]
            points=0.0,
            max_points=part.max_points,
            raw_score=0.0,
            confidence=1.0,
            code=CodeResult(entry_point=part.code.entry_point, sandbox="not run"),
            warnings=[UNSANDBOXED_WARNING] if self.unsandboxed else [],
        )

    def _stopped(
        self,
        rubric: Rubric,
        part: Part,
        outcome: str,
        feedback: list[str],
        case_reason: str,
        case_code: str,
        status: str = "graded",
    ) -> PartResult:
        """A result for an answer that never ran (or never got past loading)."""
        assert part.code is not None
        res = self._base(rubric, part, status)
        res.feedback = feedback
        assert res.code is not None
        res.code.outcome = outcome
        res.code.cases = _not_run_cases(part.code, case_reason, case_code)
        return res

    def _static(self, rubric: Rubric, part: Part, answer: Answer | None) -> PartResult | SourceCode:
        spec = part.code
        assert spec is not None
        sig = words.signature(spec)
        if answer is None or (not answer.code and not (answer.text or "").strip()):
            return self._stopped(
                rubric, part, "missing", [f"No answer: define {sig}."], "not run: no answer", "not_run", "missing"
            )
        if sum(len(b) for b in answer.code) > 2 * MAX_CODE_BYTES or (
            not answer.code and len(answer.text) > 2 * MAX_CODE_BYTES
        ):
            return self._too_large(rubric, part, max(len(answer.text), sum(len(b) for b in answer.code)))
        src = select_code(answer, spec.entry_point)
        if src is None:
            msg = (
                f"No Python code found in the answer. Put your function {sig} in a ```python code block (or a "
                "notebook code cell / a .py file for this part)."
            )
            return self._stopped(rubric, part, "no_code", [msg], "not run: no code found", "not_run")
        if len(src.text) > MAX_CODE_BYTES:
            return self._too_large(rubric, part, len(src.text))
        try:
            hits = find_forbidden(src.text, forbidden_names(spec))
        except SyntaxError as exc:
            return self._syntax_error(rubric, part, src, exc)
        except (ValueError, RecursionError, MemoryError) as exc:
            msg = f"Your code could not be parsed ({type(exc).__name__})."
            return self._stopped(
                rubric, part, "syntax_error", [msg], "not run: the code could not be parsed", "syntax_error"
            )
        if hits:
            listed = ", ".join(f"{name} ({src.where(line)})" for name, line in hits[:8])
            msg = (
                f"Your code uses {listed}, which this exercise forbids ({words.forbid_hint(spec)}). Nothing was run "
                "and the part earns no credit."
            )
            res = self._stopped(
                rubric, part, "forbidden", [msg], "not run: the code uses a forbidden call", "forbidden"
            )
            assert res.code is not None
            res.code.forbidden_calls = [f"{name} ({src.where(line)})" for name, line in hits]
            return res
        return src

    def _too_large(self, rubric: Rubric, part: Part, size: int) -> PartResult:
        msg = f"Your code is too long to grade ({size:,} characters; the limit is {MAX_CODE_BYTES:,})."
        return self._stopped(rubric, part, "too_large", [msg], "not run: the code is too long", "not_run")

    def _syntax_error(self, rubric: Rubric, part: Part, src: SourceCode, exc: SyntaxError) -> PartResult:
        where = src.where(exc.lineno)
        text = (exc.text or "").strip()
        detail = f": `{text[:80]}`" if text else ""
        msg = f"Your code has a syntax error on {where}: {exc.msg}{detail}. Nothing was run; fix it so the file runs."
        res = self._stopped(
            rubric,
            part,
            "syntax_error",
            [msg] + [f"Note: {n}." for n in src.notes],
            f"not run: syntax error on {where}",
            "syntax_error",
        )
        assert res.code is not None
        res.code.stderr_tail = f"SyntaxError: {exc.msg} ({where})"
        return res

    # -- run + interpret ----------------------------------------------------------------

    def _run_and_grade(self, rubric: Rubric, part: Part, src: SourceCode, student_id: str) -> PartResult:
        spec = part.code
        assert spec is not None
        try:
            preps = [self._prepare(rubric, part, c) for c in spec.cases]
            bad = next((p for p in preps if p.error), None)
            if bad is not None:
                msg = (
                    "This part could not be graded automatically (a problem with the grader's reference); a TA will "
                    "grade it."
                )
                res = self._stopped(
                    rubric, part, "reference_error", [msg], "not run: the reference failed", "not_run", "error"
                )
                res.warnings.append(f"reference failed for {rubric.qualified(part)}: {bad.error}")
                res.confidence = 0.0
                return res
            run = self._servers.run(build_job(spec, src, preps))
            return self._interpret(rubric, part, src, preps, run)
        except Exception as exc:  # noqa: BLE001 - never let one answer crash the batch
            res = self._base(rubric, part, "error")
            res.feedback = ["This part could not be graded automatically; a TA will grade it."]
            res.warnings.append(
                f"internal error while grading {rubric.qualified(part)} for {student_id}: {type(exc).__name__}: {exc}"
            )
            res.confidence = 0.0
            return res

    def _interpret(
        self, rubric: Rubric, part: Part, src: SourceCode, preps: list[PreparedCase], run: RunResult
    ) -> PartResult:
        spec = part.code
        assert spec is not None
        res = self._base(rubric, part)
        cr = res.code
        assert cr is not None
        cr.sandbox = run.sandbox
        cr.stdout_tail = run.stdout_tail or None
        cr.stderr_tail = run.stderr_tail or None
        cr.wall_s = round(run.wall_s, 4)
        cr.process_status = run.status
        if run.status in SANDBOX_FAILURES:
            return self._sandbox_failure(res, spec, run)
        notes = [f"Note: {n}." for n in src.notes]
        load = next((e for e in run.events if e.get("event") in ("loaded", "load_error", "no_entry")), None)
        if run.forbidden:
            cr.forbidden_calls = list(run.forbidden)
        if load is not None and load.get("event") == "load_error":
            return self._load_error(res, spec, src, load, run, notes)
        if load is not None and load.get("event") == "no_entry":
            return self._no_entry(res, spec, load, run, notes)
        if load is None:
            return self._died_loading(res, spec, run, preps, notes)
        cases, stats = self._cases(spec, src, preps, run)
        return self._summarise(res, part, preps, cases, stats, run, notes)

    def _sandbox_failure(self, res: PartResult, spec: CodeSpec, run: RunResult) -> PartResult:
        """The sandbox, not the student, failed (our own report says so): a TA grades the part."""
        assert res.code is not None
        res.status = "error"
        res.confidence = 0.0
        res.code.outcome = "sandbox_error"
        if run.status == "setup_error":
            res.feedback = ["The grader's sandbox failed to set up the run; a TA will look at it."]
            res.warnings.append(f"sandbox setup error: {run.detail[:600]}")
        else:
            res.feedback = ["Your code could not be run to completion by the grader's sandbox; a TA will look at it."]
            res.warnings.append(f"sandbox failure ({run.status}): {run.detail[:600]}")
        res.code.cases = _not_run_cases(spec, "not run: sandbox failure", "sandbox_error")
        return res

    def _load_error(
        self, res: PartResult, spec: CodeSpec, src: SourceCode, load: dict, run: RunResult, notes: list[str]
    ) -> PartResult:
        assert res.code is not None
        exc = _dict_at(load, "exc")
        code, msg = words.exception_reason(exc, src, spec)
        res.code.outcome = code if code != "exception" else "load_error"
        res.code.cases = _not_run_cases(spec, f"not run: {msg}", code)
        res.feedback = [f"Your code failed while loading, before any test ran: {msg}."] + notes
        res.code.stderr_tail = words.exc_text(exc, src) or res.code.stderr_tail
        return self._finish(res, spec, run)

    def _no_entry(self, res: PartResult, spec: CodeSpec, load: dict, run: RunResult, notes: list[str]) -> PartResult:
        assert res.code is not None
        found = [f for f in load.get("found") or [] if isinstance(f, str)]
        if load.get("not_callable"):
            msg = f"`{spec.entry_point}` is defined but is not a function"
        else:
            msg = f"no function named `{spec.entry_point}` was defined"
            close = difflib.get_close_matches(spec.entry_point, found, n=1)
            if close:
                msg += f" (you defined `{close[0]}`; rename it to `{spec.entry_point}`)"
            elif found:
                msg += f" (your code defines: {', '.join(found[:6])})"
        res.code.outcome = "entry_point_missing"
        res.code.cases = _not_run_cases(spec, f"not run: {msg}", "entry_point_missing")
        res.feedback = [f"The grader calls {words.signature(spec)}, but {msg}."] + notes
        return self._finish(res, spec, run)

    def _stop_reason(self, run: RunResult, spec: CodeSpec, preps: list[PreparedCase]) -> tuple[str, str]:
        """Why the process stopped early, from the server's report (and the stream's state)."""
        if run.forbidden:
            return "forbidden", "was stopped by the grader's runtime check for a forbidden call"
        if run.status == "timeout":
            return "timeout", words.timeout_reason(run, spec, preps)
        code, msg = words.process_reason(run, spec)
        if code == "ok" and run.stream_problem:
            return (
                "no_result",
                "wrote to the grader's result channel (file descriptor 3), so its results could not be read "
                f"({run.stream_problem})",
            )
        if code == "ok" and not any(e.get("event") == "done" for e in run.events):
            return "exited", "ended the Python process before returning (exit code 0); do not call exit() or os._exit()"
        return code, msg

    def _died_loading(
        self, res: PartResult, spec: CodeSpec, run: RunResult, preps: list[PreparedCase], notes: list[str]
    ) -> PartResult:
        assert res.code is not None
        code, msg = self._stop_reason(run, spec, preps)
        res.code.outcome = code
        res.code.cases = _not_run_cases(spec, f"not run: {msg} while loading your code", code)
        res.feedback = [f"Your code {msg} while loading (module-level statements), before any test ran."] + notes
        return self._finish(res, spec, run)

    def _cases(
        self, spec: CodeSpec, src: SourceCode, preps: list[PreparedCase], run: RunResult
    ) -> tuple[list[CodeCaseResult], dict]:
        """One result per case: its verdict, or why it has none."""
        by_name = {e.get("name"): e for e in run.events if e.get("event") == "case"}
        stats: dict[str, list[float]] = {"ratios": [], "abs": [], "rel": []}
        cases: list[CodeCaseResult] = []
        stopped: str | None = None
        for k, prep in enumerate(preps):
            c = prep.case
            ev = by_name.get(c.name)
            if ev is None:
                if stopped is None:
                    stopped = c.name
                    code, msg = self._stop_reason(run, spec, preps)
                    cases.append(_failed_case(c, msg, code, stderr_tail=run.stderr_tail or None))
                else:
                    cases.append(_failed_case(c, f"not run: stopped in case {stopped}", "not_run"))
                continue
            time_s = round(run.cases_s[k], 6) if k < len(run.cases_s) else None
            if not ev.get("ok"):
                exc = _dict_at(ev, "exc")
                code, msg = words.exception_reason(exc, src, spec)
                cases.append(_failed_case(c, msg, code, stderr_tail=words.exc_text(exc, src), time_s=time_s))
                continue
            cases.append(self._verdict(ev, prep, spec, run, stats, time_s))
        return cases, stats

    def _verdict(
        self, ev: dict, prep: PreparedCase, spec: CodeSpec, run: RunResult, stats: dict, time_s: float | None
    ) -> CodeCaseResult:
        assert prep.expected is not None
        base = int(ev.get("_blob_base", 0))
        output = _dict_at(ev, "output")
        verdicts = compare_output(output, run.blobs, base, prep.expected, spec)
        if all(v.ok for v in verdicts) and prep.gradients:
            grad = compare_gradients(ev.get("gradients"), run.blobs, base, prep, spec)
            if grad is not None:
                verdicts.append(grad)
        ok = all(v.ok for v in verdicts)
        mabs = [v.max_abs for v in verdicts if v.max_abs is not None and not math.isnan(v.max_abs)]
        mrel = [v.max_rel for v in verdicts if v.max_rel is not None and not math.isnan(v.max_rel)]
        stats["ratios"] += [v.ratio for v in verdicts if v.ratio is not None and math.isfinite(v.ratio)]
        stats["abs"] += mabs
        stats["rel"] += mrel
        first_bad = next((v for v in verdicts if not v.ok), None)
        c = prep.case
        return CodeCaseResult(
            name=c.name,
            points=c.points if ok else 0.0,
            max_points=c.points,
            passed=ok,
            reason="ok" if ok else "; ".join(v.message for v in verdicts if not v.ok),
            reason_code="ok" if first_bad is None else first_bad.code,
            max_abs_error=words.finite_or_none(max(mabs)) if mabs else None,
            max_rel_error=words.finite_or_none(max(mrel)) if mrel else None,
            time_s=time_s,
        )

    def _summarise(
        self,
        res: PartResult,
        part: Part,
        preps: list[PreparedCase],
        cases: list[CodeCaseResult],
        stats: dict,
        run: RunResult,
        notes: list[str],
    ) -> PartResult:
        spec = part.code
        assert spec is not None and res.code is not None
        cr = res.code
        cr.cases = cases
        cr.max_abs_error = words.finite_or_none(max(stats["abs"])) if stats["abs"] else None
        cr.max_rel_error = words.finite_or_none(max(stats["rel"])) if stats["rel"] else None
        n_pass = sum(c.passed for c in cases)
        if n_pass == len(cases):
            cr.outcome = "passed"
        elif n_pass:
            cr.outcome = "partial"
        else:
            cr.outcome = next((c.reason_code for c in cases if c.reason_code != "not_run"), "failed")
        points = sum(c.points for c in cases)
        passed = "All" if n_pass == len(cases) else f"{n_pass} of"
        fb = [f"{passed} {len(cases)} test cases passed ({words.pts(points)} of {words.pts(part.max_points)} points)."]
        fb += words.grouped_failures(preps, cases)
        if run.stdout_bytes and n_pass < len(cases):
            fb.append("Your code printed output; it is shown in the report (stdout).")
        res.feedback = fb + notes
        if any(0.3 < r < 3.0 for r in stats["ratios"]):
            res.confidence = 0.6
            res.warnings.append("an error is close to the tolerance: check the case results")
        return self._finish(res, spec, run)

    def _finish(self, res: PartResult, spec: CodeSpec, run: RunResult) -> PartResult:
        """Points from the cases; a forbidden call seen at run time costs the whole part."""
        cr = res.code
        assert cr is not None
        if run.forbidden:
            cr.forbidden_calls = list(run.forbidden)
            cr.outcome = "forbidden"
            for c in cr.cases:
                c.points = 0.0
            res.feedback.insert(0, words.forbidden_feedback(run.forbidden, spec))
        res.points = round(sum(c.points for c in cr.cases), 6)
        res.raw_score = res.points / res.max_points if res.max_points else 0.0
        return res
