"""Metrics summed over worker processes, the request log (records, search, rotation, no
secrets), the time-series API, and users managed through the admin API and the CLI."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
import requests
from botocore.exceptions import ClientError

from holdfast.ops.requestlog import MIN_SEGMENT_BYTES, SEGMENTS_PER_CAP
from tests.conftest import ROOT_AK, ROOT_SK, start_server
from tests.e2e.ops_helpers import (
    api,
    holdfast,
    metric_value,
    metrics_text,
    status_headers,
    wait_for,
)

PUTS = 30


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("ops-metrics"), workers=2)
    yield server
    server.stop()


def log_files(node) -> list:
    return sorted((node.data_dirs[0] / "ops" / "requestlog").glob("requests-*.jsonl"))


def test_metrics_are_node_wide_across_workers(node):
    bucket = "metrics-bucket"
    node.client().create_bucket(Bucket=bucket)
    for i in range(PUTS):
        # A new client (and connection) each time, so the requests spread over both workers.
        node.client().put_object(Bucket=bucket, Key=f"k{i}", Body=b"m" * 1000)
    node.client().get_object(Bucket=bucket, Key="k0")["Body"].read()

    def scrape() -> str:
        # Connection: close lands scrapes on different workers; each must see every request.
        return requests.get(
            f"{node.endpoint}/_holdfast/metrics",
            headers={"Connection": "close", **status_headers(node, "/_holdfast/metrics")},
            timeout=5,
        ).text

    def counted(text: str) -> bool:
        return (
            metric_value(text, "holdfast_s3_requests_total", operation="PutObject") == PUTS
            and metric_value(text, "holdfast_s3_sent_bytes_total", operation="GetObject") == 1000
        )

    # Counting happens in each worker's background batch, so wait for the last request too.
    wait_for(lambda: counted(scrape()), 10, "the puts and the get to be counted")
    pids = set()
    for _ in range(8):
        text = scrape()
        assert (
            metric_value(text, "holdfast_s3_requests_total", operation="PutObject", status="200")
            == PUTS
        )
        assert metric_value(text, "holdfast_s3_received_bytes_total", operation="PutObject") == (
            PUTS * 1000
        )
        assert metric_value(text, "holdfast_s3_sent_bytes_total", operation="GetObject") == 1000
        assert (
            metric_value(text, "holdfast_s3_request_duration_seconds_count", operation="PutObject")
            == PUTS
        )
        for line in text.splitlines():
            if line.startswith("holdfast_process_cpu_seconds_total{") and 'role="worker"' in line:
                pids.add(line.split('pid="')[1].split('"')[0])
    assert len(pids) == 2, "both workers' processes are reported"
    # The committer starts a second after the workers; it is listed as what it is.
    wait_for(lambda: 'role="committer"' in scrape(), 10, "the index committer to be listed")
    for name in (
        "holdfast_drive_capacity_bytes",
        "holdfast_drive_free_bytes",
        "holdfast_checksum_failures_total",
        "holdfast_process_resident_memory_bytes",
        "holdfast_node_load1",
        "holdfast_alerts_pending",
        "holdfast_index_up",
        "holdfast_background_backoff_seconds",
    ):
        assert name in text, name


def test_presigned_cache_hits_and_misses_are_counted(node):
    """The benchmark reports the presigned-URL cache's hit rate next to each GET figure
    (issue 16): a repeated presigned GET is a hit, its first use a miss, and a request signed
    in the Authorization header (as SDKs sign) is never looked up."""
    bucket = "presign-cache-metrics"
    client = node.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"p" * 100)

    def lookups() -> tuple[float, float]:
        text = metrics_text(node)
        return (
            metric_value(text, "holdfast_presigned_cache_lookups_total", result="hit"),
            metric_value(text, "holdfast_presigned_cache_lookups_total", result="miss"),
        )

    hits0, misses0 = lookups()
    client.get_object(Bucket=bucket, Key="k")["Body"].read()  # header-signed: not looked up
    sigv4 = node.client(signature_version="s3v4")  # the cache holds SigV4 URLs only
    url = sigv4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    with requests.Session() as session:  # one connection: one worker, one cache
        for _ in range(3):
            assert session.get(url, timeout=10).content == b"p" * 100
    wait_for(lambda: lookups() == (hits0 + 2, misses0 + 1), 10, "one miss, then two hits counted")


def test_request_log_records_and_search(node):
    s3 = node.client()
    bucket = "log-bucket"
    s3.create_bucket(Bucket=bucket)
    put = s3.put_object(Bucket=bucket, Key="docs/report.txt", Body=b"r" * 2048)
    request_id = put["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="docs/missing.txt")
    bad = node.client(ROOT_AK, "not-the-secret", retries={"max_attempts": 1})
    with pytest.raises(ClientError):
        bad.list_objects_v2(Bucket=bucket)

    def find(**params):
        r = api(node, "GET", "/_holdfast/api/requests?" + urlencode(params))
        assert r.status_code == 200, r.text
        return r.json()["records"]

    records = wait_for(lambda: find(request_id=request_id), 10, "the PUT to be logged")
    (rec,) = records
    assert rec["operation"] == "PutObject" and rec["status"] == 200
    assert rec["bucket"] == bucket and rec["key"] == "docs/report.txt"
    assert rec["access_key"] == ROOT_AK and rec["user"] == "root"
    assert (
        rec["bytes_in"] >= 2048 and rec["latency_ms"] > 0 and rec["remote"].startswith("127.0.0.1:")
    )
    assert rec["time"].endswith("Z")
    missing = wait_for(lambda: find(bucket=bucket, status="404"), 10, "the 404")
    assert missing[0]["error_code"] == "NoSuchKey" and missing[0]["key"] == "docs/missing.txt"
    denied = wait_for(
        lambda: find(bucket=bucket, status="4xx", operation="ListObjectsV2"), 10, "403"
    )
    assert denied[0]["error_code"] == "SignatureDoesNotMatch"
    assert denied[0]["access_key"] == ROOT_AK  # the key claimed, so an operator can find it
    assert len(find(bucket=bucket, key="docs/")) == 2
    assert find(bucket=bucket, key="docs/", since="1m") and not find(bucket=bucket, until="1h")

    cli = holdfast(
        "log", "search", "--data", str(node.data_dirs[0]), "--request-id", request_id, "--json"
    )
    assert cli.returncode == 0, cli.stderr
    assert [r["request_id"] for r in json.loads(cli.stdout)] == [request_id]
    table = holdfast(
        "log", "search", "--data", str(node.data_dirs[0]), "--bucket", bucket, "--status", "404"
    )
    assert table.returncode == 0 and "NoSuchKey" in table.stdout and "REQUEST ID" in table.stdout
    none = holdfast("log", "search", "--data", str(node.data_dirs[0]), "--bucket", "no-such-bucket")
    assert none.returncode == 1
    bad_time = holdfast(
        "log", "search", "--data", str(node.data_dirs[0]), "--since", "yesterday-ish"
    )
    assert bad_time.returncode == 2 and "cannot read time" in bad_time.stderr


def test_request_log_never_holds_secrets_or_signatures(node):
    s3 = node.client(signature_version="s3v4")
    bucket = "secret-bucket"
    s3.create_bucket(Bucket=bucket)
    signatures: list[str] = []

    def grab(request, **_):
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        if "Signature=" in auth:
            signatures.append(auth.rsplit("Signature=", 1)[1])

    s3.meta.events.register("before-send.s3.*", grab)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert requests.get(url, timeout=5).status_code == 200
    signatures.append(url.split("X-Amz-Signature=")[1].split("&")[0])
    assert signatures and all(len(s) == 64 for s in signatures)
    wait_for(lambda: any(bucket in f.read_text() for f in log_files(node)), 10, "records")
    time.sleep(0.6)  # one more flush
    text = "".join(f.read_text() for f in log_files(node))
    assert ROOT_SK not in text and "not-the-secret" not in text
    for sig in signatures:
        assert sig not in text
    assert "X-Amz-Signature" not in text and "Signature=" not in text


def test_timeseries_api_for_charts(node):
    node.client().list_buckets()

    def sampled():
        r = api(node, "GET", "/_holdfast/api/timeseries?range=15m")
        assert r.status_code == 200, r.text
        doc = r.json()
        return doc if sum(p["requests"] or 0 for p in doc["points"]) > 0 else None

    doc = wait_for(sampled, 15, "a time-series sample")
    assert doc["tier"] == "10s" and doc["step_seconds"] == 10 and len(doc["points"]) == 90
    point = next(p for p in doc["points"] if p["requests"])
    assert point["latency_ms"]["p99"] is not None and point["capacity_total"] > 0
    hour = api(node, "GET", "/_holdfast/api/timeseries?range=1h").json()
    day = api(node, "GET", "/_holdfast/api/timeseries?range=1d").json()
    assert (len(hour["points"]), hour["step_seconds"]) == (60, 60)
    assert (len(day["points"]), day["step_seconds"]) == (288, 300)
    assert api(node, "GET", "/_holdfast/api/timeseries?range=1y").status_code == 400
    unsigned = requests.get(f"{node.endpoint}/_holdfast/api/timeseries", timeout=5)
    assert unsigned.status_code == 401


def test_users_via_api_and_cli(node):
    created = api(node, "POST", "/_holdfast/api/users", {"name": "carol"})
    assert created.status_code == 201, created.text
    carol = created.json()
    client = node.client(carol["access_key"], carol["secret_key"], retries={"max_attempts": 1})
    client.list_buckets()
    listed = api(node, "GET", "/_holdfast/api/users").json()["users"]
    assert {"root", "carol"} <= {u["name"] for u in listed}
    assert all("secret_key" not in u for u in listed)
    assert api(node, "POST", "/_holdfast/api/users", {"name": "carol"}).status_code == 409
    assert api(node, "POST", "/_holdfast/api/users/carol/disable").status_code == 200

    def refused():
        try:
            client.list_buckets()
        except ClientError as e:
            return e.response["Error"]["Code"] == "InvalidAccessKeyId"
        return False

    wait_for(refused, 5, "the disabled key to be refused")
    not_root = api(
        node, "GET", "/_holdfast/api/users", keys=(carol["access_key"], carol["secret_key"])
    )
    assert not_root.status_code == 403

    data = str(node.data_dirs[0])
    added = holdfast("user", "add", "dave", "--data", data)
    assert added.returncode == 0
    lst = holdfast("user", "list", "--data", data, "--json")
    listed = json.loads(lst.stdout)
    assert listed[0]["name"] == "root"  # root comes first, marked as such (issue 18)
    assert {u["name"]: u["disabled"] for u in listed[1:]} == {
        "carol": True,
        "dave": False,
    }
    assert holdfast("user", "enable", "carol", "--data", data).returncode == 0
    assert holdfast("user", "disable", "dave", "--data", data).returncode == 0
    assert holdfast("user", "disable", "nobody", "--data", data).returncode == 1
    assert holdfast("user", "remove", "root", "--data", data).returncode == 2
    wait_for(lambda: not refused(), 5, "the enabled key to work again")
    client.create_bucket(Bucket="carols-bucket")
    owns = holdfast("user", "remove", "carol", "--data", data)
    assert owns.returncode == 1 and "carols-bucket" in owns.stderr
    client.delete_bucket(Bucket="carols-bucket")
    assert api(node, "DELETE", "/_holdfast/api/users/carol").status_code == 200
    removed = holdfast("user", "remove", "dave", "--data", data, "--json")
    assert json.loads(removed.stdout) == {"name": "dave", "result": "removed"}
    assert api(node, "DELETE", "/_holdfast/api/users/carol").status_code == 404


def test_request_log_rotation_caps_size(tmp_path):
    cap = 256 * 1024
    server = start_server(tmp_path, workers=1, extra_args=["--request-log-max-bytes", str(cap)])
    try:
        session = requests.Session()
        url = server.client().generate_presigned_url("list_buckets", Params={}, ExpiresIn=600)
        for _ in range(1500):  # about 600 KiB of records
            session.get(url, timeout=5)
        time.sleep(1.0)
        files = log_files(server)
        total = sum(f.stat().st_size for f in files)
        assert len(files) > 1
        # The cap holds to within the one segment each live worker is still writing.
        segment = max(MIN_SEGMENT_BYTES, cap // SEGMENTS_PER_CAP)
        assert total <= cap + segment, (total, len(files))
    finally:
        server.stop()
