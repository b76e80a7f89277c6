"""The admin web UI in a real headless browser: Debian's chromium driven by Playwright.

The browser signs in, browses a bucket by prefix, uploads a file (checked with boto3),
finds that upload in the request log and draws a chart. Plain HTTP clients check what a
browser would hide: CSRF rejection of forged requests and the session cookie's flags.
Chromium is installed with apt-get when missing; Playwright's own browser download is
never used (it cannot reach the internet here), only its Python driver.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT_AK, ROOT_SK, Server, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI = "/_holdfast/ui/"
TIMEOUT_MS = 10_000


def _apt(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-q", "-y", *args]
    try:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get if it is missing."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip("chromium is missing and apt-get is not available to install it")
    if not _apt("install", "chromium"):
        _apt("update")
        if not _apt("install", "chromium"):
            pytest.skip("chromium is missing and 'apt-get install chromium' failed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM


def ensure_playwright() -> None:
    """The Python driver (the `test` extra installs it; this covers a bare environment)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "playwright"], capture_output=True
        )
        if result.returncode != 0:
            pytest.skip("the playwright package is missing and could not be installed")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("ui"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[object]:
    """One persistent chromium context with a fresh profile directory."""
    executable = ensure_chromium()
    ensure_playwright()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


def sign_in(page, server: Server, access_key: str = ROOT_AK, secret_key: str = ROOT_SK):
    page.goto(server.endpoint + UI)
    page.fill("#access-key", access_key)
    page.fill("#secret-key", secret_key)
    page.click("#signin-button")


@pytest.fixture(scope="module")
def page(browser, ui_server):
    """A signed-in page shared by the tests below (signing in is tested on its own)."""
    browser.clear_cookies()
    page = browser.new_page()
    sign_in(page, ui_server)
    page.wait_for_selector("#whoami:has-text('root')")
    yield page
    page.close()


def test_sign_in_rejects_bad_keys_then_accepts_good_ones(browser, ui_server):
    from playwright.sync_api import expect

    browser.clear_cookies()
    page = browser.new_page()
    try:
        sign_in(page, ui_server, secret_key="not-the-secret")
        expect(page.locator("#signin-error")).to_contain_text("Sign-in failed")
        expect(page.locator("#app")).to_be_hidden()
        assert not browser.cookies()
        sign_in(page, ui_server)
        expect(page.locator("#whoami")).to_contain_text("root")
        (cookie,) = [c for c in browser.cookies() if c["name"] == "holdfast_ui"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/_holdfast/"
        # The session survives a reload: it is the signed cookie, not page state.
        page.reload()
        expect(page.locator("#whoami")).to_contain_text("root")
    finally:
        page.close()


def test_browse_upload_and_find_it_in_the_request_log(page, ui_server, tmp_path):
    from playwright.sync_api import expect

    s3 = ui_server.client()
    bucket = f"ui-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for key in ("photos/2024/a.jpg", "photos/b.txt", "top.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 10)

    page.goto(ui_server.endpoint + UI + "#buckets")
    page.click(f"a.bucket-link:text-is('{bucket}')")
    expect(page.locator("#object-table a.prefix")).to_have_text(["photos/"])
    expect(page.locator("#object-table a.object")).to_have_text(["top.txt"])
    page.click("#object-table a.prefix:text-is('photos/')")
    expect(page.locator("#object-table a.prefix")).to_have_text(["2024/"])
    expect(page.locator("#object-table a.object")).to_have_text(["b.txt"])

    payload = os.urandom(300_000)
    local = tmp_path / "report.bin"
    local.write_bytes(payload)
    page.set_input_files("#upload-file", str(local))
    page.click("#upload-button")
    expect(page.locator("#upload-status")).to_contain_text("uploaded photos/report.bin")
    progress = page.eval_on_selector("#upload-progress", "e => [e.value, e.dataset.events]")
    assert progress[0] == 100 and int(progress[1]) >= 1  # XHR upload progress was shown
    expect(page.locator("#object-table a.object")).to_have_text(["b.txt", "report.bin"])
    assert s3.get_object(Bucket=bucket, Key="photos/report.bin")["Body"].read() == payload

    with page.expect_download() as download_info:
        page.click("#object-table a.object:text-is('report.bin')")
    download = download_info.value
    assert download.suggested_filename == "report.bin"
    assert Path(download.path()).read_bytes() == payload

    page.once("dialog", lambda d: d.accept())
    page.locator("#object-table tr", has_text="b.txt").locator("button:text-is('Delete')").click()
    expect(page.locator("#object-table a.object")).to_have_text(["report.bin"])
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="photos/b.txt")

    page.goto(ui_server.endpoint + UI + "#log")
    page.fill("#log-bucket", bucket)
    page.fill("#log-key", "photos/rep")
    page.fill("#log-status", "200")
    # The PUT through the UI, not the downloads (UI and boto3) of the same key.
    rows = page.locator("#log-table tbody tr", has_text="Holdfast:ui").filter(has_text="PUT")
    deadline = time.monotonic() + 10  # the log is flushed every half second
    while True:
        page.click("#log-search")
        page.wait_for_selector("#log-count:has-text('record')")
        if rows.count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert rows.count() == 1
    rows.first.click()
    detail = page.locator("#log-detail")
    expect(detail).to_contain_text('"method": "PUT"')
    expect(detail).to_contain_text('"key": "photos/report.bin"')
    expect(detail).to_contain_text(f'"access_key": "{ROOT_AK}"')
    expect(detail).to_contain_text(f'"bytes_in": {len(payload)}')


def test_a_chart_is_drawn_from_the_time_series(page, ui_server):
    """The ops leader samples every 10 s; wait for a sample, then look for drawn points."""
    deadline = time.monotonic() + 25
    points = 0
    page.goto(ui_server.endpoint + UI + "#charts")
    while time.monotonic() < deadline:
        page.select_option("#chart-range", "1d")
        page.select_option("#chart-range", "1h")
        page.wait_for_selector("#chart-capacity path.line", state="attached")
        points = max(
            int(p.get_attribute("data-points") or 0)
            for p in page.locator("svg.chart path.line").all()
        )
        if points:
            break
        time.sleep(1)
    assert points > 0, "no chart drew a data point within 25 s"
    path = page.locator("#chart-capacity path.line").first.get_attribute("d")
    assert path and path.startswith("M")
    assert page.locator("#chart-capacity circle.pt").count() >= 1
    assert page.locator("#chart-capacity circle.pt").first.is_visible()


def test_users_page_creates_disables_and_deletes(page, ui_server):
    from playwright.sync_api import expect

    name = f"ui-user-{uuid.uuid4().hex[:8]}"
    page.goto(ui_server.endpoint + UI + "#users")
    page.fill("#user-name", name)
    page.click("#user-form button[type=submit]")
    expect(page.locator("#new-user .new-secret-key")).to_contain_text("Secret key: ")
    row = page.locator(f"#user-table tr[data-user='{name}']")
    expect(row).to_contain_text("enabled")
    row.locator("button:text-is('Disable')").click()
    expect(row).to_contain_text("disabled")
    page.once("dialog", lambda d: d.accept())
    row.locator("button:text-is('Delete')").click()
    expect(row).to_have_count(0)


def test_health_view_shows_the_drives(page, ui_server):
    from playwright.sync_api import expect

    page.goto(ui_server.endpoint + UI + "#health")
    expect(page.locator("#drive-table tbody tr")).to_have_count(1)
    expect(page.locator("#drive-table tbody tr")).to_contain_text("d0")


# -- what a browser hides: forged requests and cookie flags ------------------------------------


def _session(server: Server) -> tuple[requests.Session, str]:
    """A signed-in requests session. ``verify`` goes on each call: requests lets
    REQUESTS_CA_BUNDLE override a session-wide setting."""
    http = requests.Session()
    http.request = functools.partial(http.request, verify=server.ca_path or False)
    r = http.post(
        server.endpoint + UI + "api/session",
        json={"access_key": ROOT_AK, "secret_key": ROOT_SK},
        headers={"Origin": server.endpoint},
    )
    assert r.status_code == 200, r.text
    return http, r.json()["csrf"]


def test_forged_requests_without_the_csrf_token_are_rejected(ui_server):
    http, csrf = _session(ui_server)
    name = f"csrf-{uuid.uuid4().hex[:12]}"
    buckets = ui_server.endpoint + UI + "api/buckets"
    r = http.post(buckets, json={"name": name})
    assert r.status_code == 403 and r.json()["error"] == "InvalidCSRFToken"
    r = http.post(buckets, json={"name": name}, headers={"X-Holdfast-CSRF": "forged"})
    assert r.status_code == 403
    r = http.post(ui_server.endpoint + "/_holdfast/api/users", json={"name": name})
    assert r.status_code == 403
    assert name not in {b["Name"] for b in ui_server.client().list_buckets()["Buckets"]}
    r = http.post(buckets, json={"name": name}, headers={"X-Holdfast-CSRF": csrf})
    assert r.status_code == 201, r.text
    # Sign-in from another site's page is refused outright.
    r = requests.post(
        ui_server.endpoint + UI + "api/session",
        json={"access_key": ROOT_AK, "secret_key": ROOT_SK},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    # A forged or expired cookie is no session at all.
    r = requests.get(buckets, cookies={"holdfast_ui": "e30.AAAA"})
    assert r.status_code == 401


def test_session_cookie_is_secure_httponly_strict_over_https(https_server):
    http, _ = _session(https_server)
    r = http.get(https_server.endpoint + UI + "api/session")
    assert r.status_code == 200
    raw = http.post(
        https_server.endpoint + UI + "api/session",
        json={"access_key": ROOT_AK, "secret_key": ROOT_SK},
        headers={"Origin": https_server.endpoint},
    ).headers["Set-Cookie"]
    flags = {part.strip().split("=")[0].lower() for part in raw.split(";")}
    assert {"secure", "httponly", "samesite"} <= flags
    assert "SameSite=Strict" in raw
    r = http.delete(https_server.endpoint + UI + "api/session", headers={"X-Holdfast-CSRF": "x"})
    assert r.status_code == 403  # signing out is a state change too
