"""Store ids unique across the cluster (issue #17): ``<node>/<drive>``.

A data directory written before ids were qualified names its drives ``d0``, ``d1`` in the
index and in the drive markers. It must keep working without a rewrite: bare ids are read
as this node's drives (holdfast/stores/registry.py). Here a node's data is turned back into
that older form, then the node is started again and made to read, repair, delete and fsck
it. And a node started under another name than its drives were registered under refuses,
in one line, instead of hiding every copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys

from tests.conftest import Server, start_server
from tests.faults.support import (
    MIB,
    blob_files,
    drive_index,
    flip,
    query,
    repair_rows,
    segments_of,
    wait_for,
)

FLAGS = ["--scrub-rate", "0", "--gc-grace", "0.5"]


def _to_bare_ids(server: Server) -> None:
    """What an older Holdfast wrote: bare drive ids everywhere (server stopped)."""
    db = sqlite3.connect(server.data_dirs[0] / "index" / "holdfast.db")
    with db:
        db.execute("UPDATE objects SET segments=replace(segments, '\"local/d', '\"d')")
        db.execute("UPDATE parts SET segment=replace(segment, '\"local/d', '\"d')")
        db.execute("UPDATE drives SET store_id=substr(store_id, 7)")
        db.execute("UPDATE repair_queue SET store_id=substr(store_id, 7)")
        db.execute("UPDATE gc_queue SET stores=replace(stores, 'local/', '')")
    db.close()
    for i, d in enumerate(server.data_dirs):
        marker = d / "drive" / ".holdfast-drive"
        doc = json.loads(marker.read_text())
        doc["store_id"] = f"d{i}"
        marker.write_text(json.dumps(doc))


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "holdfast.cli", *args]
    for d in server.data_dirs:
        cmd += ["--data", str(d)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_a_data_directory_with_bare_drive_ids_keeps_working(tmp_path):
    server = start_server(tmp_path, drives=2, extra_args=FLAGS)
    s3 = server.client()
    s3.create_bucket(Bucket="old")
    bodies = {f"k{i}": os.urandom(MIB + i * 1000) for i in range(4)}
    for key, body in bodies.items():
        s3.put_object(Bucket="old", Key=key, Body=body)
    assert segments_of(server, "old", "k0")[0]["st"][0].startswith("local/d")
    server.stop()
    _to_bare_ids(server)
    assert sorted(segments_of(server, "old", "k0")[0]["st"]) == ["d0", "d1"]

    # A bad copy on d1 of an object whose segments say "d1".
    seg = segments_of(server, "old", "k1")[0]
    flip(blob_files(server.data_dirs[1])[seg["id"]], 100)
    server.start()
    s3 = server.client()
    for key, body in bodies.items():  # every object reads whole, whichever copy is read
        got = s3.get_object(Bucket="old", Key=key)["Body"].read()
        assert hashlib.md5(got).digest() == hashlib.md5(body).digest(), key
    # Scrub-free node: verify the bad copy through fsck's check, then let repair fix it.
    check = json.loads(_cli(server, "fsck", "--json").stdout)
    assert check["faults"] == {"corrupt": 1}, check
    assert check["drives"] == {"local/d0": "up", "local/d1": "up"}, "bare ids read as this node's"
    assert check["unmarked"] == 0 and check["orphans"] == 0, "old blobs are not orphans"
    fixed = _cli(server, "fsck", "--repair")
    assert "fixed: 1 copies" in fixed.stdout, fixed.stdout
    assert not repair_rows(server)
    assert json.loads(_cli(server, "fsck", "--json").stdout)["problems"] == 0

    # New writes record qualified ids; deleting an old object removes both of its copies.
    s3.put_object(Bucket="old", Key="new", Body=os.urandom(MIB))
    assert all(sid.startswith("local/") for sid in segments_of(server, "old", "new")[0]["st"])
    gone = segments_of(server, "old", "k2")[0]["id"]
    s3.delete_object(Bucket="old", Key="k2")
    wait_for(
        "the old object's copies deleted",
        lambda: all(gone not in blob_files(d) for d in server.data_dirs),
        20,
    )
    assert not repair_rows(server), "no missed deletes: the bare ids found their drives"
    (registered,) = query(server, "SELECT count(*) FROM drives")
    assert registered == (2,), "the drives were not registered a second time"
    server.stop()


def test_a_node_name_its_drives_do_not_have_is_refused(tmp_path):
    server = start_server(tmp_path, drives=2, extra_args=["--node-name", "alpha", *FLAGS])
    s3 = server.client()
    s3.create_bucket(Bucket="named")
    s3.put_object(Bucket="named", Key="k", Body=os.urandom(MIB))
    seg = segments_of(server, "named", "k")[0]
    assert sorted(seg["st"]) == ["alpha/d0", "alpha/d1"]
    assert {drive_index(sid) for sid in seg["st"]} == {0, 1}
    server.stop()

    wrong = subprocess.run(
        [sys.executable, "-m", "holdfast.cli", "serve", "--node-name", "beta"]
        + [a for d in server.data_dirs for a in ("--data", str(d))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "holdfast: these drives belong to node 'alpha', not 'beta': start with "
        "--node-name alpha (renaming a node is not supported yet)"
    ], wrong.stderr
    fsck = _cli(server, "fsck", "--json")  # no --node-name: the registered one
    assert fsck.returncode == 0 and json.loads(fsck.stdout)["drives"] == {
        "alpha/d0": "up",
        "alpha/d1": "up",
    }, fsck.stdout + fsck.stderr
    bad = _cli(server, "serve", "--node-name", "a/b")
    assert bad.returncode == 2 and "not a node name" in bad.stderr

    server.start()  # without --node-name: the name its drives carry
    got = server.client().get_object(Bucket="named", Key="k")["Body"].read()
    assert len(got) == MIB
    server.stop()
