"""restic, as a new user would run it, backing up to Holdfast over S3 into a bucket with
versioning and object lock (a default GOVERNANCE retention, the ransomware protection backup
guides recommend): ``restic init``, ``backup``, ``check --read-data`` and ``restore``, and the
restored bytes are the original ones. restic is Debian's package, installed with apt-get
when missing (as tests/e2e/test_ui.py installs chromium).

The quick variant backs up a few small files and runs in the default suite; the slow one
backs up more files and a larger one, and makes a second, incremental snapshot.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT_AK, ROOT_SK
from tests.e2e.test_buckets import bucket_name
from tests.e2e.test_ui import _apt

PASSWORD = "correct horse battery staple"


def ensure_restic() -> str:
    """Debian's restic, installed with apt-get if it is missing."""
    found = shutil.which("restic")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("restic is missing and apt-get is not available to install it")
    if not _apt("install", "restic"):
        _apt("update")
        if not _apt("install", "restic"):
            pytest.skip("restic is missing and 'apt-get install restic' failed")
    found = shutil.which("restic")
    if not found:
        pytest.skip("apt-get installed restic but it is not on PATH")
    return found


def locked_bucket(s3) -> str:
    name = bucket_name()
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    return name


def write_tree(root: Path, files: int, size: int, big: int = 0) -> None:
    for i in range(files):
        sub = root / f"dir{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i}.bin").write_bytes(os.urandom(size + i))
    (root / "empty").write_bytes(b"")
    (root / "text.txt").write_text("héllo, restic\n" * 100)
    if big:
        (root / "big.bin").write_bytes(os.urandom(big))


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def run_restic(http_server, tmp_path: Path, files: int, size: int, big: int, snapshots: int):
    restic = ensure_restic()
    s3 = http_server.client()
    bucket = locked_bucket(s3)
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": f"s3:{http_server.endpoint}/{bucket}",
        "RESTIC_PASSWORD": PASSWORD,
        "AWS_ACCESS_KEY_ID": ROOT_AK,
        "AWS_SECRET_ACCESS_KEY": ROOT_SK,
        "AWS_DEFAULT_REGION": "us-east-1",
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
    }

    def restic_run(*args: str) -> str:
        done = subprocess.run(
            [restic, *args], env=env, capture_output=True, timeout=300, cwd=tmp_path
        )
        assert done.returncode == 0, (args, done.stdout.decode()[-2000:], done.stderr.decode())
        return done.stdout.decode()

    source = tmp_path / "source"
    write_tree(source, files, size, big)
    restic_run("init")
    for n in range(snapshots):
        if n:
            (source / f"added{n}.bin").write_bytes(os.urandom(size))
        restic_run("backup", str(source))
    restic_run("check", "--read-data")
    target = tmp_path / "restored"
    restic_run("restore", "latest", "--target", str(target))
    restored = target / source.relative_to("/")
    assert same_tree(source, restored)
    # What restic wrote is protected: every data file has the default retention, and a
    # delete of its version is refused.
    listed = s3.list_object_versions(Bucket=bucket, Prefix="data/")["Versions"]
    assert listed
    first = listed[0]
    head = s3.head_object(Bucket=bucket, Key=first["Key"], VersionId=first["VersionId"])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    reply = s3.delete_object(Bucket=bucket, Key=first["Key"])  # a delete marker: allowed
    assert reply["DeleteMarker"]
    with pytest.raises(s3.exceptions.ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key=first["Key"], VersionId=first["VersionId"])
    assert exc.value.response["Error"]["Code"] == "AccessDenied"


def test_restic_backup_check_restore_quick(http_server, tmp_path):
    run_restic(http_server, tmp_path, files=6, size=20_000, big=0, snapshots=1)


@pytest.mark.slow
def test_restic_backup_check_restore_larger(http_server, tmp_path):
    run_restic(http_server, tmp_path, files=60, size=200_000, big=24 * 1024 * 1024, snapshots=2)
