"""CPU cost of the ops request hook (request log + metrics) on a 4 KiB GET, in-process.

    .venv/bin/python bench/ops_hook.py [--requests 20000]

Drives the real ASGI app directly (no sockets, so only Holdfast's own CPU is measured):
signed 4 KiB GETs with the ops runtime running, then with the hook switched off. The "with"
run includes the deferred work too: the batches are processed (log lines written, metrics
counted) inside the timed region, in the log thread, and the process CPU time counts them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AK, SK = "HFBENCHACCESSKEY0001", "bench-secret-key-0123456789abcdefghijkl"


def signed_headers(method: str, url: str, body: bytes = b"") -> list[tuple[bytes, bytes]]:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1").add_auth(req)
    headers = [(k.lower().encode(), v.encode()) for k, v in req.headers.items()]
    return [*headers, (b"host", b"127.0.0.1:9000"), (b"content-length", str(len(body)).encode())]


async def call(app, method: str, path: str, headers, body: bytes = b"") -> int:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
    }
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 0

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def run(n: int) -> None:
    from holdfast.config import Config
    from holdfast.ops import endpoints
    from holdfast.s3.app import S3App

    data = Path(tempfile.mkdtemp(prefix="hf-hook-"))
    config = Config(data_dirs=[str(data / "d0")])
    app = S3App(config)
    messages = asyncio.Queue()
    await messages.put({"type": "lifespan.startup"})
    replies = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan"}, messages.get, replies.put))
    await replies.get()
    runtime = endpoints._runtime
    assert runtime is not None
    url = "http://127.0.0.1:9000/bench/k4"
    assert (
        await call(app, "PUT", "/bench", signed_headers("PUT", "http://127.0.0.1:9000/bench"))
        == 200
    )
    body = os.urandom(4096)
    assert await call(app, "PUT", "/bench/k4", signed_headers("PUT", url, body), body) == 200
    get_headers = signed_headers("GET", url)

    async def batch(count: int) -> float:
        start = time.process_time()
        for _ in range(count):
            await call(app, "GET", "/bench/k4", get_headers)
        runtime._flush()  # hand the last batch over and wait for it: deferred work counts
        while runtime._log_future is not None and not runtime._log_future.done():
            await asyncio.sleep(0.001)
        return (time.process_time() - start) / count * 1e6

    await batch(2000)  # warm up
    results = {"with hook": [], "without hook": []}
    for _ in range(3):
        endpoints._runtime = runtime
        results["with hook"].append(await batch(n))
        endpoints._runtime = None
        results["without hook"].append(await batch(n))
    endpoints._runtime = runtime
    best = {k: min(v) for k, v in results.items()}
    for k, v in best.items():
        print(f"{k:14} {v:7.1f} µs CPU per 4 KiB GET (best of 3 x {n})")
    extra = best["with hook"] - best["without hook"]
    print(f"hook overhead  {extra:7.1f} µs = {100 * extra / best['without hook']:.1f}%")
    hot = await hot_path_only(runtime, n)
    print(f"  of which on the request path (observe + append): {hot:.2f} µs")
    await messages.put({"type": "lifespan.shutdown"})
    await lifespan


async def hot_path_only(runtime, n: int) -> float:
    from holdfast.ops import endpoints
    from holdfast.s3.http import Request, Response

    request = Request("GET", "/b/k", "", {}, {}, None, "X", "127.0.0.1:1")
    response = Response(200, [], b"x" * 4096)
    start = time.perf_counter()
    for _ in range(n):
        with endpoints.observe(request, response):
            pass
    elapsed = (time.perf_counter() - start) / n * 1e6
    runtime.pending.clear()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    os.environ["HOLDFAST_ACCESS_KEY"], os.environ["HOLDFAST_SECRET_KEY"] = AK, SK
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hf-hook-metrics-")
    asyncio.run(run(args.requests))


if __name__ == "__main__":
    main()
