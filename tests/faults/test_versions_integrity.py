"""Noncurrent versions on the machine: their blobs survive the garbage collector and
``holdfast fsck --repair``, and fsck finds and repairs a damaged copy of an old version as
it does for a current one."""

from __future__ import annotations

import json
import os

from tests.conftest import start_server
from tests.faults.support import MIB, blob_files, flip, query
from tests.faults.test_fsck import FLAGS, _cli


def _version_blob(server, key: str) -> str:
    (text,) = query(
        server, "SELECT segments FROM versions WHERE bucket='vers' AND key=? AND marker=0", key
    )[0]
    return json.loads(text)[0]["id"]


def test_old_versions_survive_gc_and_fsck_repair(tmp_path):
    server = start_server(tmp_path, drives=2, extra_args=[*FLAGS, "--gc-grace", "0"])
    s3 = server.client()
    s3.create_bucket(Bucket="vers")
    s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    old = os.urandom(MIB + 1234)
    first = s3.put_object(Bucket="vers", Key="k", Body=old)["VersionId"]
    s3.put_object(Bucket="vers", Key="k", Body=b"new" * 100_000)
    s3.delete_object(Bucket="vers", Key="k")  # a delete marker on top
    blob = _version_blob(server, "k")
    report = json.loads(_cli(server, "fsck", "--json").stdout)
    assert report["unreferenced"] == 0 and report["unmarked"] == 0, report
    assert report["objects"] == 2, report  # the old versions are verified too
    server.stop()

    flip(blob_files(server.data_dirs[0])[blob], 777)  # bit rot in the old version's copy
    check = json.loads(_cli(server, "fsck", "--json").stdout)
    assert check["faults"] == {"corrupt": 1}, check
    fixed = _cli(server, "fsck", "--repair")
    assert "fixed: 1 copies" in fixed.stdout, fixed.stdout
    again = json.loads(_cli(server, "fsck", "--json").stdout)
    assert again["faults"] == {} and again["unreferenced"] == 0, again

    server = start_server(tmp_path, drives=2, extra_args=[*FLAGS, "--gc-grace", "0"])
    try:
        s3 = server.client()
        got = s3.get_object(Bucket="vers", Key="k", VersionId=first)["Body"].read()
        assert got == old
        for d in server.data_dirs:
            assert blob in blob_files(d), "an old version's blob was collected"
    finally:
        server.stop()
