"""Node-to-node throughput against the loopback TLS baseline (issue #16 asks repair between
two nodes to reach at least half of what Python's ssl does between two processes).

    python bench/internal_tls.py [--mib 256]

Prints three figures, each the best of --runs:

* baseline: one blocking ``ssl`` socket pair between two processes, 1 MiB sendall/recv_into,
  the same certificates and TLS 1.3 as the nodes use;
* node read: NodeStore.read_blocks of a blob on another node's drive (an internal server
  process; each 1 MiB block verified by the server's store, framed, checksummed, verified
  again here against its CRC32C);
* node write: NodeStore.writer of the same blob (blocks checked there before writing, then
  fsync'd, renamed, directory fsync'd: includes the drive's own speed).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from holdfast.net import pki  # noqa: E402
from holdfast.net.tls import NodeIdentity, client_context, server_context  # noqa: E402
from holdfast.stores.base import new_blob_id  # noqa: E402
from holdfast.stores.blocks import BlockChecksummer  # noqa: E402
from holdfast.stores.node import NodeStore  # noqa: E402
from tests.net import support  # noqa: E402

BUF = 1 << 20


def ident(cluster: Path, name: str) -> NodeIdentity:
    f = pki.node_files(cluster, name)
    return NodeIdentity.load(f.cert, f.key, f.ca)


def baseline_server(cluster: Path, total: int) -> None:
    ctx = server_context(ident(cluster, "n2"))
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    s = ctx.wrap_socket(conn, server_side=True)
    view = memoryview(bytearray(BUF))
    got = 0
    while got < total:
        got += s.recv_into(view)
    s.sendall(b"k")
    s.close()


def baseline(cluster: Path, total: int) -> float:
    p = subprocess.Popen(
        [sys.executable, __file__, "--serve-baseline", str(cluster), "--mib", str(total >> 20)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    port = int(p.stdout.readline())
    s = client_context(ident(cluster, "n1")).wrap_socket(
        socket.create_connection(("127.0.0.1", port))
    )
    data = os.urandom(BUF)
    t = time.perf_counter()
    for _ in range(total // BUF):
        s.sendall(data)
    s.recv(1)
    elapsed = time.perf_counter() - t
    p.wait()
    return total / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--serve-baseline")
    args = ap.parse_args()
    total = args.mib << 20
    if args.serve_baseline:
        baseline_server(Path(args.serve_baseline), total)
        return
    work = Path(tempfile.mkdtemp(prefix="hf-bench-net-"))
    cluster = support.cluster_init(work / "cluster", ("n1", "n2"))
    server = support.start_node(work / "n2", cluster, "n2", ("n1", "n2"))
    client = support.client_for(cluster, "n1", {"n2": server.port})
    store = NodeStore("n2", "d0", client)
    data = secrets.token_bytes(total)
    c = BlockChecksummer(BUF)
    c.update(data)
    crcs = c.finish()
    base, reads, writes = [], [], []
    try:
        for _ in range(args.runs):
            base.append(baseline(cluster, total))
            t = time.perf_counter()
            w = store.writer(BUF)
            view = memoryview(data)
            for i in range(0, total, BUF):
                w.write(view[i : i + BUF])
            blob_id = new_blob_id()
            w.finish(blob_id, crcs)
            writes.append(total / (time.perf_counter() - t))
            blob = type(
                "B", (), {"blob_id": blob_id, "size": total, "block_size": BUF, "crcs": crcs}
            )
            t = time.perf_counter()
            n = sum(len(x) for x in store.read_blocks(blob, 0, total))
            assert n == total
            reads.append(total / (time.perf_counter() - t))
            store.delete(blob_id)
    finally:
        client.close()
        server.stop()
    b, r, w_ = max(base), max(reads), max(writes)
    print(f"baseline (ssl, 2 processes): {b / 1e6:7.0f} MB/s")
    print(f"node read  (NodeStore):      {r / 1e6:7.0f} MB/s  ({r / b:.2f}x baseline)")
    print(
        f"node write (NodeStore):      {w_ / 1e6:7.0f} MB/s  ({w_ / b:.2f}x baseline, incl. fsync)"
    )


if __name__ == "__main__":
    main()
