"""``holdfast serve`` as a cluster node refuses, in one line and before it changes anything,
flags that do not make a cluster node."""

from __future__ import annotations

import subprocess
import sys

from holdfast.net import pki


def serve(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "holdfast.cli", "serve", "--data", str(tmp_path / "data"),
         "--listen", "127.0.0.1:0", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cluster_flags_need_an_index_dsn_and_each_other(tmp_path):
    pki.init_cluster(tmp_path / "pki", "t", ["n1"], ["127.0.0.1"])
    files = pki.node_files(tmp_path / "pki", "n1")
    tls = [
        "--node-cert",
        str(files.cert),
        "--node-key",
        str(files.key),
        "--cluster-ca",
        str(files.ca),
    ]
    r = serve(tmp_path, "--cluster-listen", "127.0.0.1:0", *tls)
    assert r.returncode != 0 and "needs --index-dsn" in r.stderr
    r = serve(tmp_path, "--cluster-listen", "127.0.0.1:0")
    assert r.returncode != 0 and "--node-cert" in r.stderr
    r = serve(tmp_path, "--cluster-listen", "127.0.0.1:0", *tls, "--heartbeat-rate", "0",
              "--index-dsn", "host=127.0.0.1")  # fmt: skip
    assert r.returncode != 0 and "--heartbeat-rate must be > 0" in r.stderr
    for r2 in (r,):
        assert len(r2.stderr.strip().splitlines()) == 1 and "Traceback" not in r2.stderr
    assert not (tmp_path / "data").exists()  # nothing was created
