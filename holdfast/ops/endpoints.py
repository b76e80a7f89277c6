"""The node's own HTTP paths under /_holdfast/, and the ops hooks the S3 front calls.

Health, readiness, status and metrics are answered from process memory only (the status
snapshot each worker keeps current, see status.py): they must keep answering while the
index or the stores are down (DESIGN.md, invariant 6), so nothing here touches either.
The admin API (api.py) is the exception, and bounds its waits.

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

STARTED = time.time()
METRICS_TIMEOUT = 10.0

_runtime: OpsRuntime | None = None


# -- hooks for the S3 front ------------------------------------------------------------------


async def start(app: S3App) -> None:
    """Start this worker's ops machinery. A failure is logged, never raised: the node must
    serve S3 even if, say, the ops directory cannot be written."""
    global _runtime
    from holdfast.ops.runtime import OpsRuntime  # imports prometheus-client: not at module load

    try:
        runtime = OpsRuntime(app)
        await runtime.start()
    except Exception:
        log.exception("ops machinery failed to start; only /_holdfast/health will answer")
        return
    _runtime = runtime


async def stop() -> None:
    global _runtime
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


# -- the paths -------------------------------------------------------------------------------


def wantsjson_response(request: Request) -> bool:
    fmt = request.query.get("format")
    if fmt:
        return fmt == "json"
    return "application/json" in request.headers.get("accept", "")


def status_document(runtime: OpsRuntime) -> dict:
    """The snapshot plus what changes by the second (uptime, the snapshot's own age)."""
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
    return doc


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
    if runtime is None:
        return json_response(
            503, {"error": "OpsUnavailable", "message": "ops machinery not running"}
        )
    if path == "/_holdfast/ready":
        return ready(runtime)
    if path == "/_holdfast/status":
        return status(request, runtime)
    return await metrics(runtime)


def ready(runtime: OpsRuntime) -> Response:
    from holdfast.ops.status import readiness

    ok, reasons = readiness(runtime.keeper.snapshot, runtime.config.status_refresh_seconds)
    return json_response(200 if ok else 503, {"ready": ok, "reasons": reasons})


def status(request: Request, runtime: OpsRuntime) -> Response:
    doc = status_document(runtime)
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
