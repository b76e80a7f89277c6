"""The file through which a node's cluster agent (holdfast/cluster/agent.py) tells the
node's other processes what it knows: ``<state dir>/cluster-state.json``, written whole and
renamed about once a second. Readers: the status page (holdfast/cluster/status.py) and, for
placement, free space of remote stores and peers' liveness."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATE_FILE = "cluster-state.json"


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    path = Path(state_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def read_state(state_dir: Path, stale_after: float = 10.0) -> dict[str, Any] | None:
    """The agent's last published picture, or None when there is none. ``stale`` is set
    when the agent has not written for ``stale_after`` seconds."""
    try:
        state = json.loads((Path(state_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    state["stale"] = time.time() - float(state.get("updated", 0)) > stale_after
    return state


class LivenessView:
    """What the S3 workers of a cluster node know of the cluster, from the agent's file:
    the layout (``layout.nodes``, ``layout.version``), which peers are up (``alive``) and
    the free space of remote stores (``free_space``), as of the last heartbeats. Placement
    uses it without a network call; it re-reads the file at most once per ``refresh``
    seconds. A peer is alive only if the agent saw it recently AND the picture is fresh: a
    stale picture (agent stopped) routes around every peer rather than trusting old news."""

    def __init__(self, state_dir: Path, refresh: float = 1.0, clock=time.monotonic) -> None:
        self.state_dir = Path(state_dir)
        self.refresh = refresh
        self.clock = clock
        self._read_at: float | None = None
        self._state: dict[str, Any] | None = None

    def state(self) -> dict[str, Any] | None:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.refresh:
            self._state = read_state(self.state_dir)
            self._read_at = now
        return self._state

    @property
    def layout(self):
        from holdfast.cluster.layout import Layout
        from holdfast.index.records import NodeRecord

        s = self.state() or {}
        return Layout(
            int(s.get("layout_version", 0)),
            tuple(NodeRecord.from_json(n) for n in s.get("layout", [])),
        )

    def alive(self, name: str) -> bool:
        s = self.state()
        if not s or s.get("stale"):
            return False
        if name == s.get("node"):
            return True
        return (s.get("peers", {}).get(name) or {}).get("state") == "up"

    def free_space(self, store_id: str) -> int | None:
        s = self.state() or {}
        node = store_id.partition("/")[0]
        stores = s.get("stores", {}) if node == s.get("node") else (
            (s.get("peers", {}).get(node) or {}).get("stores", {})
        )  # fmt: skip
        entry = stores.get(store_id)
        return int(entry["free"]) if entry and "free" in entry else None
