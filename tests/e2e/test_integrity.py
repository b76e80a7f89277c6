"""Invariant 2: never serve a corrupted byte.

Bytes are flipped on disk (in a blob file, and in an inline object's index row) behind the
server's back. A GET must then fail rather than complete: the response is cut short, never
finished with wrong bytes, and the object is marked corrupt. Blocks that are intact stay
readable with a range request.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import requests
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import start_server

MIB = 1024 * 1024


@pytest.fixture
def node(tmp_path):
    server = start_server(tmp_path, index="sqlite")  # the tests edit its rows directly
    yield server
    server.stop()


def _blob_file(server) -> Path:
    files = [p for p in (server.data_dirs[0] / "drive" / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1
    return files[0]


def _state(server, bucket: str, key: str) -> str:
    db = sqlite3.connect(server.data_dirs[0] / "index" / "holdfast.db")
    try:
        return db.execute(
            "SELECT state FROM objects WHERE bucket=? AND key=?", (bucket, key)
        ).fetchone()[0]
    finally:
        db.close()


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))
        f.flush()
        os.fsync(f.fileno())


def test_flipped_bit_in_blob_aborts_get_and_marks_object(node):
    s3 = node.client(retries={"max_attempts": 1}, signature_version="s3v4")
    s3.create_bucket(Bucket="rot")
    body = os.urandom(3 * MIB)
    s3.put_object(Bucket="rot", Key="obj", Body=body)
    _flip(_blob_file(node), 2 * MIB + 12345)  # inside the third 1 MiB block

    # The first block is intact and still verifiable on its own.
    first = s3.get_object(Bucket="rot", Key="obj", Range=f"bytes=0-{MIB - 1}")["Body"].read()
    assert first == body[:MIB]

    # A whole GET cannot complete: the connection is cut before the corrupt block.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "rot", "Key": "obj"})
    received = b""
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        requests.get(url, stream=True, timeout=10) as r,
    ):
        assert r.status_code == 200
        for chunk in r.iter_content(64 * 1024):
            received += chunk
    assert len(received) < len(body)
    assert body.startswith(received), "a byte that was served differs from what was stored"

    try:
        data = s3.get_object(Bucket="rot", Key="obj")["Body"].read()
    except (BotoCoreError, ClientError):
        data = None
    assert data is None, "boto3 received a complete body from a corrupt object"
    assert _state(node, "rot", "obj") == "corrupt"


def test_flipped_bit_in_inline_object_is_detected(node):
    s3 = node.client(retries={"max_attempts": 1}, signature_version="s3v4")
    s3.create_bucket(Bucket="rot2")
    s3.put_object(Bucket="rot2", Key="small", Body=b"small object " * 100)
    db = sqlite3.connect(node.data_dirs[0] / "index" / "holdfast.db")
    try:
        (data,) = db.execute(
            "SELECT inline FROM objects WHERE bucket='rot2' AND key='small'"
        ).fetchone()
        assert data is not None, "small objects are expected inline"
        damaged = bytes([data[0] ^ 0x40]) + data[1:]
        db.execute("UPDATE objects SET inline=? WHERE bucket='rot2' AND key='small'", (damaged,))
        db.commit()
    finally:
        db.close()
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "rot2", "Key": "small"})
    with pytest.raises(requests.exceptions.RequestException):
        r = requests.get(url, timeout=10)
        assert r.content != damaged
        r.raise_for_status()
    assert _state(node, "rot2", "small") == "corrupt"
