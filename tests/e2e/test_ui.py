"""The admin web UI in a real headless browser: Debian's chromium driven by Playwright.

The browser signs in, browses a bucket by prefix, uploads a file (checked with boto3),
opens an object's panel (metadata, previews) and shares it (the link is fetched with
requests), deletes in bulk, pages through the request log, reads the health tables and the
charts, and lays every view out at phone width in light and dark mode. Plain HTTP clients
check what a browser would hide: CSRF rejection of forged requests, the session cookie's
flags, and what a browser gets at ``/`` and ``/favicon.ico``.
Chromium is installed with apt-get when missing; Playwright's own browser download is
never used (it cannot reach the internet here), only its Python driver.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sqlite3
import struct
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
    expect(page.locator("#object-table button.object")).to_have_text(["top.txt"])
    page.click("#object-table a.prefix:text-is('photos/')")
    expect(page.locator("#object-table a.prefix")).to_have_text(["2024/"])
    expect(page.locator("#object-table button.object")).to_have_text(["b.txt"])

    payload = os.urandom(300_000)
    local = tmp_path / "report.bin"
    local.write_bytes(payload)
    page.set_input_files("#upload-file", str(local))
    page.click("#upload-button")
    expect(page.locator("#upload-status")).to_contain_text("uploaded photos/report.bin")
    progress = page.eval_on_selector("#upload-progress", "e => [e.value, e.dataset.events]")
    assert progress[0] == 100 and int(progress[1]) >= 1  # XHR upload progress was shown
    expect(page.locator("#object-table button.object")).to_have_text(["b.txt", "report.bin"])
    assert s3.get_object(Bucket=bucket, Key="photos/report.bin")["Body"].read() == payload

    # Clicking a name opens its panel; the download is a button there.
    page.click("#object-table button.object:text-is('report.bin')")
    expect(page.locator("#object-panel")).to_be_visible()
    with page.expect_download() as download_info:
        page.click("#panel-download")
    download = download_info.value
    assert download.suggested_filename == "report.bin"
    assert Path(download.path()).read_bytes() == payload

    page.once("dialog", lambda d: d.accept())
    page.locator("#object-table tr", has_text="b.txt").locator("button:text-is('Delete')").click()
    expect(page.locator("#object-table button.object")).to_have_text(["report.bin"])
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
    expect(detail.locator("tr[data-field=method] td")).to_have_text("PUT")
    expect(detail.locator("tr[data-field=key] td")).to_have_text("photos/report.bin")
    expect(detail.locator("tr[data-field=access_key] td")).to_have_text(ROOT_AK)
    expect(detail.locator("tr[data-field=bytes_in] td")).to_have_text(str(len(payload)))


def test_a_chart_is_drawn_from_the_time_series(page, ui_server):
    """The ops leader samples every 10 s; wait for a sample, then look for drawn points."""
    from playwright.sync_api import expect

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
    # Time along the axis (HH:MM), and on the day view the date as well.
    labels = page.locator("#chart-requests text.time-label").all_text_contents()
    assert len(labels) == 5 and all(re.fullmatch(r"\d\d:\d\d", t) for t in labels), labels
    assert page.locator("#chart-requests text.date-label").count() == 0
    page.select_option("#chart-range", "1d")
    page.wait_for_selector("#chart-requests text.date-label")
    dates = page.locator("#chart-requests text.date-label").all_text_contents()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", t) for t in dates), dates
    # Capacity is Holdfast's own data next to the drives' size, not the disk's whole use.
    legend = page.locator("#chart-capacity").locator("xpath=..").locator(".legend")
    expect(legend).to_contain_text("Holdfast data")
    expect(legend).to_contain_text("drive size")


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


TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # the one time format, local time
SIZE = re.compile(r"^\d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB)")


def test_health_view_is_tables_with_damaged_objects_first(page, ui_server):
    from playwright.sync_api import expect

    s3 = ui_server.client()
    bucket = f"dmg-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/lost.bin", Body=b"x" * 100)
    # Marked as the read path marks an object with no good copy (tests/e2e/test_integrity.py
    # covers the marking itself); here only what the page makes of it matters.
    db = sqlite3.connect(ui_server.data_dirs[0] / "index" / "holdfast.db")
    try:
        db.execute("UPDATE objects SET state='corrupt' WHERE bucket=?", (bucket,))
        db.commit()
    finally:
        db.close()

    page.goto(ui_server.endpoint + UI + "#health")
    damaged = page.locator("#damaged")
    deadline = time.monotonic() + 15  # object counts are refreshed every 5 s
    while not damaged.is_visible() and time.monotonic() < deadline:
        time.sleep(1)
        page.reload()
        page.wait_for_selector("#drive-table tbody tr")
    expect(damaged).to_be_visible()
    expect(damaged).to_contain_text(f"{bucket}/dir/lost.bin")
    expect(damaged).to_contain_text("no good copy: restore from backup, or delete it")
    # It comes before the drives.
    assert damaged.bounding_box()["y"] < page.locator("#drive-table").bounding_box()["y"]
    # Its link leads to its folder, where the object is marked, and its panel says what to do.
    page.click(f"#damaged a:text-is('{bucket}/dir/lost.bin')")
    row = page.locator("#object-table tr[data-key='dir/lost.bin']")
    expect(row).to_have_class(re.compile(r"\bdamaged\b"))
    expect(row.locator(".badge.damaged")).to_have_text("damaged")
    row.locator("button.object").click()
    expect(page.locator("#panel-meta tr[data-field=State] td")).to_contain_text(
        "no good copy: restore from backup, or delete it"
    )
    page.goto(ui_server.endpoint + UI + "#health")
    page.wait_for_selector("#drive-table tbody tr")

    drive = page.locator("#drive-table tbody tr")
    expect(drive).to_have_count(1)
    cells = drive.first.locator("td").all_text_contents()
    assert cells[0] == "d0" and cells[2] == "ok"
    assert SIZE.match(cells[3]) and SIZE.match(cells[5]), cells  # used, size: human sizes
    assert re.match(r"^\d+(\.\d)? \w+ \(\d+\.\d%\)$", cells[4]), cells  # free: size and %
    expect(page.locator("#health-updated")).to_have_text(re.compile(TIME.pattern))
    # No JSON dumps: every section is a table of labelled, formatted values.
    assert page.locator("#view-health pre").count() == 0
    capacity = page.locator("[data-section=Capacity] table.kv")
    expect(capacity).to_contain_text("Holdfast data")
    node = page.locator("[data-section=Node] table.kv")
    started = node.locator("tr", has_text="Started").locator("td").text_content()
    assert TIME.fullmatch(started), started
    assert page.locator("#traffic-table tbody tr").count() == 2
    # "Holdfast data" (and the capacity chart's "used") is every copy of every object, from
    # the index's totals: not the filesystem's use, which counts everything on the disk.
    http, _ = _session(ui_server)
    status = http.get(ui_server.endpoint + "/_holdfast/status?format=json").json()
    db = sqlite3.connect(ui_server.data_dirs[0] / "index" / "holdfast.db")
    try:
        (copies,) = db.execute("SELECT sum(stored_bytes) FROM bucket_totals").fetchone()
    finally:
        db.close()
    assert status["capacity"]["data_bytes"] == copies
    # Nothing sticks out of the page.
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def _png() -> bytes:
    """A real PNG: the one inside the node's own favicon.ico (after its 22-byte header)."""
    ico = (Path(__file__).resolve().parents[2] / "holdfast/ops/ui_static/favicon.ico").read_bytes()
    return ico[22:]


def test_object_panel_shows_metadata_previews_and_shares_a_link(page, ui_server):
    from playwright.sync_api import expect

    s3 = ui_server.client()
    bucket = f"panel-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    text = "first line\nsecond line\n" + "x" * 70_000  # longer than the 64 KiB preview
    s3.put_object(
        Bucket=bucket, Key="docs/readme.txt", Body=text.encode(), Metadata={"owner": "ops team"}
    )
    png = _png()
    s3.put_object(Bucket=bucket, Key="docs/icon.png", Body=png, ContentType="image/png")
    head = s3.head_object(Bucket=bucket, Key="docs/readme.txt")

    page.goto(ui_server.endpoint + UI + f"#bucket/{bucket}/docs/")
    page.click("#object-table button.object:text-is('readme.txt')")  # no download: a panel
    meta = page.locator("#panel-meta")
    expect(meta.locator("tr[data-field=ETag] td")).to_have_text(head["ETag"])
    expect(meta.locator("tr[data-field='Content type'] td")).to_have_text(head["ContentType"])
    expect(meta.locator("tr[data-field=Checksum] td")).to_contain_text("CRC")
    expect(meta.locator("tr[data-field='x-amz-meta-owner'] td")).to_have_text("ops team")
    modified = meta.locator("tr[data-field='Last modified'] td").text_content()
    assert TIME.fullmatch(modified), modified
    preview = page.locator("#preview-text")
    expect(preview).to_contain_text("first line\nsecond line")
    assert len(preview.text_content()) == 64 * 1024  # bounded
    expect(page.locator("#panel-preview .hint")).to_contain_text("first 64.0 KiB")

    page.click("#object-table button.object:text-is('icon.png')")
    image = page.locator("#preview-image")
    expect(image).to_be_visible()
    page.wait_for_function("document.getElementById('preview-image').naturalWidth > 0")
    assert page.eval_on_selector("#preview-image", "i => i.naturalWidth") == 32

    # Share: a presigned link with the chosen expiry, which downloads the object as is.
    page.select_option("#share-expiry", "86400")
    expect(page.locator("#share-result")).to_be_hidden()
    page.click("#share-button")
    expect(page.locator("#share-result")).to_be_visible()
    expect(page.locator("#share-url")).not_to_have_value("")
    url = page.input_value("#share-url")
    assert "X-Amz-Expires=86400" in url and "X-Amz-Signature=" in url
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.content == png
    expect(page.locator("#share-copy")).to_be_visible()
    # A link with an expiry out of range is refused by the server, not made.
    http, csrf = _session(ui_server)
    r = http.post(
        ui_server.endpoint + UI + f"api/buckets/{bucket}/share",
        json={"key": "docs/icon.png", "expires": 8 * 86400},
        headers={"X-Holdfast-CSRF": csrf},
    )
    assert r.status_code == 400
    # Odd input is a 400, never a 500: an infinite expiry, a key no UTF-8 can hold.
    for body in ('{"key": "docs/icon.png", "expires": 1e400}', '{"key": "\\ud800"}'):
        r = http.post(
            ui_server.endpoint + UI + f"api/buckets/{bucket}/share",
            data=body,
            headers={"X-Holdfast-CSRF": csrf, "Content-Type": "application/json"},
        )
        assert r.status_code == 400, (body, r.text)
    r = http.post(
        ui_server.endpoint + UI + f"api/buckets/{bucket}/delete",
        data='{"keys": ["\\ud800"]}',
        headers={"X-Holdfast-CSRF": csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text


def test_bulk_delete_search_by_prefix_and_upload_form_reset(page, ui_server, tmp_path):
    from playwright.sync_api import expect

    s3 = ui_server.client()
    bucket, other = (f"bulk-{uuid.uuid4().hex[:10]}" for _ in range(2))
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=other)
    for key in ("apple-1", "apple-2", "apricot", "banana"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"fruit")

    page.goto(ui_server.endpoint + UI + f"#bucket/{bucket}/")
    names = page.locator("#object-table button.object")
    expect(names).to_have_text(["apple-1", "apple-2", "apricot", "banana"])
    page.fill("#object-search", "ap")
    expect(names).to_have_text(["apple-1", "apple-2", "apricot"])
    page.fill("#object-search", "apple")
    expect(names).to_have_text(["apple-1", "apple-2"])
    page.check("#select-all")
    expect(page.locator("#delete-selected")).to_have_text("Delete selected (2)")
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-selected")
    expect(page.locator("#object-table tr.empty")).to_be_visible()
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["apricot", "banana"]

    # A file chosen in one bucket is gone from the form in the next.
    local = tmp_path / "chosen.txt"
    local.write_bytes(b"not for the other bucket")
    page.set_input_files("#upload-file", str(local))
    page.fill("#upload-name", "renamed.txt")
    page.goto(ui_server.endpoint + UI + f"#bucket/{other}/")
    expect(page.locator("#crumbs")).to_contain_text(other)
    assert page.eval_on_selector("#upload-file", "e => e.files.length") == 0
    assert page.input_value("#upload-name") == ""
    assert page.input_value("#object-search") == ""


def test_buckets_show_size_and_count_and_only_their_own(page, ui_server):
    from playwright.sync_api import expect

    from tests.e2e.test_users import add_user

    s3 = ui_server.client()
    bucket = f"sized-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for i, n in enumerate((1024, 2048, 300_000)):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"z" * n)
    page.goto(ui_server.endpoint + UI + "#buckets")
    cells = page.locator(f"#bucket-table tr[data-bucket='{bucket}'] td")
    expect(cells.nth(1)).to_have_text("3")
    expect(cells.nth(2)).to_have_text("296.0 KiB")  # 303,072 bytes
    assert TIME.fullmatch(cells.nth(3).text_content())

    # Another user sees their own buckets' sizes, and nothing of root's.
    name = f"sizes-{uuid.uuid4().hex[:8]}"
    access, secret = add_user(ui_server, name)
    theirs = f"theirs-{uuid.uuid4().hex[:8]}"
    ui_server.client(access, secret).create_bucket(Bucket=theirs)
    ui_server.client(access, secret).put_object(Bucket=theirs, Key="a", Body=b"12345")
    http = requests.Session()
    r = http.post(
        ui_server.endpoint + UI + "api/session",
        json={"access_key": access, "secret_key": secret},
        headers={"Origin": ui_server.endpoint},
    )
    assert r.status_code == 200
    listed = http.get(ui_server.endpoint + UI + "api/buckets").json()["buckets"]
    assert [(b["name"], b["objects"], b["bytes"]) for b in listed] == [(theirs, 1, 5)]


def test_request_log_opens_with_results_and_pages_past_100(page, ui_server):
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    bucket = f"paged-{uuid.uuid4().hex[:10]}"
    # A private bucket: an unsigned request for it is AccessDenied (a missing one would be
    # NoSuchBucket for everyone, since the access decision checks existence first).
    ui_server.client().create_bucket(Bucket=bucket)
    with requests.Session() as anonymous:  # 130 unsigned requests: 403 AccessDenied each
        for _ in range(130):
            assert anonymous.get(f"{ui_server.endpoint}/{bucket}", timeout=10).status_code == 403

    page.goto(ui_server.endpoint + UI + "#buckets")
    page.goto(ui_server.endpoint + UI + "#log")
    # Opening the view shows the last hour at once: no Search press, no script error.
    expect(page.locator("#log-table tbody tr").first).to_be_visible()
    assert errors == []

    http, _ = _session(ui_server)
    deadline = time.monotonic() + 10  # the log is flushed every half second
    while time.monotonic() < deadline:
        found = http.get(
            ui_server.endpoint + "/_holdfast/api/requests",
            params={"bucket": bucket, "since": "1h", "limit": "1000"},
        ).json()["count"]
        if found == 131:  # the CreateBucket and the 130 refusals
            break
        time.sleep(0.3)
    page.fill("#log-bucket", bucket)
    page.click("#log-search")
    rows = page.locator("#log-table tbody tr")
    expect(rows).to_have_count(100)
    expect(page.locator("#log-count")).to_have_text("records 1–100")
    header = page.locator("#log-table thead th").all_text_contents()
    error_col = header.index("Error")
    assert rows.first.locator("td").nth(error_col).text_content() == "AccessDenied"
    first_page = set(
        page.eval_on_selector_all("#log-table tbody tr", "rs => rs.map(r => r.dataset.requestId)")
    )

    page.click("#log-older")
    expect(page.locator("#log-count")).to_have_text("records 101–131 (the last)")
    expect(rows).to_have_count(31)
    second_page = set(
        page.eval_on_selector_all("#log-table tbody tr", "rs => rs.map(r => r.dataset.requestId)")
    )
    assert not first_page & second_page and len(first_page | second_page) == 131
    assert page.is_disabled("#log-older")
    page.click("#log-newer")
    expect(rows).to_have_count(100)
    assert errors == []


def _png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def _luminance(rgb: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", rgb)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_phone_width_has_no_horizontal_overflow_in_light_and_dark(browser, ui_server, tmp_path):
    """Every view at 390 px wide: nothing sticks out sideways (in the DOM and on the full-page
    screenshot, whose width is the page's), and the signed-in name is legible in both modes."""
    s3 = ui_server.client()
    bucket = f"phone-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/" + "very-long-name-" * 8 + ".txt", Body=b"hello")
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(ui_server.endpoint + UI + "#buckets")
        if page.locator("#signin").is_visible():
            sign_in(page, ui_server)
        page.wait_for_selector("#whoami:has-text('root')")
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert (_luminance(background) < 0.1) == (scheme == "dark"), background
            name = page.evaluate("getComputedStyle(document.getElementById('whoami')).color")
            bar = page.evaluate(
                "getComputedStyle(document.querySelector('header')).backgroundColor"
            )
            lighter, darker = sorted((_luminance(name), _luminance(bar)), reverse=True)
            assert (lighter + 0.05) / (darker + 0.05) >= 4.5  # WCAG AA contrast
            for view in ("buckets", f"bucket/{bucket}/a/", "users", "health", "charts", "log"):
                page.goto(ui_server.endpoint + UI + "#" + view)
                page.wait_for_timeout(400)
                if view.startswith("bucket/"):
                    page.click("#object-table button.object")
                    page.wait_for_selector("#panel-meta tr")
                widths = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
                assert widths[0] <= widths[1], (scheme, view, widths)
                shot = page.screenshot(
                    path=str(tmp_path / f"{scheme}-{view.split('/')[0]}.png"), full_page=True
                )
                assert _png_width(shot) == 390, (scheme, view)
    finally:
        page.close()


def test_another_user_sees_own_bucket_sizes_and_no_node_details(browser, ui_server):
    """Last of the browser tests: it signs the shared browser in as another user."""
    from playwright.sync_api import expect

    from tests.e2e.test_users import add_user

    name = f"viewer-{uuid.uuid4().hex[:8]}"
    access, secret = add_user(ui_server, name)
    mine = f"mine-{uuid.uuid4().hex[:8]}"
    ui_server.client(access, secret).create_bucket(Bucket=mine)
    ui_server.client(access, secret).put_object(Bucket=mine, Key="a", Body=b"x" * 2048)
    browser.clear_cookies()
    page = browser.new_page()
    try:
        sign_in(page, ui_server, access, secret)
        expect(page.locator("#whoami")).to_have_text(name)
        rows = page.locator("#bucket-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first.locator("td")).to_have_text([mine, "1", "2.0 KiB", TIME, "Delete"])
        assert page.locator("header nav a[data-view=log]").is_hidden()
        page.goto(ui_server.endpoint + UI + "#health")
        expect(page.locator("#health-sections")).to_have_text(
            "Node details, configuration and totals are shown to root."
        )
        drive = page.locator("#drive-table tbody tr").first.locator("td")
        expect(drive.nth(0)).to_have_text("d0")
        expect(drive.nth(1)).to_have_text("")  # no path
        expect(drive.nth(4)).to_have_text(re.compile(r"^\d+\.\d%$"))
        assert str(ui_server.data_dirs[0]) not in page.content()
    finally:
        page.close()
        browser.clear_cookies()


# -- a browser at the S3 port ------------------------------------------------------------------


def test_browser_at_the_root_goes_to_the_ui_and_gets_an_icon(ui_server):
    base = ui_server.endpoint
    r = requests.get(base + "/", headers={"Accept": "text/html,*/*"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/_holdfast/ui/"
    # An anonymous S3 client (no text/html) still gets S3's XML answer.
    r = requests.get(base + "/", allow_redirects=False)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    # A signed ListBuckets is untouched, whatever Accept says.
    s3 = ui_server.client()
    s3.meta.events.register(
        "before-send.s3.ListBuckets",
        lambda request, **_: request.headers.__setitem__("Accept", "text/html"),
    )
    assert "Buckets" in s3.list_buckets()

    icon = requests.get(base + "/favicon.ico")
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert requests.head(base + "/favicon.ico").status_code == 200
    # A bucket named favicon.ico is still an S3 bucket to a signed client.
    name = "favicon.ico"
    try:
        s3.create_bucket(Bucket=name)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == ["k"]
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    # The start-up message names the UI and the status page.
    assert f"admin UI: {base}/_holdfast/ui/" in ui_server.log()
    assert f"status:   {base}/_holdfast/status" in ui_server.log()


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
