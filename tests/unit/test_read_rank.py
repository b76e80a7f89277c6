"""Which copy a cluster node reads first (holdfast/cluster/remote.py, read_rank): its own
drives, then peers that are up; last, peers judged down, or that this process just failed
to connect to (a killed node refuses at once, heartbeats take 3 s and more to say so)."""

from __future__ import annotations

import time

from holdfast.cluster.remote import ClusterStores
from holdfast.cluster.state import LivenessView, write_state
from holdfast.stores.registry import StoreMap


class Client:
    """The one question read_rank asks of holdfast/net/client.py's NodeClient."""

    def __init__(self) -> None:
        self.gone: set[str] = set()

    def unreachable(self, node: str) -> bool:
        return node in self.gone

    def close(self) -> None:
        pass


def picture(down: tuple[str, ...] = ()) -> dict:
    peers = {
        n: {"state": "down" if n in down else "up", "stores": {f"{n}/d0": {"free": 9, "ok": True}}}
        for n in ("n2", "n3")
    }
    layout = [{"name": n, "s3": "", "cluster": f"127.0.0.1:{i}"} for i, n in enumerate(
        ("n1", "n2", "n3"), 1)]  # fmt: skip
    return {"node": "n1", "updated": time.time(), "layout_version": 1, "layout": layout,
            "stores": {}, "peers": peers}  # fmt: skip


def test_a_peer_that_refused_is_read_last_before_heartbeats_judge_it_down(tmp_path):
    write_state(tmp_path, picture())
    client = Client()
    stores = ClusterStores(
        StoreMap([], "n1"), lambda sid: True, LivenessView(tmp_path, refresh=0), lambda _: client
    )
    copies = ["n3/d0", "n2/d0"]
    assert stores.read_rank(copies) == copies  # both up: the order the index gave
    client.gone.add("n3")  # a connection to n3 was just refused; heartbeats still say up
    assert stores.read_rank(copies) == ["n2/d0", "n3/d0"]
    client.gone.clear()
    write_state(tmp_path, picture(down=("n3",)))
    stores.sync(force=True)
    assert stores.read_rank(copies) == ["n2/d0", "n3/d0"]  # judged down: last as before
