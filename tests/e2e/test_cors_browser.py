"""CORS in a real browser: Debian's chromium through Playwright (as tests/e2e/test_ui.py).
A page served from another origin (a tiny http.server on another port) uploads with a
presigned PUT and reads the object back with fetch: it works with a matching CORS rule and is
blocked by the browser without one."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import Server, free_port, start_server, unique
from tests.e2e.test_ui import CHROMIUM_ARGS, TIMEOUT_MS, ensure_chromium, ensure_playwright

PAGE = b"<!doctype html><title>another origin</title><p>app</p>"

UPLOAD_AND_READ = """async ([putUrl, getUrl]) => {
  try {
    const put = await fetch(putUrl, {method: 'PUT', body: 'from the browser'});
    if (!put.ok) return 'put ' + put.status;
    const got = await fetch(getUrl);
    return got.status + ' ' + (await got.text()) + ' ' + (got.headers.get('etag') || '');
  } catch (e) {
    return 'blocked: ' + e.name;
  }
}"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("cors"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[object]:
    executable = ensure_chromium()
    ensure_playwright()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-cors-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


def _urls(s3, bucket: str, key: str) -> list[str]:
    presign = functools.partial(s3.generate_presigned_url, ExpiresIn=300)
    return [
        presign("put_object", Params={"Bucket": bucket, "Key": key}),
        presign("get_object", Params={"Bucket": bucket, "Key": key}),
    ]


def test_browser_upload_and_read_with_and_without_a_rule(browser, cors_server, page_origin):
    s3 = cors_server.client(signature_version="s3v4")  # SigV2 would sign Content-Type
    bucket = unique("cors")
    s3.create_bucket(Bucket=bucket)
    page = browser.new_page()
    try:
        page.goto(page_origin + "/")
        # No CORS rule: the browser's preflight gets 403 and fetch fails; nothing stored.
        key = unique("blocked")
        assert page.evaluate(UPLOAD_AND_READ, _urls(s3, bucket, key)) == "blocked: TypeError"
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        # A rule for another origin does not help either.
        other = {"AllowedOrigins": ["http://elsewhere.test"], "AllowedMethods": ["GET", "PUT"]}
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [other]})
        assert page.evaluate(UPLOAD_AND_READ, _urls(s3, bucket, key)) == "blocked: TypeError"
        # A matching rule: the upload and the read both work, and ETag is exposed.
        rule = {
            "AllowedOrigins": [page_origin],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 0,
        }
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
        key = unique("allowed")
        got = page.evaluate(UPLOAD_AND_READ, _urls(s3, bucket, key))
        assert got.startswith("200"), got
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        assert got == f"200 from the browser {etag}"
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"from the browser"
    finally:
        page.close()
