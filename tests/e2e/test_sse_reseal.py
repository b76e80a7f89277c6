"""SSE-S3 data keys are re-sealed under the new master key after a rotation, by a background
job of the server, so the old key can be retired; objects stay readable throughout. On both
index engines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import Server, start_server
from tests.e2e.ops_helpers import status, wait_for


def cli(server, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "holdfast.cli", *args, "--data", str(server.data_dirs[0])]
    if server.index_dsn:
        cmd += ["--index-dsn", server.index_dsn]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def key_ids(server) -> list[str]:
    return sorted(json.loads((server.data_dirs[0] / "master.key").read_text())["keys"])


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


def test_rotation_reseals_data_keys_and_the_old_key_retires(tmp_path, engine):
    server = start_server(tmp_path, index=engine)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="enc")
        s3.put_bucket_versioning(Bucket="enc", VersioningConfiguration={"Status": "Enabled"})
        bodies = {f"k{i}": bytes([i]) * (1000 + i * 70_000) for i in range(5)}
        for key, body in bodies.items():
            s3.put_object(Bucket="enc", Key=key, Body=body, ServerSideEncryption="AES256")
        old_version = s3.put_object(
            Bucket="enc", Key="k0", Body=b"newer", ServerSideEncryption="AES256"
        )
        assert old_version["VersionId"]
        noncurrent = s3.list_object_versions(Bucket="enc", Prefix="k0")["Versions"][-1]
        s3.put_object(Bucket="enc", Key="plain", Body=b"not encrypted")
        upload = s3.create_multipart_upload(Bucket="enc", Key="mp", ServerSideEncryption="AES256")
        part1 = s3.upload_part(
            Bucket="enc", Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 6_000_000
        )
        server.stop()

        rotated = cli(server, "key", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        first = key_ids(server)
        assert len(first) == 2
        # Nothing re-sealed yet: retiring now would strand the objects, so it refuses.
        early = cli(server, "key", "retire")
        assert early.returncode != 0 and "still sealed under an older master key" in early.stderr
        assert key_ids(server) == first

        server.extra_args = ["--sse-reseal-rate", "50"]
        server.start()
        s3 = server.client()
        # Readable while (and after) the job works.
        assert s3.get_object(Bucket="enc", Key="k3")["Body"].read() == bodies["k3"]
        done = wait_for(
            lambda: (
                (st := status(server)["providers"].get("sse_reseal", {})).get("state") == "done"
                and st
            ),
            90,
            "the re-seal pass",
        )
        assert done["resealed"] == 7  # 5 current + 1 noncurrent version + the upload
        for key, body in bodies.items():
            if key != "k0":
                assert s3.get_object(Bucket="enc", Key=key)["Body"].read() == body
        assert s3.get_object(Bucket="enc", Key="k0")["Body"].read() == b"newer"
        old = s3.get_object(Bucket="enc", Key="k0", VersionId=noncurrent["VersionId"])
        assert old["Body"].read() == bodies["k0"]
        server.stop()

        retired = cli(server, "key", "retire")
        assert retired.returncode == 0, retired.stderr
        remaining = key_ids(server)
        assert len(remaining) == 1 and remaining[0] in first

        server.start()  # the old key is gone: everything still opens
        s3 = server.client()
        for key, body in bodies.items():
            if key != "k0":
                assert s3.get_object(Bucket="enc", Key=key)["Body"].read() == body
        assert s3.get_object(Bucket="enc", Key="plain")["Body"].read() == b"not encrypted"
        part2 = s3.upload_part(
            Bucket="enc", Key="mp", UploadId=upload["UploadId"], PartNumber=2, Body=b"q" * 10
        )
        s3.complete_multipart_upload(
            Bucket="enc",
            Key="mp",
            UploadId=upload["UploadId"],
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 1, "ETag": part1["ETag"]},
                    {"PartNumber": 2, "ETag": part2["ETag"]},
                ]
            },
        )
        assert s3.get_object(Bucket="enc", Key="mp")["Body"].read() == b"p" * 6_000_000 + b"q" * 10
        old = s3.get_object(Bucket="enc", Key="k0", VersionId=noncurrent["VersionId"])
        assert old["Body"].read() == bodies["k0"]
    finally:
        server.stop()
