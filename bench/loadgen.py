"""The load generator: presigned URLs from botocore, replayed by wrk.

Signing happens up front so the measured client (wrk, in C) does no crypto
and costs the same for every server. The client's CPU is read from wait4's
rusage so it can be reported next to each figure.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LUA_SCRIPT = Path(__file__).with_name("replay.lua")
SIGNED_LUA_SCRIPT = Path(__file__).with_name("replay_signed.lua")
EXPIRES = 6 * 3600


def ensure_wrk() -> str:
    """Return wrk's path, installing Debian's package when we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed and we are not root: run `apt-get install -y wrk`")
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}).returncode:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(install, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get install wrk succeeded but wrk is not on PATH")
    return found


class Presigner:
    """SigV4 query-string signing (UNSIGNED-PAYLOAD), path-style, via botocore."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._auth = S3SigV4QueryAuth(
            Credentials(access_key, secret_key), "s3", region, expires=EXPIRES
        )

    def url(self, method: str, bucket: str, key: str = "", query: dict | None = None) -> str:
        """A full presigned URL for one request."""
        path = f"/{bucket}" + (f"/{quote(key, safe='/~')}" if key else "")
        url = self.endpoint + path
        if query:
            url += "?" + urlencode(query, quote_via=quote)
        request = AWSRequest(method=method, url=url, headers={})
        self._auth.add_auth(request)
        return request.url

    def path(self, method: str, bucket: str, key: str = "", query: dict | None = None) -> str:
        """Path and query only, as wrk wants it."""
        parts = urlsplit(self.url(method, bucket, key, query))
        return f"{parts.path}?{parts.query}"


class HeaderSigner:
    """SigV4 in the Authorization header, as SDKs sign: each request gets its own
    X-Amz-Date and signature, and over plain HTTP the payload's SHA-256 is signed (botocore's
    S3SigV4Auth, what boto3 uses). No presigned-URL cache can serve these twice."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._auth = S3SigV4Auth(Credentials(access_key, secret_key), "s3", region)

    def sign(
        self, method: str, bucket: str, key: str = "", body: bytes = b"", query: dict | None = None
    ) -> tuple[str, dict[str, str]]:
        """(path?query, headers to send) for one request carrying `body`."""
        path = f"/{bucket}" + (f"/{quote(key, safe='/~')}" if key else "")
        if query:
            path += "?" + urlencode(query, quote_via=quote)
        request = AWSRequest(method=method, url=self.endpoint + path, data=body, headers={})
        self._auth.add_auth(request)
        keep = ("authorization", "x-amz-date", "x-amz-content-sha256")
        return path, {k: v for k, v in request.headers.items() if k.lower() in keep}

    def line(self, method: str, bucket: str, key: str, body: bytes = b"") -> str:
        """One request for replay_signed.lua: path, date, authorization, payload hash."""
        path, h = self.sign(method, bucket, key, body)
        return "\t".join((path, h["X-Amz-Date"], h["Authorization"], h["X-Amz-Content-SHA256"]))


@dataclass
class WrkResult:
    """wrk's summary plus the client's own CPU use."""

    requests: int
    duration_s: float
    errors: int
    status_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    wrapped: int
    client_cpu_s: float
    error_kinds: dict[str, int] = field(default_factory=dict)  # wrk's err_* counters, nonzero

    @property
    def ok_per_s(self) -> float:
        """Successful operations per second; errors never count as throughput."""
        return (self.requests - self.errors) / self.duration_s if self.duration_s else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.duration_s if self.duration_s else 0.0

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 1.0


def _parse(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line.removeprefix("BENCHJSON "))
    raise RuntimeError(f"wrk printed no summary:\n{stdout[-2000:]}")


def run_wrk(
    endpoint: str,
    method: str,
    paths: list[str],
    *,
    body_size: int,
    duration: int,
    connections: int,
    threads: int,
    script: Path = LUA_SCRIPT,
) -> WrkResult:
    """Replay `paths` (lines of `script`'s format) against `endpoint` for `duration`
    seconds and summarise."""
    wrk = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".urls", delete=False) as f:
        f.write("\n".join(paths) + "\n")
    env = {
        **os.environ,
        "BENCH_URLS": f.name,
        "BENCH_METHOD": method,
        "BENCH_BODY": str(body_size),
        "BENCH_THREADS": str(threads),
    }
    cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration}s"]
    cmd += ["--timeout", "30s", "-s", str(script), endpoint]
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        os.unlink(f.name)
    if proc.returncode:
        raise RuntimeError(f"wrk exited {proc.returncode}:\n{out[-2000:]}")
    s = _parse(out)
    errors = sum(s[k] for k in s if k.startswith("err_"))
    return WrkResult(
        requests=s["requests"],
        duration_s=s["duration_us"] / 1e6,
        errors=errors,
        status_errors=s["err_status"],
        p50_ms=s["p50_us"] / 1000,
        p90_ms=s["p90_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        wrapped=s["wrapped"],
        client_cpu_s=usage.ru_utime + usage.ru_stime,
        error_kinds={k: s[k] for k in s if k.startswith("err_") and s[k]},
    )


@dataclass
class ThreadsResult:
    """What `replay_threads` measured: per-request latencies (seconds), failures, times."""

    latencies: list[float]
    failed: int
    wall: float
    client_cpu_s: float

    def quantile_ms(self, q: int) -> float:
        """The q-th percentile latency in milliseconds."""
        lat = sorted(self.latencies)
        if len(lat) < 2:
            return lat[0] * 1000 if lat else 0.0
        return statistics.quantiles(lat, n=100)[q - 1] * 1000


def replay_threads(
    endpoint: str,
    method: str,
    requests: list[tuple[str, dict[str, str]]],
    connections: int,
    ok: tuple[int, ...] = (200, 204),
) -> ThreadsResult:
    """Send each of ``requests`` (path, headers; e.g. HeaderSigner.sign's) once, from
    ``connections`` Python threads, each with a keep-alive connection. For what wrk cannot
    replay: a DELETE that must hit each key once, a HEAD (wrk waits for the body its
    Content-Length announces)."""
    netloc = endpoint.split("//", 1)[1]
    it = iter(requests)
    lock = threading.Lock()
    lat: list[float] = []
    failed = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection(netloc, timeout=60)
        mine = []
        try:
            while True:
                with lock:
                    req = next(it, None)
                if req is None:
                    break
                path, headers = req
                t0 = time.perf_counter()
                try:
                    conn.request(method, path, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    good = resp.status in ok
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(netloc, timeout=60)
                    good = False
                mine.append(time.perf_counter() - t0)
                if not good:
                    with lock:
                        failed[0] += 1
        finally:
            conn.close()
            with lock:
                lat.extend(mine)

    t0, c0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ThreadsResult(lat, failed[0], time.perf_counter() - t0, time.process_time() - c0)
