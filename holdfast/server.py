"""Running the HTTP server: uvicorn with httptools and uvloop, one process per core.

docs/http-stack.md records why this stack was chosen and what it measured. Worker processes
share the listening socket; each builds its own app (and index connections) from the
configuration passed through the environment.
"""

from __future__ import annotations

import os

import uvicorn

from holdfast.config import CONFIG_ENV, Config

GRACEFUL_SHUTDOWN_SECONDS = 5


def serve(config: Config) -> None:
    os.environ[CONFIG_ENV] = config.to_env()
    uvicorn.run(
        "holdfast.s3.app:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.worker_count(),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        date_header=True,
        log_level="warning",
        ssl_certfile=config.tls_cert,
        ssl_keyfile=config.tls_key,
        timeout_keep_alive=30,
        # Closing an idle TLS keep-alive connection waits for the client's close_notify,
        # which an idle client never sends (uvloop gives up after 30 s), so without a bound
        # one idle HTTPS client stalls every restart. In-flight requests get this long.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        backlog=2048,
    )
