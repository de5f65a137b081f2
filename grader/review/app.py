"""`grader review OUT`: the review queue in the browser, served on 127.0.0.1 only.

FastAPI with server-rendered Jinja templates and plain HTML forms (no script is needed):
each decision is a POST that records it through the Workspace and redirects back to the
answer, so a reload always shows what is stored. Student text is untrusted: templates
escape everything, the evidence marks are built from escaped pieces, and the page has a
Content-Security-Policy that allows no script at all. Every POST carries a token minted
when the app starts, and requests must name this machine as their Host, so another web
page open in the same browser cannot make decisions for the TA.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from grader.report import PartResult
from grader.review.overrides import OverrideError
from grader.review.workspace import Workspace, students_in
from grader.written import split_sentences
from grader.written.confidence import LOW_CONFIDENCE, why_unsure

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TEMPLATES.env.globals.update(LOW_CONFIDENCE=LOW_CONFIDENCE, why_unsure=why_unsure)
ALLOWED_HOSTS = {"127.0.0.1", "localhost"}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'"


@dataclass
class RegradeState:
    """The background regrade the index and /regrade pages show."""

    running: bool = False
    message: str | None = None
    error: str | None = None
    done: int = 0


def marked_answer(part: PartResult) -> Markup:
    """The answer as the grader read it, sentence by sentence, each key point's evidence highlighted.

    Green: a sentence that earned a key point (yellow: part of its credit); red: one that states a
    misconception. The title
    says which; everything from the student is escaped.
    """
    if not part.answer:
        return Markup("")
    sentences = split_sentences(part.answer)
    credit: dict[str, list[str]] = {}
    wrong: dict[str, list[str]] = {}
    full: set[str] = set()
    for kp in part.key_points:
        if kp.evidence and kp.points > 0:
            for s in {kp.evidence, *split_sentences(kp.evidence)}:
                credit.setdefault(s, []).append(f"{kp.label} ({kp.points:g}/{kp.max_points:g})")
                if kp.matched:
                    full.add(s)
    for m in part.misconceptions:
        for s in {m.evidence, *split_sentences(m.evidence)}:
            wrong.setdefault(s, []).append(f"misconception: {m.label} (-{m.penalty:g})")
    pieces = []
    for s in sentences:
        if s in wrong:
            pieces.append(Markup('<mark class="wrong" title="{}">{}</mark>').format("; ".join(wrong[s]), s))
        elif s in credit:
            kind = "credit" if s in full else "partial"
            pieces.append(Markup('<mark class="{}" title="{}">{}</mark>').format(kind, "; ".join(credit[s]), s))
        else:
            pieces.append(escape(s))
    return Markup(" ").join(pieces)


def create_app(workspace: Workspace) -> FastAPI:
    """The review app over one graded output directory."""
    app = FastAPI(title="grader review", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(_guard)
    site = _Site(workspace, secrets.token_urlsafe(24), RegradeState())
    _add_pages(app, site)
    _add_decisions(app, site)
    _add_regrade(app, site)
    return app


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Only requests naming this machine as their Host; every response with the CSP and no caching."""
    host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
    if host not in ALLOWED_HOSTS:
        return Response("this app answers only on 127.0.0.1", status_code=403)
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@dataclass
class _Site:
    """What every route shares: the workspace, the form token minted at start, the regrade's state."""

    workspace: Workspace
    token: str
    regrade: RegradeState

    def check(self, form_token: str) -> None:
        if not secrets.compare_digest(form_token, self.token):
            raise HTTPException(403, "stale or missing form token: reload the page")

    def page(self, request: Request, name: str, **context: object) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, {"token": self.token, "ws": self.workspace, **context})


def _back(part_id: str, anchor: str = "", error: str | None = None) -> RedirectResponse:
    url = f"/part/{quote(part_id)}" + (f"?error={quote(error)}" if error else "") + (f"#{anchor}" if anchor else "")
    return RedirectResponse(url, status_code=303)


def _add_pages(app: FastAPI, site: _Site) -> None:
    """The pages that only show: the parts, one part's answer groups, collusion pairs, the class report."""
    workspace = site.workspace

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        rows = []
        for pid in workspace.part_ids:
            items = workspace.queue(pid, pending_only=False)
            answered = [i for i in items if i.part.answer_sha256]
            rows.append(
                {
                    "part_id": pid,
                    "n": len(answered),
                    "pending": sum(i.part.review is None or i.part.review.status == "stale" for i in answered),
                    "stale": sum(i.part.review is not None and i.part.review.status == "stale" for i in answered),
                    "low": sum(i.part.confidence < LOW_CONFIDENCE and i.part.review is None for i in answered),
                }
            )
        return site.page(
            request,
            "index.html",
            rows=rows,
            regrade=site.regrade,
            movement=workspace.last_regrade(),
            n_pairs=len(workspace.pairs()),
        )

    @app.get("/part/{part_id}", response_class=HTMLResponse)
    def part(request: Request, part_id: str, error: str | None = None) -> HTMLResponse:
        if part_id not in workspace.part_ids:
            raise HTTPException(404, f"no part {part_id}")
        groups = workspace.groups(part_id)
        pairs = [p for p in workspace.pairs() if p.part_id == part_id]
        return site.page(
            request,
            "part.html",
            part_id=part_id,
            groups=groups,
            pairs=pairs,
            error=error,
            marked=marked_answer,
        )

    @app.get("/collusion", response_class=HTMLResponse)
    def collusion(request: Request) -> HTMLResponse:
        pairs = [
            (p, workspace.item(p.students[0], p.part_id), workspace.item(p.students[1], p.part_id))
            for p in workspace.pairs()
        ]
        return site.page(request, "collusion.html", pairs=pairs)

    @app.get("/report", response_class=HTMLResponse)
    def report() -> HTMLResponse:
        path = workspace.out / "report.html"
        if workspace.report_dirty or not path.exists():
            workspace.write_class_files(report_html=True)
        return HTMLResponse(path.read_text(encoding="utf-8"))


def _add_decisions(app: FastAPI, site: _Site) -> None:
    """The TA's decisions: on one answer (accept, set points, undo) or on a whole answer group."""
    workspace = site.workspace

    @app.post("/decide")
    def decide(
        token_: Annotated[str, Form(alias="token")],
        student: Annotated[str, Form()],
        part_id: Annotated[str, Form()],
        action: Annotated[str, Form()],
        points: Annotated[str, Form()] = "",
        comment: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        site.check(token_)
        try:
            if action == "undo":
                workspace.undo(student, part_id)
            else:
                workspace.decide(
                    [(student, part_id)], "accept" if action == "accept" else "set", _points(points), comment
                )
        except OverrideError as exc:
            return _back(part_id, f"a-{student}", str(exc))
        return _back(part_id, f"a-{student}")

    @app.post("/decide-group")
    def decide_group(
        token_: Annotated[str, Form(alias="token")],
        part_id: Annotated[str, Form()],
        group: Annotated[int, Form()],
        action: Annotated[str, Form()],
        points: Annotated[str, Form()] = "",
        comment: Annotated[str, Form()] = "",
        pending_only: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        site.check(token_)
        try:
            groups = workspace.groups(part_id)
            members = students_in(groups, group)
            if pending_only:
                done = {
                    i.student_id
                    for g in groups
                    if g.number == group
                    for i in g.items
                    if i.part.review is not None and i.part.review.status != "stale"
                }
                members = [s for s in members if s not in done]
            workspace.decide(
                [(s, part_id) for s in members], "accept" if action == "accept" else "set", _points(points), comment
            )
        except OverrideError as exc:
            return _back(part_id, f"g-{group}", str(exc))
        return _back(part_id, f"g-{group}")


def _add_regrade(app: FastAPI, site: _Site) -> None:
    """Regrading the class with the TA's corrections, in a background thread, and its progress page."""
    workspace, state = site.workspace, site.regrade

    @app.post("/regrade")
    def regrade(token_: Annotated[str, Form(alias="token")]) -> RedirectResponse:
        site.check(token_)
        if not state.running:
            state.running, state.message, state.error, state.done = True, None, None, 0

            def work() -> None:
                try:

                    def tick(_: str) -> None:
                        state.done += 1

                    run = workspace.regrade(progress=tick)
                    state.message = run.movement.sentence()
                except Exception as exc:  # noqa: BLE001 - shown to the TA, the app goes on
                    state.error = f"{type(exc).__name__}: {exc}"
                finally:
                    state.running = False

            threading.Thread(target=work, name="grader-regrade", daemon=True).start()
        return RedirectResponse("/regrade", status_code=303)

    @app.get("/regrade", response_class=HTMLResponse)
    def regrade_status(request: Request) -> HTMLResponse:
        return site.page(
            request,
            "regrade.html",
            regrade=state,
            movement=workspace.last_regrade(),
            total=len(workspace.reports),
        )


def _points(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise OverrideError(f"points must be a number (got {text!r})") from None


def serve(workspace: Workspace, port: int = 0, open_browser: bool = True, ready: threading.Event | None = None) -> None:
    """Serve the app on 127.0.0.1 until interrupted; port 0 picks a free one. Opens the browser once it listens."""
    import socket
    import webbrowser

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    config = uvicorn.Config(create_app(workspace), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    print(f"Reviewing {workspace.out} at {url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    if ready is not None:
        ready.set()
    try:
        server.run(sockets=[sock])
    finally:
        if workspace.report_dirty:
            workspace.write_class_files(report_html=True)
