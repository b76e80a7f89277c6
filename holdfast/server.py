"""Running the HTTP server: uvicorn with httptools and uvloop, one process per core.

docs/http-stack.md records why this stack was chosen and what it measured. Worker processes
share the listening socket; each builds its own app (and index connections) from the
configuration passed through the environment.
"""

from __future__ import annotations

import os

import uvicorn

from holdfast.config import CONFIG_ENV, Config


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
        backlog=2048,
    )
