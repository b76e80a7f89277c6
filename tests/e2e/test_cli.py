"""The CLI as a person uses it next to a running node: users (root included), bucket sizes,
names it refuses, output piped into ``head``, and ``--endpoint HOST:PORT``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT_AK, ROOT_SK, Server, unique
from tests.e2e.test_users import add_user

# ``python -m`` from the checkout, not an installed ``holdfast`` script, so the code under
# test is this tree's whatever the environment has installed.
CLI = [sys.executable, "-m", "holdfast.cli"]
# The root keys come from the environment, as for the server the tests start.
ENV = {**os.environ, "HOLDFAST_ACCESS_KEY": ROOT_AK, "HOLDFAST_SECRET_KEY": ROOT_SK}


def holdfast(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=ENV)
    if check:
        assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _data(server: Server) -> str:
    return str(server.data_dirs[0])


def test_user_list_includes_root_marked_as_such(http_server):
    data = _data(http_server)
    out = holdfast("user", "list", "--data", data).stdout
    root_line = out.splitlines()[1]  # under the header, before every other user
    assert root_line.split() == ["root", ROOT_AK, "root"], out
    records = json.loads(holdfast("user", "list", "--json", "--data", data).stdout)
    assert records[0] == {"name": "root", "access_key": ROOT_AK, "disabled": False, "root": True}
    assert all(r["root"] is False for r in records[1:])


def test_user_add_refuses_bad_names_and_changes_nothing(http_server):
    data = _data(http_server)
    before = holdfast("user", "list", "--json", "--data", data).stdout
    for name in ("bad name", "a/b", "", ".dot", "x" * 65, "new\nline", "é"):
        proc = holdfast("user", "add", name, "--data", data, check=False)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert "invalid user name" in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stdout == ""
    assert holdfast("user", "list", "--json", "--data", data).stdout == before
    good = unique("ok.name@x")
    assert holdfast("user", "add", good, "--data", data).returncode == 0


def _into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Runs the CLI with stdout a pipe whose reader is already gone, as after ``| head -0``
    (head exiting at once would race with the write; a closed pipe never does)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*CLI, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, env=ENV
        )
    finally:
        os.close(write_end)


def test_output_into_a_closed_pipe_ends_quietly(http_server):
    data = _data(http_server)
    for args in (("user", "list"), ("bucket", "list"), ("log", "search", "--since", "1d")):
        proc = _into_closed_pipe(*args, "--data", data)
        assert proc.stderr == "", (args, proc.stderr)
        assert proc.returncode == 141, (args, proc.returncode)  # 128 + SIGPIPE, as a shell says


def test_bucket_list_and_info_show_size_and_object_count(http_server):
    data = _data(http_server)
    s3 = http_server.client()
    bucket = unique("sizes")
    s3.create_bucket(Bucket=bucket)
    for i, size in enumerate((1000, 2000, 300_000)):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x" * size)
    s3.delete_object(Bucket=bucket, Key="k0")
    listed = json.loads(holdfast("bucket", "list", "--json", "--data", data).stdout)
    (mine,) = [b for b in listed if b["name"] == bucket]
    assert (mine["objects"], mine["bytes"], mine["owner"]) == (2, 302_000, "root")
    text = holdfast("bucket", "list", "--data", data).stdout
    (line,) = [line for line in text.splitlines() if line.startswith(bucket + " ")]
    assert line.split()[1:5] == ["root", "2", "294.9", "KiB"], text
    info = json.loads(holdfast("bucket", "info", bucket, "--json", "--data", data).stdout)
    assert (info["objects"], info["bytes"], info["damaged"]) == (2, 302_000, 0)
    assert info["stored_bytes"] >= info["bytes"] and info["policy"] is None
    out = holdfast("bucket", "info", bucket, "--data", data).stdout
    assert "objects   2" in out and "294.9 KiB (302000 bytes)" in out
    missing = holdfast("bucket", "info", unique("none"), "--data", data, check=False)
    assert missing.returncode == 1 and "no bucket" in missing.stderr

    # --owner: another user's buckets only.
    name = unique("owner")
    access, secret = add_user(http_server, name)
    http_server.client(access, secret).create_bucket(Bucket=unique("theirs"))
    theirs = json.loads(
        holdfast("bucket", "list", "--owner", name, "--json", "--data", data).stdout
    )
    assert [b["owner"] for b in theirs] == [name]
    assert theirs[0]["objects"] == 0 and theirs[0]["bytes"] == 0


def test_admin_status_takes_host_port_as_well_as_a_url(http_server):
    host_port = http_server.endpoint.split("://", 1)[1]
    for endpoint in (host_port, http_server.endpoint):
        proc = holdfast("admin", "status", "--endpoint", endpoint, "--json", check=False)
        assert proc.returncode in (0, 1, 4), (endpoint, proc.stderr)  # an answer, any state
        assert json.loads(proc.stdout)["drives"]
    bad = holdfast("admin", "status", "--endpoint", "ftp://x:1", check=False)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr


def test_serve_refuses_a_repair_rate_of_zero_or_below(tmp_path):
    """Issue 13, bad input: a rate that would stall repair for good, or a negative one, is
    one clear line before anything starts."""
    for flag, value in (("--repair-rate", "0"), ("--anti-entropy-interval", "-1")):
        proc = holdfast("serve", "--data", str(tmp_path / "d"), flag, value, check=False)
        assert proc.returncode != 0, (flag, value, proc.stderr)
        assert flag in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "d" / "index").exists()  # nothing was started or created
