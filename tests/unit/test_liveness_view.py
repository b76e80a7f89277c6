"""The workers' view of the cluster (holdfast/cluster/state.py LivenessView), read from the
file the cluster agent publishes: layout, liveness hints, free space of remote stores."""

from __future__ import annotations

import time

from holdfast.cluster.state import LivenessView, write_state


def state(updated: float) -> dict:
    return {
        "node": "n1",
        "updated": updated,
        "layout_version": 4,
        "layout": [
            {"name": "n1", "s3": "", "cluster": "127.0.0.1:1"},
            {"name": "n2", "s3": "", "cluster": "127.0.0.1:2"},
            {"name": "n3", "s3": "", "cluster": "127.0.0.1:3", "state": "removed"},
        ],
        "stores": {"n1/d0": {"free": 5, "ok": True}},
        "peers": {
            "n2": {"state": "up", "stores": {"n2/d0": {"free": 7, "ok": True}}},
            "n4": {"state": "down", "stores": {}},
        },
    }


def test_view_reads_the_agents_picture(tmp_path):
    write_state(tmp_path, state(time.time()))
    view = LivenessView(tmp_path)
    assert view.layout.version == 4
    assert [n.name for n in view.layout.members] == ["n1", "n2"]
    assert view.alive("n1") and view.alive("n2")
    assert not view.alive("n4") and not view.alive("n9")
    assert view.free_space("n2/d0") == 7 and view.free_space("n1/d0") == 5
    assert view.free_space("n4/d0") is None


def test_stale_or_missing_picture_trusts_no_peer(tmp_path):
    view = LivenessView(tmp_path, refresh=0)
    assert not view.alive("n2") and view.layout.version == 0
    write_state(tmp_path, state(time.time() - 60))
    assert not view.alive("n2") and not view.alive("n1")


def test_reads_the_file_at_most_once_per_refresh(tmp_path):
    now = [0.0]
    write_state(tmp_path, state(time.time()))
    view = LivenessView(tmp_path, refresh=1.0, clock=lambda: now[0])
    assert view.alive("n2")
    s = state(time.time())
    s["peers"]["n2"]["state"] = "down"
    write_state(tmp_path, s)
    assert view.alive("n2")  # within the refresh interval: the picture it has
    now[0] = 1.5
    assert not view.alive("n2")
