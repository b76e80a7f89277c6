"""The node's own HTTP paths under /_holdfast/.

They are answered from process memory only: health must keep answering while the index or
the stores are down (DESIGN.md, invariant 6), so nothing here may touch either.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from holdfast import __version__
from holdfast.s3.http import Request, Response

if TYPE_CHECKING:
    from holdfast.s3.app import S3App

STARTED = time.time()


def _json(status: int, payload: dict) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


async def handle(request: Request, app: S3App) -> Response:
    path = request.raw_path.rstrip("/")
    if path == "/_holdfast/health":
        return _json(
            200,
            {
                "status": "ok",
                "version": __version__,
                "pid": os.getpid(),
                "uptime_seconds": round(time.time() - STARTED, 3),
            },
        )
    return _json(404, {"error": "no such path", "path": request.raw_path})
