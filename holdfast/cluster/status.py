"""The status page's "cluster" section: read from what the node's cluster agent last
published (holdfast/cluster/agent.py), a local file, so it answers while the index engine
is down; "stale" says when the agent has not written for a while."""

from __future__ import annotations

import time

from holdfast.cluster.state import read_state
from holdfast.config import Config


def cluster_section(config: Config) -> dict:
    if not getattr(config, "cluster_listen", None):
        return {"enabled": False}
    state = read_state(config.state_dir)
    if state is None:
        return {"enabled": True, "agent": "not running yet", "peers": {}}
    now = time.time()
    peers = {}
    for name, p in (state.get("peers") or {}).items():
        peers[name] = {
            "state": p.get("state"),
            "last_heartbeat": p.get("last_heartbeat"),
            "last_heartbeat_age": None
            if p.get("last_heartbeat") is None
            else round(now - p["last_heartbeat"], 3),
            "failures": p.get("failures", 0),
            "last_error": p.get("last_error", ""),
            "rejected": p.get("rejected", 0),
            "layout_version": p.get("layout_version"),
            "s3": p.get("s3", ""),
            "zone": p.get("zone", ""),
            "stores": p.get("stores", {}),
        }
    return {
        "enabled": True,
        "agent": "stale" if state.get("stale") else "ok",
        "agent_pid": state.get("pid"),
        "node": state.get("node"),
        "updated": state.get("updated"),
        "layout_version": state.get("layout_version"),
        "layout": state.get("layout", []),
        "peers": peers,
        "heartbeat": state.get("heartbeat", {}),
        "index_engine": state.get("index", {}),
        "internal": state.get("internal", {}),
        # The rebalance's progress as the index had it a few seconds ago (None: never one).
        "rebalance": state.get("rebalance"),
    }
