"""Encrypted objects (SSE-S3) under bit rot: the stored ciphertext blocks carry their own
CRC32Cs, so GETs fail over block by block mid-stream, ranged GETs too, and the scrubber and
repair find and fix damaged copies without any key; fsck is clean afterwards."""

from __future__ import annotations

import hashlib
import os

from tests.conftest import start_server
from tests.faults.support import MIB, flip, status, wait_for
from tests.faults.test_bitrot import FLAGS, _copies, _fsck_clean, _settled


def test_encrypted_blocks_fail_over_and_are_repaired(tmp_path):
    server = start_server(tmp_path, drives=2, extra_args=FLAGS)
    try:
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="rot")
        bodies = {f"k{i}": os.urandom(3 * MIB + 1000 * i) for i in range(3)}
        for key, body in bodies.items():
            s3.put_object(Bucket="rot", Key=key, Body=body, ServerSideEncryption="AES256")
        wait_for(
            "a first scrub pass", lambda: (status(server).get("scrub") or {}).get("last_pass"), 20
        )
        a, b = _copies(server, "rot", "k0")
        flip(a, 500)  # block 0 bad on the first copy
        flip(b, 2 * MIB + 4000)  # block 2 bad on the second: only block-by-block reads work
        got = s3.get_object(Bucket="rot", Key="k0")["Body"].read()
        assert hashlib.md5(got).digest() == hashlib.md5(bodies["k0"]).digest()
        part = s3.get_object(Bucket="rot", Key="k0", Range=f"bytes={MIB - 10}-{2 * MIB + 10}")
        assert part["Body"].read() == bodies["k0"][MIB - 10 : 2 * MIB + 11]
        wait_for("read-path repairs done", lambda: _settled(server), 30)
        before = status(server)["scrub"]["faults_total"]
        flip(_copies(server, "rot", "k1")[1], MIB + 77)  # nobody reads it: the scrubber must
        wait_for(
            "the scrubber finding it",
            lambda: status(server)["scrub"]["faults_total"] > before,
            30,
        )
        wait_for("scrub repairs done", lambda: _settled(server), 30)
        for key, body in bodies.items():
            assert s3.get_object(Bucket="rot", Key=key)["Body"].read() == body
        _fsck_clean(server)
    finally:
        server.stop()
