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
