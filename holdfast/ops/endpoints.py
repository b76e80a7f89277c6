"""The node's own HTTP paths under /_holdfast/, and the ops hooks the S3 front calls.

Health, readiness, status and metrics are answered from process memory only (the status
snapshot each worker keeps current, see status.py): they must keep answering while the
index or the stores are down (DESIGN.md, invariant 6), so nothing here touches either.
The admin API (api.py) is the exception, and bounds its waits. Status and metrics are for
root (and the metrics token) unless --public-status: access.py, also index-free for root.

The S3 front calls three things here: :func:`start` and :func:`stop` from its lifespan, and
:func:`observe` around sending each response.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from holdfast import __version__
from holdfast.s3.http import Request, Response, json_response

if TYPE_CHECKING:
    from holdfast.ops.observe import NullObservation, Observation
    from holdfast.ops.runtime import OpsRuntime
    from holdfast.s3.app import S3App

log = logging.getLogger("holdfast.ops")

STARTED = time.time()  # when this worker started (reset in each child forked after import)


def _new_process() -> None:
    global STARTED
    STARTED = time.time()


os.register_at_fork(after_in_child=_new_process)
METRICS_TIMEOUT = 10.0
START_RETRY_CAP_SECONDS = 60.0

_runtime: OpsRuntime | None = None
# Why this worker's ops machinery is not running (None while it is starting), and the task
# that keeps trying to start it.
_start_error: str | None = None
_retry_task: asyncio.Task | None = None


# -- hooks for the S3 front ------------------------------------------------------------------


async def start(app: S3App) -> None:
    """Start this worker's ops machinery. A failure is logged, never raised: the node must
    serve S3 even if, say, the ops directory cannot be written. It is then retried in the
    background with backoff, and the status page says what is wrong meanwhile."""
    global _retry_task
    if not await _try_start(app):
        _retry_task = asyncio.get_running_loop().create_task(_retry_start(app))


async def _try_start(app: S3App) -> bool:
    global _runtime, _start_error
    from holdfast.ops.runtime import OpsRuntime  # imports prometheus-client: not at module load

    try:
        runtime = OpsRuntime(app)
        await runtime.start()
    except Exception as e:
        log.exception("ops machinery failed to start; retrying with backoff")
        _start_error = f"{type(e).__name__}: {e}"
        return False
    _runtime, _start_error = runtime, None
    return True


async def _retry_start(app: S3App) -> None:
    from holdfast.workers.limits import Backoff

    backoff = Backoff(base=1.0, cap=START_RETRY_CAP_SECONDS)
    while True:
        await asyncio.sleep(backoff.next_delay())
        if await _try_start(app):
            log.warning("ops machinery started after %d failed attempt(s)", backoff.failures)
            return


async def stop() -> None:
    global _runtime, _retry_task
    if _retry_task is not None:
        _retry_task.cancel()
        _retry_task = None
    runtime, _runtime = _runtime, None
    if runtime is not None:
        await runtime.stop()


def observe(request: Request, response: Response) -> Observation | NullObservation:
    """Wraps sending one response: ``with observe(request, response): await send(...)``."""
    runtime = _runtime
    if runtime is None:
        from holdfast.ops.observe import NULL_OBSERVATION

        return NULL_OBSERVATION
    return runtime.observe(request, response)


# -- what a browser asks the S3 port for -----------------------------------------------------

# Query parameters that make a request a signed (SigV4 or V2) S3 request.
_SIGNED_QUERY = ("X-Amz-Signature", "X-Amz-Credential", "Signature", "AWSAccessKeyId")


def browser_shortcut(request: Request) -> Response | None:
    """A browser pointed at the node gets the admin UI and an icon, not an S3 error.

    Only unsigned GET/HEAD requests qualify, so S3 is unchanged: a signed ``GET /`` is still
    ListBuckets, and an anonymous S3 client asking ``/`` (no ``text/html`` in Accept) still
    gets its XML AccessDenied. ``/favicon.ico`` would otherwise be a request for a bucket of
    that name: every page view logged a 403 that showed in the error charts. A signed request
    for a bucket called ``favicon.ico`` still reaches it.
    """
    if request.method not in ("GET", "HEAD") or "authorization" in request.headers:
        return None
    if any(name in request.query for name in _SIGNED_QUERY):
        return None
    if request.raw_path == "/favicon.ico":
        from holdfast.ops.ui import favicon

        return favicon(request)
    if request.raw_path == "/" and "text/html" in request.headers.get("accept", ""):
        return Response(
            302,
            [
                ("Location", "/_holdfast/ui/"),
                ("Content-Length", "0"),
                ("Cache-Control", "no-store"),
            ],
        )
    return None


# -- the paths -------------------------------------------------------------------------------


def wantsjson_response(request: Request) -> bool:
    fmt = request.query.get("format")
    if fmt:
        return fmt == "json"
    return "application/json" in request.headers.get("accept", "")


def status_document(runtime: OpsRuntime) -> dict:
    """The snapshot plus what changes by the second (uptime, the snapshot's own age).

    Until the first check of the drives and the index has finished the node is "starting",
    with no problems: nothing has been found wrong yet, and a monitor polling status from
    the first healthy answer must not see a critical index that was merely not checked."""
    snap = runtime.keeper.snapshot
    now = time.time()
    doc = dict(snap)
    doc["now"] = now
    doc["uptime_seconds"] = round(now - snap["node"]["started"], 3)
    doc["worker_uptime_seconds"] = round(now - STARTED, 3)
    doc["snapshot_age_seconds"] = (
        round(now - snap["refreshed_at"], 3) if snap["refreshed_at"] else None
    )
    doc["ops_leader"] = runtime.leader.is_leader
    if not snap["refreshed_at"]:
        doc["state"], doc["problems"] = "starting", []
    return doc


def starting_document() -> dict:
    """The status of a worker whose ops machinery is not running yet (or failed to start):
    what the process itself knows, from memory."""
    now = time.time()
    problems = []
    if _start_error is not None:
        problems.append(
            {"severity": "warning", "what": f"ops machinery not running: {_start_error}"}
        )
    return {
        "state": "degraded" if problems else "starting",
        "problems": problems,
        "node": {"version": __version__, "worker_pid": os.getpid(), "started": STARTED},
        "drives": [],
        "now": now,
        "refreshed_at": 0.0,
        "uptime_seconds": round(now - STARTED, 3),
        "worker_uptime_seconds": round(now - STARTED, 3),
        "snapshot_age_seconds": None,
        "ops_leader": False,
    }


async def handle(request: Request, app: S3App) -> Response:
    path = request.raw_path.rstrip("/")
    if path == "/_holdfast/health":
        return json_response(
            200,
            {
                "status": "ok",
                "version": __version__,
                "pid": os.getpid(),
                "uptime_seconds": round(time.time() - STARTED, 3),
            },
        )
    runtime = _runtime
    if path == "/_holdfast/ui" or path.startswith("/_holdfast/ui/"):
        from holdfast.ops import ui

        return await ui.handle(request, app, runtime)
    if path.startswith("/_holdfast/api/"):
        if runtime is None:
            return json_response(
                503, {"error": "OpsUnavailable", "message": "ops machinery not running"}
            )
        from holdfast.ops import api

        return await api.handle(request, app, runtime)
    if path not in ("/_holdfast/ready", "/_holdfast/status", "/_holdfast/metrics"):
        return json_response(404, {"error": "NoSuchPath", "path": request.raw_path})
    if request.method not in ("GET", "HEAD"):
        return json_response(405, {"error": "MethodNotAllowed", "message": "use GET"})
    from holdfast.ops import access

    try:
        if path == "/_holdfast/status":
            level = await access.status_access(request, app)
        elif path == "/_holdfast/metrics":
            await access.metrics_access(request, app)
    except access.Denied as e:
        headers = [("WWW-Authenticate", 'Bearer realm="holdfast"')] if e.status == 401 else []
        response = json_response(e.status, {"error": e.code, "message": e.message})
        response.headers.extend(headers)
        return response
    if path == "/_holdfast/status":
        return status(request, runtime, limited=level == access.LIMITED)
    if runtime is None:
        message = _start_error or "starting"
        return json_response(
            503, {"error": "OpsUnavailable", "message": f"ops machinery not running: {message}"}
        )
    if path == "/_holdfast/ready":
        return ready(runtime)
    return await metrics(runtime)


def ready(runtime: OpsRuntime) -> Response:
    from holdfast.ops.status import readiness

    ok, reasons = readiness(runtime.keeper.snapshot, runtime.config.status_refresh_seconds)
    return json_response(200 if ok else 503, {"ready": ok, "reasons": reasons})


def status(request: Request, runtime: OpsRuntime | None, limited: bool = False) -> Response:
    doc = status_document(runtime) if runtime is not None else starting_document()
    if limited:
        from holdfast.ops.access import limited_status

        doc = limited_status(doc)
    if wantsjson_response(request):
        return json_response(200, doc)
    from holdfast.ops.statuspage import render

    return Response(
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
        ],
        render(doc),
    )


async def metrics(runtime: OpsRuntime) -> Response:
    from holdfast.ops import metrics as m

    collectors = [
        m.SnapshotCollector(lambda: runtime.keeper.snapshot),
        m.ProcessCollector(runtime.node.supervisor_pid),
    ]
    try:
        body, content_type = await asyncio.wait_for(
            asyncio.to_thread(m.render, collectors), METRICS_TIMEOUT
        )
    except TimeoutError:
        return json_response(
            503, {"error": "Timeout", "message": "metric files did not answer in time"}
        )
    return Response(200, [("Content-Type", content_type)], body)
