"""Secrets at rest (issue 18): the data directory is owner-only whatever the umask, loose
modes are repaired at start, users' secret keys are sealed with the master key (no secret
in the index's bytes, a copy of the index leaks nothing usable), plain-text rows from an
older Holdfast are sealed at start, restarts still authenticate, a wrong or missing master
key stops the start with a clear message, and `holdfast key rotate` re-seals everything."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import ROOT_AK, ROOT_SK, Server, free_port, start_server
from tests.e2e.ops_helpers import api


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """This checkout's CLI (not an installed console script)."""
    return subprocess.run(
        [sys.executable, "-m", "holdfast.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def _serve_once(data: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """A `holdfast serve` expected to refuse to start."""
    cmd = ["serve", "--listen", f"127.0.0.1:{free_port()}", "--data", str(data), "--workers", "1"]
    environment = {"HOLDFAST_ACCESS_KEY": ROOT_AK, "HOLDFAST_SECRET_KEY": ROOT_SK, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "holdfast.cli", *cmd],
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # it started: stop it and its workers
        proc.communicate()
        raise AssertionError("the server started") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture
def servers():
    """Servers started by a test; stopped at its end whatever happened (stop is idempotent)."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def _index_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((data / "index").iterdir()) if p.is_file())


def _add_users(server: Server, n: int) -> list[tuple[str, str]]:
    keys = []
    for i in range(n):
        made = api(server, "POST", "/_holdfast/api/users", {"name": f"user-{i}"}).json()
        keys.append((made["access_key"], made["secret_key"]))
    return keys


def _works(server: Server, keys: tuple[str, str]) -> bool:
    try:
        server.client(*keys).list_buckets()
        return True
    except ClientError:
        return False


def _loose_modes(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            found.append(f"{path} {mode:04o}")
    return found


def test_everything_is_owner_only_under_umask_000(tmp_path) -> None:
    old = os.umask(0)  # inherited by the server it starts
    try:
        # No keys in the environment: the root pair is generated into the data directory.
        server = start_server(
            tmp_path, env={"HOLDFAST_ACCESS_KEY": "", "HOLDFAST_SECRET_KEY": ""}, drives=2
        )
    finally:
        os.umask(old)
    try:
        creds = json.loads((server.data_dirs[0] / "root-credentials.json").read_text())
        root = (creds["access_key"], creds["secret_key"])
        s3 = server.client(*root)
        s3.create_bucket(Bucket="modes")
        s3.put_object(Bucket="modes", Key="big", Body=os.urandom(200_000))  # a blob file
        api(server, "POST", "/_holdfast/api/users", {"name": "alice"}, keys=root)
        signin = {"access_key": root[0], "secret_key": root[1]}
        r = requests.post(
            server.endpoint + "/_holdfast/ui/api/session",
            json=signin,
            headers={"Origin": server.endpoint},
            timeout=5,
        )
        assert r.status_code == 200  # ui-session.key now exists
        for name in ("root-credentials.json", "ui-session.key", "master.key", "index"):
            assert (server.data_dirs[0] / name).exists(), name
        assert (server.data_dirs[0] / "index" / "holdfast.db-wal").exists()
        for data in server.data_dirs:
            assert _loose_modes(data) == []
    finally:
        server.stop()


def test_loose_modes_of_an_existing_data_directory_are_repaired_at_start(tmp_path, servers) -> None:
    server = start_server(tmp_path)
    servers.append(server)
    _add_users(server, 1)
    server.stop()
    data = server.data_dirs[0]
    os.chmod(data, 0o755)
    os.chmod(data / "index", 0o755)
    for path in (data / "index").iterdir():
        os.chmod(path, 0o644)
    os.chmod(data / "master.key", 0o644)
    server.start()
    try:
        assert "owner-only" in server.log() and "master.key (0644 -> 0600)" in server.log()
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "index" / "holdfast.db").stat().st_mode) == 0o600
        assert stat.S_IMODE((data / "master.key").stat().st_mode) == 0o600
    finally:
        server.stop()


def test_no_secret_in_the_index_and_users_still_sign_in_after_a_restart(tmp_path) -> None:
    server = start_server(tmp_path)
    try:
        keys = _add_users(server, 3)
        made = _cli("user", "add", "from-cli", "--data", str(server.data_dirs[0]))
        assert made.returncode == 0, made.stderr
        secret = made.stdout.split("secret key: ")[1].strip()
        access = made.stdout.split("access key: ")[1].split()[0]
        keys.append((access, secret))
        assert all(_works(server, k) for k in keys)
        raw = _index_bytes(server.data_dirs[0])
        for _, secret in keys:
            assert secret.encode() not in raw
        server.stop()
        raw = _index_bytes(server.data_dirs[0])  # checkpointed at stop
        for _, secret in keys:
            assert secret.encode() not in raw
        server.start()
        assert all(_works(server, k) for k in keys)
        # A copy of the index alone opens nothing: the rows hold sealed text.
        db = sqlite3.connect(server.data_dirs[0] / "index" / "holdfast.db")
        stored = [r[0] for r in db.execute("SELECT secret_key FROM users")]
        db.close()
        assert len(stored) == 4 and all(v.startswith("hfsealed1:") for v in stored)
    finally:
        server.stop()


def test_plain_text_rows_from_an_older_holdfast_are_sealed_at_start(tmp_path, servers) -> None:
    server = start_server(tmp_path)
    servers.append(server)
    (access, _), *_ = _add_users(server, 1)
    server.stop()
    legacy = "legacy-plain-text-secret-0123456789abcd"
    db = sqlite3.connect(server.data_dirs[0] / "index" / "holdfast.db")
    with db:
        db.execute("UPDATE users SET secret_key=? WHERE access_key=?", (legacy, access))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert legacy.encode() in _index_bytes(server.data_dirs[0])
    server.start()
    try:
        assert "sealed 1 user secret(s) stored in plain text" in server.log()
        assert legacy.encode() not in _index_bytes(server.data_dirs[0])
        assert _works(server, (access, legacy))
    finally:
        server.stop()


def test_a_wrong_or_missing_master_key_stops_the_start_with_a_clear_message(
    tmp_path, servers
) -> None:
    server = start_server(tmp_path)
    servers.append(server)
    keys = _add_users(server, 1)
    server.stop()
    data = server.data_dirs[0]
    key_file = data / "master.key"
    saved = key_file.read_bytes()

    key_file.unlink()
    missing = _serve_once(data)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "no master key" in missing.stderr and "master.key is missing" in missing.stderr
    assert not key_file.exists(), "a lost key is never silently replaced"

    other = base64.b64encode(os.urandom(32)).decode()
    wrong = _serve_once(data, env={"HOLDFAST_MASTER_KEY": other})
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert "sealed with master key" in wrong.stderr and "HOLDFAST_MASTER_KEY" in wrong.stderr

    damaged = _serve_once(data, env={"HOLDFAST_MASTER_KEY": "not base64!"})
    assert damaged.returncode != 0 and "32 bytes in base64" in damaged.stderr

    key_file.write_bytes(saved)  # restored from the backup: everything works again
    os.chmod(key_file, 0o600)
    server.start()
    try:
        assert _works(server, keys[0])
    finally:
        server.stop()


def test_the_master_key_can_come_from_the_environment(tmp_path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    server = start_server(tmp_path, env={"HOLDFAST_MASTER_KEY": key})
    try:
        keys = _add_users(server, 1)
        assert not (server.data_dirs[0] / "master.key").exists()
        server.stop()
        server.start()
        assert _works(server, keys[0])
    finally:
        server.stop()
    assert _serve_once(server.data_dirs[0], env={"HOLDFAST_MASTER_KEY": ""}).returncode != 0


def test_key_rotate_reseals_every_secret_under_a_new_key(tmp_path, servers) -> None:
    server = start_server(tmp_path)
    servers.append(server)
    keys = _add_users(server, 2)
    data = server.data_dirs[0]
    before = json.loads((data / "master.key").read_text())
    refused = _cli("key", "rotate", "--data", str(data))
    assert refused.returncode != 0 and "stop it" in refused.stderr  # the node is running
    server.stop()

    rotated = _cli("key", "rotate", "--data", str(data))
    assert rotated.returncode == 0, rotated.stderr
    assert "re-sealed 2 user secret(s)" in rotated.stdout
    after = json.loads((data / "master.key").read_text())
    assert after["current"] != before["current"]
    # The old key stays, open-only, for SSE-S3 data keys sealed under it (test_sse.py).
    assert set(after["keys"]) == {after["current"], before["current"]}
    assert stat.S_IMODE((data / "master.key").stat().st_mode) == 0o600
    server.start()
    try:
        assert all(_works(server, k) for k in keys)
    finally:
        server.stop()
    # The old key opens nothing any more.
    old_key = before["keys"][before["current"]]
    assert _serve_once(data, env={"HOLDFAST_MASTER_KEY": old_key}).returncode != 0


def test_key_rotate_with_the_key_in_the_environment(tmp_path, servers) -> None:
    old = base64.b64encode(os.urandom(32)).decode()
    new = base64.b64encode(os.urandom(32)).decode()
    server = start_server(tmp_path, env={"HOLDFAST_MASTER_KEY": old})
    servers.append(server)
    keys = _add_users(server, 1)
    server.stop()
    data = str(server.data_dirs[0])
    one = _cli("key", "rotate", "--data", data, env={"HOLDFAST_MASTER_KEY": old})
    assert one.returncode != 0 and "Put a new key first" in one.stderr
    both = _cli("key", "rotate", "--data", data, env={"HOLDFAST_MASTER_KEY": f"{new},{old}"})
    assert both.returncode == 0 and "re-sealed 1" in both.stdout, both.stderr
    server.env["HOLDFAST_MASTER_KEY"] = new
    server.start()
    try:
        assert _works(server, keys[0])
    finally:
        server.stop()
