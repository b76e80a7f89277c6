"""Real command-line clients, unmodified: the AWS CLI (v1, from PyPI) and s3cmd, over HTTP
and HTTPS."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT_AK, ROOT_SK, Server, unique

BIN = Path(sys.executable).parent
AWS = BIN / "aws"
S3CMD = BIN / "s3cmd"
MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    not (AWS.exists() and S3CMD.exists()), reason="aws and s3cmd are installed with the test extras"
)


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def multipart_etag(data: bytes, part_size: int) -> str:
    md5s = b"".join(
        hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    )
    count = (len(data) + part_size - 1) // part_size
    return f'"{hashlib.md5(md5s).hexdigest()}-{count}"'


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"{cmd}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


# --- AWS CLI ---------------------------------------------------------------------------------


class AwsCli:
    def __init__(self, server: Server, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.home = home
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "AWS_ACCESS_KEY_ID": ROOT_AK,
            "AWS_SECRET_ACCESS_KEY": ROOT_SK,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }

    def __call__(self, *args: str | Path) -> str:
        tls = ["--ca-bundle", self.server.ca_path] if self.server.tls else []
        cmd = [AWS, "--endpoint-url", self.server.endpoint, *tls, *args]
        return run(cmd, self.env, self.home)


def test_aws_cli(server, s3, tmp_path):
    aws = AwsCli(server, tmp_path / "home")
    bucket = unique("cli")

    out = aws("s3", "mb", f"s3://{bucket}")
    assert f"make_bucket: {bucket}" in out
    assert bucket in aws("s3", "ls").split()

    # A 20 MiB file goes up in 8 MiB parts (the CLI's default chunk size).
    big = tmp_path / "big.bin"
    data = write_random(big, 20 * MiB)
    out = aws("s3", "cp", big, f"s3://{bucket}/big/big.bin")
    assert "upload:" in out
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "big/big.bin"))
    assert re.fullmatch(r'"[0-9a-f]{32}-3"', head["ETag"]), head["ETag"]
    assert head["ETag"] == multipart_etag(data, 8 * MiB)
    assert head["ContentLength"] == len(data)
    got = s3.get_object(Bucket=bucket, Key="big/big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    # sync twice: the second finds nothing to do.
    tree = tmp_path / "tree"
    files = {
        "a.txt": 100,
        "empty": 0,
        "dir/empty2": 0,
        "dir/b.bin": 70_000,
        "dir/sub/c.bin": 3 * MiB,
        "odd name +&=.txt": 10,
    }
    contents = {name: write_random(tree / name, size) for name, size in files.items()}
    started = time.monotonic()
    out = aws("s3", "sync", tree, f"s3://{bucket}/tree")
    assert out.count("upload:") == len(files), out
    # Empty files once stalled the CLI for the 30 s keep-alive timeout each: the server
    # answered Expect: 100-continue with a final status, which the CLI's botocore misparses
    # on the connection's next request.
    assert time.monotonic() - started < 20
    out = aws("s3", "sync", tree, f"s3://{bucket}/tree")
    assert "upload:" not in out, out
    assert out.strip() == ""

    listed = aws("s3", "ls", "--recursive", f"s3://{bucket}/tree/")
    for name, size in files.items():
        assert re.search(rf"\s{size}\s+tree/{re.escape(name)}$", listed, re.M), (name, listed)
    for name, body in contents.items():
        assert s3.get_object(Bucket=bucket, Key=f"tree/{name}")["Body"].read() == body

    # A changed file is the only one the next sync uploads.
    contents["a.txt"] = write_random(tree / "a.txt", 101)
    out = aws("s3", "sync", tree, f"s3://{bucket}/tree")
    assert out.count("upload:") == 1 and "a.txt" in out, out

    # ...and a download brings back what was uploaded.
    down = tmp_path / "down"
    aws("s3", "cp", "--recursive", f"s3://{bucket}/tree", down)
    for name, body in contents.items():
        assert (down / name).read_bytes() == body

    out = aws("s3", "rm", "--recursive", f"s3://{bucket}/")
    assert out.count("delete:") == len(files) + 1, out
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    aws("s3", "rb", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_aws_cli_errors_are_reported(server, tmp_path):
    """A missing bucket or key fails the command with the S3 error, not a crash."""
    aws = AwsCli(server, tmp_path / "home")
    tls = ["--ca-bundle", server.ca_path] if server.tls else []
    cmd = [AWS, "--endpoint-url", server.endpoint, *tls, "s3api", "head-bucket"]
    proc = subprocess.run(
        [str(c) for c in [*cmd, "--bucket", unique("missing")]],
        env=aws.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "404" in proc.stderr or "Not Found" in proc.stderr, proc.stderr


# --- s3cmd -----------------------------------------------------------------------------------


class S3cmd:
    def __init__(self, server: Server, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.config = home / "s3cfg"
        lines = [
            "[default]",
            f"access_key = {ROOT_AK}",
            f"secret_key = {ROOT_SK}",
            f"host_base = 127.0.0.1:{server.port}",
            f"host_bucket = 127.0.0.1:{server.port}",
            f"use_https = {'True' if server.tls else 'False'}",
            "signature_v2 = False",
            "bucket_location = us-east-1",
            "check_ssl_certificate = True",
            f"ca_certs_file = {server.ca_path or ''}",
            "progress_meter = False",
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}

    def __call__(self, *args: str | Path) -> str:
        return run([S3CMD, "-c", self.config, *args], self.env, self.home)


def test_s3cmd(server, s3, tmp_path):
    s3cmd = S3cmd(server, tmp_path / "home")
    bucket = unique("s3cmd")

    assert f"s3://{bucket}/" in s3cmd("mb", f"s3://{bucket}")
    assert f"s3://{bucket}" in s3cmd("ls")

    small = tmp_path / "small.txt"
    small_data = write_random(small, 12_345)
    s3cmd("put", small, f"s3://{bucket}/dir/small.txt")
    listed = s3cmd("ls", f"s3://{bucket}/dir/")
    assert f"s3://{bucket}/dir/small.txt" in listed
    assert "12345" in listed

    got = tmp_path / "small.back"
    s3cmd("get", f"s3://{bucket}/dir/small.txt", got)
    assert got.read_bytes() == small_data

    # 12 MiB in 5 MiB parts: 5 + 5 + 2.
    big = tmp_path / "big.bin"
    big_data = write_random(big, 12 * MiB)
    s3cmd("put", "--multipart-chunk-size-mb=5", big, f"s3://{bucket}/big.bin")
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"] == multipart_etag(big_data, 5 * MiB)
    assert head["ETag"].endswith('-3"')
    big_back = tmp_path / "big.back"
    s3cmd("get", f"s3://{bucket}/big.bin", big_back)
    assert hashlib.md5(big_back.read_bytes()).digest() == hashlib.md5(big_data).digest()
    assert "big.bin" in s3cmd("ls", f"s3://{bucket}")

    s3cmd("del", f"s3://{bucket}/dir/small.txt")
    s3cmd("del", f"s3://{bucket}/big.bin")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert s3cmd("ls", f"s3://{bucket}").strip() == ""
    s3cmd("rb", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_s3cmd_info(server, s3, tmp_path):
    """`s3cmd info` reads every bucket configuration and the ACL; a 501 or an ACL without a
    typed Grantee made it fail."""
    s3cmd = S3cmd(server, tmp_path / "home")
    bucket = unique("info")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/f.txt", Body=b"hello", ContentType="text/plain")

    out = s3cmd("info", f"s3://{bucket}")
    lines = dict(line.strip().split(":", 1) for line in out.splitlines()[1:] if ":" in line)
    assert out.splitlines()[0] == f"s3://{bucket}/ (bucket):"
    assert lines["Location"].strip() == "us-east-1"
    assert lines["Payer"].strip() == "BucketOwner"
    assert lines["Policy"].strip() == "none"
    assert lines["CORS"].strip() == "none"
    assert lines["ACL"].strip() == "root: FULL_CONTROL"
    assert "Expiration rule: none" in out

    out = s3cmd("info", f"s3://{bucket}/dir/f.txt")
    lines = dict(line.strip().split(":", 1) for line in out.splitlines()[1:] if ":" in line)
    assert out.splitlines()[0] == f"s3://{bucket}/dir/f.txt (object):"
    assert lines["File size"].strip() == "5"
    assert lines["MIME type"].strip() == "text/plain"
    assert lines["MD5 sum"].strip() == hashlib.md5(b"hello").hexdigest()
    assert lines["ACL"].strip() == "root: FULL_CONTROL"


def test_aws_cli_bucket_configuration_errors(http_server, tmp_path):
    """`aws s3api get-bucket-*` on a plain bucket: each configuration's own error code (the
    boto3 tests cover every one over HTTP and HTTPS; the CLI shares botocore, so a few over
    HTTP show the commands work, and keep this test short)."""
    server = http_server
    s3 = server.client()
    aws = AwsCli(server, tmp_path / "home")
    bucket = unique("cfg")
    s3.create_bucket(Bucket=bucket)
    tls = ["--ca-bundle", server.ca_path] if server.tls else []
    expected = {
        "get-bucket-policy": "NoSuchBucketPolicy",
        "get-bucket-cors": "NoSuchCORSConfiguration",
        "get-bucket-lifecycle-configuration": "NoSuchLifecycleConfiguration",
        "get-object-lock-configuration": "ObjectLockConfigurationNotFoundError",
    }
    for command, code in expected.items():
        proc = subprocess.run(
            [
                str(AWS),
                "--endpoint-url",
                server.endpoint,
                *tls,
                "s3api",
                command,
                "--bucket",
                bucket,
            ],
            env=aws.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0, command
        assert f"An error occurred ({code}) when calling" in proc.stderr, (command, proc.stderr)
    payer = json.loads(aws("s3api", "get-bucket-request-payment", "--bucket", bucket))
    assert payer == {"Payer": "BucketOwner"}
    attrs = json.loads(
        aws("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", __file__)
    )
    got = json.loads(
        aws(
            "s3api", "get-object-attributes", "--bucket", bucket, "--key", "k",
            "--object-attributes", "ETag", "ObjectSize",
        )
    )  # fmt: skip
    assert got["ETag"] == attrs["ETag"].strip('"')
    assert got["ObjectSize"] == Path(__file__).stat().st_size
