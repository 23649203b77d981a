"""A Starlette app with server-rendered pages (Jinja2, everything autoescaped, no JavaScript).

Read-only unless ``allow_actions=True``. Actions are POST forms carrying a token only this app
knows, so another site open in the same browser cannot trigger them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jinja2
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import config
from .._report import age, warnings_for
from ..errors import AioqueueError, GroupNotFound, JobNotFound, JobStateError
from ..queue import Queue
from ..types import JobState
from .chart import bars

HERE = Path(__file__).parent
PAGE_SIZE = 50
SHOWN_BYTES = 64 * 1024  # payloads and results are cut here on the page
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
RETRYABLE = (JobState.FAILED, JobState.CANCELLED)
CANCELLABLE = (JobState.WAITING, JobState.PENDING, JobState.SCHEDULED, JobState.RUNNING)


class BadRequest(Exception):
    """A filter or form value the dashboard refuses; shown to the user as a 400 page."""


def pretty(value: Any) -> str:
    """Indented JSON for display, cut at SHOWN_BYTES."""
    text = json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False)
    if len(text) > SHOWN_BYTES:
        return text[:SHOWN_BYTES] + f"\n… ({len(text) - SHOWN_BYTES} more characters not shown)"
    return text


class Dashboard:
    def __init__(
        self,
        queue: Queue | None,
        *,
        dsn: str | None,
        schema: str | None,
        allow_actions: bool,
        title: str,
        read_dsn: str | None = None,
    ) -> None:
        self._queue = queue
        self._owns_queue = False
        self._dsn = dsn
        self._read_dsn = read_dsn
        self._schema = config.resolve_schema(schema)
        self._lock = asyncio.Lock()
        self.allow_actions = allow_actions
        self.title = title
        self.token = secrets.token_urlsafe(32)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["age"] = age
        self.env.filters["pretty"] = pretty

    async def queue(self) -> Queue:
        """The Queue given, else one connected on first use (a mounted app gets no lifespan)."""
        if self._queue is None:
            async with self._lock:
                if self._queue is None:
                    self._queue = await Queue.connect(
                        self._dsn, schema=self._schema, migrate=False, read_dsn=self._read_dsn
                    )
                    self._owns_queue = True
        return self._queue

    async def close(self) -> None:
        if self._owns_queue and self._queue is not None:
            await self._queue.close()
            self._queue = None

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        template = self.env.get_template(name)
        html = template.render(request=request, dash=self, jobs_url=_jobs_url(request), **context)
        return Response(html, status_code=status, media_type="text/html", headers=HEADERS)

    # -- pages -----------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        q = await self.queue()
        stats = await q.stats()
        history = await q.history(minutes=60)
        return self.render(
            request,
            "overview.html",
            stats=stats,
            states=list(JobState),
            warnings=warnings_for(stats),
            chart=bars(history),
            finished_last_hour=sum(p.completed + p.failed for p in history),
            message=request.query_params.get("message", ""),
        )

    async def jobs(self, request: Request) -> Response:
        params = request.query_params
        kind = params.get("kind") or None
        queue_name = params.get("queue_name") or None
        state = params.get("state") or None  # list_jobs refuses a bad one, naming the states
        after = _int_param(params, "after")
        q = await self.queue()
        jobs = await q.list_jobs(
            kind=kind, state=state, queue_name=queue_name, after=after, limit=PAGE_SIZE
        )
        stats = await q.stats()
        return self.render(
            request,
            "jobs.html",
            jobs=jobs,
            kinds=sorted(k.kind for k in stats.kinds),
            states=list(JobState),
            filters={"kind": kind or "", "state": state or "", "queue_name": queue_name or ""},
            after=after,
            next_after=jobs[-1].id if len(jobs) == PAGE_SIZE else None,
        )

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        q = await self.queue()
        chain = await q.lineage(job_id)  # the job itself is in its chain (JobNotFound if not)
        job = await q.get_job(job_id)  # with its workflow columns (progress, meta, group)
        family = await q.job_family(job_id)
        group = None
        if job.group_id is not None:
            with contextlib.suppress(GroupNotFound):
                group = await q.get_group(job.group_id)
        return self.render(
            request,
            "job.html",
            job=job,
            chain=chain,
            parents=[f for f in family if f.relation == "parent"],
            children=[f for f in family if f.relation == "child"],
            group=group,
            can_retry=self.allow_actions and job.state in RETRYABLE,
            can_cancel=self.allow_actions and job.state in CANCELLABLE,
            message=request.query_params.get("message", ""),
        )

    async def retry(self, request: Request) -> Response:
        await self._check_action(request)
        out = await (await self.queue()).retry(request.path_params["job_id"])
        return self._redirect_to_job(request, out.id, f"retried as job {out.id}")

    async def cancel(self, request: Request) -> Response:
        await self._check_action(request)
        job = await (await self.queue()).cancel(request.path_params["job_id"])
        done = "cancelled" if job.state is JobState.CANCELLED else "cancel requested"
        return self._redirect_to_job(request, job.id, done)

    async def flow_pause(self, request: Request) -> Response:
        return await self._flow_action(request, paused=True)

    async def flow_resume(self, request: Request) -> Response:
        return await self._flow_action(request, paused=False)

    async def _flow_action(self, request: Request, *, paused: bool) -> Response:
        """Pause or resume a kind (form field ``kind``) or a named queue (``queue_name``)."""
        form = await self._check_action(request)
        kind = form.get("kind", [""])[0] or None
        queue_name = form.get("queue_name", [""])[0] or None
        q = await self.queue()
        if paused:
            await q.pause(kind, queue_name=queue_name)
        else:
            await q.resume(kind, queue_name=queue_name)
        what = kind if kind is not None else f"queue {queue_name}"
        url = request.url_for("overview").include_query_params(
            message=f"{'paused' if paused else 'resumed'} {what}"
        )
        return RedirectResponse(str(url), status_code=303, headers=HEADERS)

    async def api_stats(self, request: Request) -> Response:
        stats = await (await self.queue()).stats()
        return JSONResponse(msgspec.to_builtins(stats), headers=HEADERS)

    async def stylesheet(self, request: Request) -> Response:
        return FileResponse(HERE / "static" / "style.css", headers=HEADERS)

    # -- helpers ---------------------------------------------------------------------------------

    async def _check_action(self, request: Request) -> dict[str, list[str]]:
        if not self.allow_actions:
            raise PermissionError("actions are disabled (start the dashboard with --allow-actions)")
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        token = form.get("token", [""])[0]
        if not secrets.compare_digest(token.encode(), self.token.encode()):
            raise PermissionError("missing or stale form token: reload the page and try again")
        return form

    def _redirect_to_job(self, request: Request, job_id: int, message: str) -> Response:
        url = request.url_for("job", job_id=job_id).include_query_params(message=message)
        return RedirectResponse(str(url), status_code=303, headers=HEADERS)

    def guarded(
        self, page: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Turn the errors a user can cause into readable pages instead of 500s."""

        async def handle(request: Request) -> Response:
            try:
                return await page(request)
            except JobNotFound as exc:
                return self._error(request, 404, f"job {exc} not found (it may have been pruned)")
            except JobStateError as exc:
                return self._error(request, 409, str(exc))
            except PermissionError as exc:
                return self._error(request, 403, str(exc))
            except (BadRequest, AioqueueError) as exc:
                return self._error(request, 400, str(exc))

        return handle

    def _error(self, request: Request, status: int, message: str) -> Response:
        return self.render(
            request, "error.html", status=status, status_code=status, message=message
        )


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name) or None
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise BadRequest(f"{name} must be a job id")
    return int(value)


def _jobs_url(request: Request) -> Callable[..., str]:
    def build(**params: Any) -> str:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        base = str(request.url_for("jobs"))
        return base + ("?" + urllib.parse.urlencode(query) if query else "")

    return build


def create_app(
    queue: Queue | None = None,
    *,
    dsn: str | None = None,
    schema: str | None = None,
    allow_actions: bool = False,
    title: str = "aioqueue",
    read_dsn: str | None = None,
) -> Starlette:
    """The dashboard as an ASGI app. Pass your ``queue`` when mounting it in your own app
    (``app.mount("/queue", create_app(q))``); otherwise it connects to ``dsn`` (else the
    configured DSN, else the embedded server) on first use. ``allow_actions`` enables the retry
    and cancel buttons; protect the mount point with your app's authentication. ``read_dsn``
    (when it connects by itself): a standby its pages read from (``Queue.connect(read_dsn=)``)."""
    dash = Dashboard(
        queue, dsn=dsn, schema=schema, allow_actions=allow_actions, title=title, read_dsn=read_dsn
    )
    g = dash.guarded
    routes = [
        Route("/", g(dash.overview), name="overview"),
        Route("/jobs", g(dash.jobs), name="jobs"),
        Route("/jobs/{job_id:int}", g(dash.job), name="job"),
        Route("/jobs/{job_id:int}/retry", g(dash.retry), methods=["POST"], name="retry"),
        Route("/jobs/{job_id:int}/cancel", g(dash.cancel), methods=["POST"], name="cancel"),
        Route("/flow/pause", g(dash.flow_pause), methods=["POST"], name="flow_pause"),
        Route("/flow/resume", g(dash.flow_resume), methods=["POST"], name="flow_resume"),
        Route("/api/stats", g(dash.api_stats), name="api_stats"),
        Route("/static/style.css", dash.stylesheet, name="stylesheet"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await dash.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = dash
    return app
