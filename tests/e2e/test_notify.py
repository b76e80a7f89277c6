"""Event notifications end to end: a real local HTTP receiver gets S3 event messages for PUT,
copy, multipart and delete; a configuration naming an unknown target, event or filter gets
S3's error; a receiver that is down (and a node killed with -9 before delivering) loses
nothing; retries back off and dead-letter. On both index engines."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, free_port, start_server
from tests.e2e.ops_helpers import metric_value, metrics_text, status, wait_for

TOKEN = "tok-" + "7" * 24
SECRET = "hmac-" + "5" * 24


class Receiver:
    """A webhook receiver on a fixed port: answers 500 to its first ``fail_first`` calls,
    records every accepted message with its headers; may start later than the test."""

    def __init__(self, port: int | None = None, fail_first: int = 0, status_code: int = 200):
        self.port = port or free_port()
        self.fail_first = fail_first
        self.status_code = status_code
        self.calls = 0
        self.received: list[tuple[dict, dict]] = []
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> Receiver:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with hook.lock:
                    hook.calls += 1
                    ok = hook.calls > hook.fail_first and hook.status_code == 200
                    if ok:
                        hook.received.append((dict(self.headers), json.loads(body)))
                self.send_response(200 if ok else 500)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def records(self) -> list[dict]:
        with self.lock:
            return [r for _, msg in self.received for r in msg["Records"]]

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def cli(server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """This worktree's holdfast CLI against the server's data (and index)."""
    cmd = [sys.executable, "-m", "holdfast.cli", *args, "--data", str(server.data_dirs[0])]
    if server.index_dsn:
        cmd += ["--index-dsn", server.index_dsn]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def secret_file(tmp_path: Path, name: str, value: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    os.chmod(path, mode)
    return str(path)


def add_target(server, tmp_path: Path, name: str, url: str, signed: bool = False) -> str:
    args = ["notify", "target", "add", name, "--url", url, "--json"]
    if signed:
        args += ["--auth-token-file", secret_file(tmp_path, f"{name}.token", TOKEN)]
        args += ["--secret-file", secret_file(tmp_path, f"{name}.secret", SECRET)]
    return json.loads(cli(server, *args).stdout)["arn"]


def configure(s3, bucket: str, arn: str, events=("s3:ObjectCreated:*", "s3:ObjectRemoved:*"), **f):
    rule = {"Id": "r1", "QueueArn": arn, "Events": list(events)}
    if f:
        rule["Filter"] = {"Key": {"FilterRules": [{"Name": k, "Value": v} for k, v in f.items()]}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [rule]}
    )


@pytest.fixture(autouse=True)
def _patient_start(monkeypatch):
    """Servers here are started and restarted mid-test; on a loaded shared machine a start
    takes longer than the harness's default 20 s."""
    start = Server.start
    monkeypatch.setattr(Server, "start", lambda self, timeout=90.0: start(self, timeout))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    if request.param == "postgres":
        request.getfixturevalue("postgres")
    return request.param


FAST = ["--notify-retry-base", "0.2", "--notify-retry-cap", "1"]


def test_events_for_put_copy_multipart_delete(tmp_path, engine):
    receiver = Receiver().start()
    server = start_server(tmp_path, index=engine, extra_args=FAST)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        arn = add_target(server, tmp_path, "hook", receiver.url, signed=True)
        configure(s3, "bkt", arn, prefix="in/", suffix=".txt")
        got = s3.get_bucket_notification_configuration(Bucket="bkt")["QueueConfigurations"]
        assert got[0]["QueueArn"] == arn and got[0]["Id"] == "r1"
        assert sorted(got[0]["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        rules = {r["Name"].lower(): r["Value"] for r in got[0]["Filter"]["Key"]["FilterRules"]}
        assert rules == {"prefix": "in/", "suffix": ".txt"}

        put = s3.put_object(Bucket="bkt", Key="in/a b+c.txt", Body=b"x" * 1000)
        s3.put_object(Bucket="bkt", Key="out/skipped.txt", Body=b"no")  # prefix filtered
        s3.put_object(Bucket="bkt", Key="in/skipped.bin", Body=b"no")  # suffix filtered
        s3.copy_object(
            Bucket="bkt", Key="in/copy.txt", CopySource={"Bucket": "bkt", "Key": "in/a b+c.txt"}
        )
        up = s3.create_multipart_upload(Bucket="bkt", Key="in/mp.txt")
        part = s3.upload_part(
            Bucket="bkt", Key="in/mp.txt", UploadId=up["UploadId"], PartNumber=1, Body=b"m" * 10
        )
        s3.complete_multipart_upload(
            Bucket="bkt",
            Key="in/mp.txt",
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        s3.delete_object(Bucket="bkt", Key="in/a b+c.txt")
        s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "in/copy.txt"}]})

        records = wait_for(
            lambda: len(receiver.records()) >= 5 and receiver.records(), 30, "5 events"
        )
        wait_for(
            lambda: status(server)["providers"]["notifications"].get("queued") == 0,
            30,
            "the delivered events gone from the outbox",
        )
        time.sleep(1)  # nothing else comes (the filtered keys), nothing twice
        records = receiver.records()
        names = [(r["eventName"], r["s3"]["object"]["key"]) for r in records]
        assert names == [
            ("ObjectCreated:Put", "in/a+b%2Bc.txt"),
            ("ObjectCreated:Copy", "in/copy.txt"),
            ("ObjectCreated:CompleteMultipartUpload", "in/mp.txt"),
            ("ObjectRemoved:Delete", "in/a+b%2Bc.txt"),
            ("ObjectRemoved:Delete", "in/copy.txt"),
        ]
        first = records[0]
        assert first["eventVersion"] == "2.1" and first["awsRegion"] == "us-east-1"
        assert first["s3"]["bucket"]["name"] == "bkt"
        assert first["s3"]["configurationId"] == "r1"
        assert first["s3"]["object"]["size"] == 1000
        assert first["s3"]["object"]["eTag"] == put["ETag"].strip('"')
        sequencers = [r["s3"]["object"]["sequencer"] for r in records]
        assert sequencers == sorted(sequencers) and len(set(sequencers)) == 5
        headers, _ = receiver.received[0]
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower["authorization"] == f"Bearer {TOKEN}"
        assert lower["content-type"] == "application/json"
        assert lower["x-holdfast-signature"].startswith("sha256=")
        # No secret in the listing or the server's log.
        listing = cli(server, "notify", "target", "list", "--json").stdout
        assert TOKEN not in listing and SECRET not in listing
        assert json.loads(listing)[0]["auth_token"] is True
        assert TOKEN not in server.log() and SECRET not in server.log()
        text = metrics_text(server)
        assert (
            metric_value(text, "holdfast_notify_delivery_attempts_total", result="delivered") >= 5
        )
    finally:
        server.stop()
        receiver.close()


def test_signature_is_hmac_of_the_body(tmp_path):
    bodies: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            bodies.append((self.headers.get("X-Holdfast-Signature"), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    server = start_server(tmp_path)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        arn = add_target(
            server, tmp_path, "signed", f"http://127.0.0.1:{httpd.server_port}/", signed=True
        )
        configure(s3, "bkt", arn, events=["s3:ObjectCreated:Put"])
        s3.put_object(Bucket="bkt", Key="k", Body=b"1")
        s3.delete_object(Bucket="bkt", Key="k")  # not configured: no event
        wait_for(lambda: bodies, 30, "the event")
        time.sleep(1)
        assert len(bodies) == 1
        sig, body = bodies[0]
        assert sig == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    finally:
        server.stop()
        httpd.shutdown()
        httpd.server_close()


def test_versioned_delete_marker_event(tmp_path):
    receiver = Receiver().start()
    server = start_server(tmp_path)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="ver")
        s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
        arn = add_target(server, tmp_path, "hook", receiver.url)
        configure(s3, "ver", arn, events=["s3:ObjectRemoved:*", "s3:ObjectCreated:Put"])
        put = s3.put_object(Bucket="ver", Key="k", Body=b"v1")
        marker = s3.delete_object(Bucket="ver", Key="k")
        s3.delete_object(Bucket="ver", Key="k", VersionId=put["VersionId"])
        records = wait_for(lambda: len(receiver.records()) >= 3 and receiver.records(), 30, "3")
        assert [r["eventName"] for r in records] == [
            "ObjectCreated:Put",
            "ObjectRemoved:DeleteMarkerCreated",
            "ObjectRemoved:Delete",
        ]
        assert records[0]["s3"]["object"]["versionId"] == put["VersionId"]
        assert records[1]["s3"]["object"]["versionId"] == marker["VersionId"]
        assert records[2]["s3"]["object"]["versionId"] == put["VersionId"]
    finally:
        server.stop()
        receiver.close()


def signed_put(server, path: str, body: bytes):
    import requests
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.conftest import ROOT_AK, ROOT_SK

    url = server.endpoint + path
    req = AWSRequest(method="PUT", url=url, data=body)
    S3SigV4Auth(Credentials(ROOT_AK, ROOT_SK), "s3", "us-east-1").add_auth(req)
    return requests.put(url, data=body, headers=dict(req.headers), timeout=30)


def _error(call) -> tuple[str, dict]:
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]


def test_bad_configurations_get_s3_errors_and_change_nothing(tmp_path, engine):
    server = start_server(tmp_path, index=engine)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        arn = add_target(server, tmp_path, "hook", "http://127.0.0.1:9/x")
        configure(s3, "bkt", arn, prefix="a/")
        before = s3.get_bucket_notification_configuration(Bucket="bkt")["QueueConfigurations"]

        def put(rules):
            return lambda: s3.put_bucket_notification_configuration(
                Bucket="bkt", NotificationConfiguration={"QueueConfigurations": rules}
            )

        unknown = "arn:holdfast:sqs:us-east-1:nope:webhook"
        code, err = _error(put([{"QueueArn": unknown, "Events": ["s3:ObjectCreated:*"]}]))
        assert code == "InvalidArgument"
        assert err["Message"] == "Unable to validate the following destination configurations"
        code, _ = _error(put([{"QueueArn": arn, "Events": ["s3:ObjectCreated:Nope"]}]))
        assert code == "InvalidArgument"
        code, _ = _error(put([{"QueueArn": "not-an-arn", "Events": ["s3:ObjectCreated:*"]}]))
        assert code == "InvalidArgument"
        overlapping = [
            {"Id": "a", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]},
            {"Id": "b", "QueueArn": arn, "Events": ["s3:ObjectCreated:Put"]},
        ]
        code, _ = _error(put(overlapping))
        assert code == "InvalidArgument"
        twice = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "a"}] * 2}}
        code, _ = _error(
            put([{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": twice}])
        )
        assert code == "InvalidArgument"
        code, _ = _error(
            lambda: s3.put_bucket_notification_configuration(
                Bucket="missing", NotificationConfiguration={}
            )
        )
        assert code == "NoSuchBucket"
        r = signed_put(server, "/bkt?notification", b"<NotificationConfiguration><Bad")
        assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
        after = s3.get_bucket_notification_configuration(Bucket="bkt")["QueueConfigurations"]
        assert after == before
        # Non-overlapping rules for one target are fine; an empty configuration removes all.
        fine = [
            {
                "Id": "a",
                "QueueArn": arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "x/"}]}},
            },
            {
                "Id": "b",
                "QueueArn": arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "y/"}]}},
            },
        ]
        put(fine)()
        assert (
            len(s3.get_bucket_notification_configuration(Bucket="bkt")["QueueConfigurations"]) == 2
        )
        s3.put_bucket_notification_configuration(Bucket="bkt", NotificationConfiguration={})
        assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket="bkt")
    finally:
        server.stop()


def test_target_files_must_be_private_and_names_checked(tmp_path):
    server = start_server(tmp_path)
    try:
        loose = secret_file(tmp_path, "loose", TOKEN, mode=0o644)
        done = cli(
            server,
            "notify",
            "target",
            "add",
            "t",
            "--url",
            "http://127.0.0.1:9/",
            "--auth-token-file",
            loose,
            check=False,
        )
        assert done.returncode != 0 and "chmod 600" in done.stderr and TOKEN not in done.stderr
        done = cli(server, "notify", "target", "add", "bad name", "--url", "http://x/", check=False)
        assert done.returncode != 0
        done = cli(server, "notify", "target", "add", "t", "--url", "ftp://x/", check=False)
        assert done.returncode != 0
        assert json.loads(cli(server, "notify", "target", "list", "--json").stdout) == []
    finally:
        server.stop()


def test_receiver_down_then_up_and_kill9_loses_nothing(tmp_path, engine):
    """Events committed while the receiver is down are retried with backoff; a node killed
    with -9 before delivering them delivers them after its restart, in order."""
    receiver = Receiver()  # not listening yet: connection refused
    # Many attempts: a slow restart on a loaded machine must not dead-letter the head.
    server = start_server(
        tmp_path, index=engine, extra_args=[*FAST, "--notify-max-attempts", "1000"]
    )
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        arn = add_target(server, tmp_path, "hook", receiver.url)
        configure(s3, "bkt", arn)
        keys = [f"k{i:02d}" for i in range(6)]
        for k in keys[:3]:
            s3.put_object(Bucket="bkt", Key=k, Body=b"1")

        def failing():
            st = status(server)["providers"].get("notifications", {})
            return st.get("failed", 0) >= 2 and st.get("queued") == 3 and st

        st = wait_for(failing, 30, "failed attempts on the queued events")
        assert "127.0.0.1" in st["last_error"]
        server.kill9()
        server.start()
        s3 = server.client()
        for k in keys[3:]:
            s3.put_object(Bucket="bkt", Key=k, Body=b"1")
        queued = json.loads(cli(server, "notify", "status", "--json").stdout)
        assert queued["targets"]["hook"]["pending"]["rows"] == 6
        receiver.start()
        wait_for(lambda: len(receiver.records()) >= 6, 60, "all events after the restart")
        got = [r["s3"]["object"]["key"] for r in receiver.records()]
        assert got[: len(keys)] == keys  # in order; at least once (no duplicates needed here)
        wait_for(
            lambda: status(server)["providers"].get("notifications", {}).get("queued") == 0,
            30,
            "an empty outbox",
        )
    finally:
        server.stop()
        receiver.close()


def test_failing_receiver_is_retried_then_dead_lettered_then_retried(tmp_path):
    receiver = Receiver(fail_first=2).start()
    server = start_server(tmp_path, extra_args=[*FAST, "--notify-max-attempts", "3"])
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        arn = add_target(server, tmp_path, "hook", receiver.url)
        configure(s3, "bkt", arn)
        s3.put_object(Bucket="bkt", Key="first", Body=b"1")
        wait_for(lambda: receiver.records(), 30, "delivery after two failures")
        assert receiver.calls == 3
        receiver.status_code = 500  # now it always fails
        s3.put_object(Bucket="bkt", Key="second", Body=b"1")

        def dead():
            return json.loads(cli(server, "notify", "status", "--json").stdout)["dead_examples"]

        examples = wait_for(dead, 30, "a dead-lettered event")
        assert examples[0]["key"] == "second" and examples[0]["attempts"] == 3
        problems = wait_for(
            lambda: [p for p in status(server)["problems"] if "dead-lettered" in p["what"]],
            15,
            "the status problem",
        )
        assert problems
        calls = receiver.calls
        time.sleep(2)
        assert receiver.calls == calls  # a dead event is not tried again by itself
        receiver.status_code = 200
        assert "1 dead event(s) queued again" in cli(server, "notify", "retry").stdout
        wait_for(lambda: len(receiver.records()) == 2, 30, "the retried event")
        assert receiver.records()[1]["s3"]["object"]["key"] == "second"
    finally:
        server.stop()
        receiver.close()


def test_post_upload_event(tmp_path):
    """A browser-form POST (boto3's presigned POST) is s3:ObjectCreated:Post."""
    import requests

    receiver = Receiver().start()
    server = start_server(tmp_path)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        arn = add_target(server, tmp_path, "hook", receiver.url)
        configure(s3, "bkt", arn, events=["s3:ObjectCreated:Post"])
        post = s3.generate_presigned_post("bkt", "form/upload.txt", ExpiresIn=600)
        r = requests.post(
            post["url"], data=post["fields"], files={"file": ("f", b"posted")}, timeout=30
        )
        assert r.status_code in (200, 204), r.text
        s3.put_object(Bucket="bkt", Key="form/put.txt", Body=b"x")  # a Put: not configured
        records = wait_for(receiver.records, 30, "the POST event")
        time.sleep(1)
        assert [(r["eventName"], r["s3"]["object"]["key"]) for r in receiver.records()] == [
            ("ObjectCreated:Post", "form/upload.txt")
        ]
        assert records[0]["s3"]["object"]["size"] == 6
    finally:
        server.stop()
        receiver.close()
