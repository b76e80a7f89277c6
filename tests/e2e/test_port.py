"""One server per port (issue 18): a port held by another Holdfast, or by any other program,
fails the start with a one-line message and a non-zero exit, and the running node keeps
every client. Before the fix workers bound with SO_REUSEPORT, so a second server joined the
port and the kernel split clients between two unrelated stores."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT_AK, ROOT_SK, free_port, start_server


def _serve(port: int, data, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run a second `holdfast serve` on ``port``; it must give up on its own."""
    env = {
        **os.environ,
        "HOLDFAST_ACCESS_KEY": "HFOTHERROOTKEY000001",
        "HOLDFAST_SECRET_KEY": "o" * 40,
    }
    cmd = [sys.executable, "-m", "holdfast.cli", "serve", "--listen", f"127.0.0.1:{port}"]
    cmd += ["--data", str(data), "--workers", "2"]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # it took the port: stop it and its workers
        out, _ = proc.communicate()
        raise AssertionError(f"a second server started on a port in use:\n{out}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _refused(result: subprocess.CompletedProcess, port: int) -> None:
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "Traceback" not in message, message
    assert len(message.splitlines()) == 1, message
    assert f"127.0.0.1:{port}" in message and "in use" in message, message
    assert "serving S3" not in result.stdout


def test_second_server_on_the_same_port_exits_and_the_first_keeps_every_client(tmp_path) -> None:
    first = start_server(tmp_path / "first")
    try:
        s3 = first.client()
        s3.create_bucket(Bucket="mine")
        s3.put_object(Bucket="mine", Key="k", Body=b"first node's data")

        _refused(_serve(first.port, tmp_path / "second" / "data"), first.port)
        assert not (tmp_path / "second" / "data").exists(), "nothing is created before the bind"

        # A new connection each time, so the kernel would have to choose between listeners.
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "mine", "Key": "k"})
        answers = []
        for _ in range(300):
            r = requests.get(url, headers={"Connection": "close"}, timeout=5)
            answers.append((r.status_code, r.content))
        assert answers.count((200, b"first node's data")) == 300, set(answers)
    finally:
        first.stop()


@pytest.mark.parametrize("reuseport", [False, True], ids=["plain", "so_reuseport"])
def test_a_port_held_by_another_program_fails_the_start(tmp_path, reuseport: bool) -> None:
    holder = socket.socket()
    if reuseport:  # a program that shares its port with anyone who asks
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    port = free_port()
    holder.bind(("127.0.0.1", port))
    holder.listen(8)
    try:
        _refused(_serve(port, tmp_path / "data"), port)
    finally:
        holder.close()


def test_the_port_is_served_again_after_a_restart(tmp_path) -> None:
    """SO_REUSEADDR stays: a restart binds at once despite connections in TIME_WAIT."""
    server = start_server(tmp_path)
    try:
        for _ in range(20):
            requests.get(f"{server.endpoint}/_holdfast/health", timeout=5)
        server.stop()
        server.start()
        assert requests.get(f"{server.endpoint}/_holdfast/health", timeout=5).status_code == 200
        assert server.client(ROOT_AK, ROOT_SK).list_buckets()["Buckets"] == []
    finally:
        server.stop()
