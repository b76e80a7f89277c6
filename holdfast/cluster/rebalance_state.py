"""What a rebalance has to do and has done, as kept in the index engine (pure).

Two meta keys, so that a writer never overwrites the other's news:

* ``rebalance_request`` — written by ``holdfast cluster layout apply`` (a node added, a
  capacity changed) and ``holdfast cluster rebalance start|stop``: a sequence number, what
  to do (``start`` or ``stop``), why, who and when;
* ``rebalance_state`` — written by the node leading the background work
  (holdfast/workers/rebalance.py): the request it serves, the pass's phase, position and
  budget, and its counters. ``holdfast cluster rebalance status``, the status page's
  ``cluster.rebalance`` and the metrics read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

REQUEST_KEY = "rebalance_request"
STATE_KEY = "rebalance_state"
PHASES = ("idle", "waiting", "counting", "objects", "versions", "retrying", "done", "stopped")


@dataclass
class RebalanceState:
    request: int = 0  # the request's sequence number this pass serves
    layout_version: int = 0  # the layout it was asked for: the pass waits until it sees it
    phase: str = "idle"
    reason: str = ""
    waiting_for: str = ""  # why a pass has not begun (a drain under way, a node not heard)
    cursor: list | None = None
    walk: str = "objects"  # what the counting phase walks now: objects, then versions
    passes: int = 0
    started: float = 0.0
    moving_since: float | None = None  # when the counting ended and copies began to move
    finished: float | None = None
    rate: float = 0.0
    weights: dict = field(default_factory=dict)  # node -> weight the pass balances to
    used: dict = field(default_factory=dict)  # node -> bytes held, counted at the start
    balance: dict = field(default_factory=dict)  # placement.balance.Balance as JSON
    bytes_planned: int = 0  # the minimum the layout requires: each node's excess, summed
    bytes_moved: int = 0
    copies_moved: int = 0
    objects_seen: int = 0  # objects and versions walked by the moving phases
    objects_moved: int = 0  # of those, with at least one copy moved
    changed_meanwhile: int = 0
    failed: int = 0
    last_error: str | None = None

    @classmethod
    def from_text(cls, text: str | None) -> RebalanceState:
        if not text:
            return cls()
        obj = json.loads(text)
        known = {k: v for k, v in obj.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_text(self) -> str:
        return json.dumps(asdict(self))


def progress(state: RebalanceState, now: float | None = None) -> dict:
    """The state plus what an operator asks: share done, bytes left, and the ETA (at the
    rate measured since copies began to move, else at the configured rate)."""
    now = time.time() if now is None else now
    out = asdict(state)
    out.pop("balance", None)
    out.pop("cursor", None)
    planned, moved = state.bytes_planned, state.bytes_moved
    left = max(0, planned - moved) if state.phase in ("objects", "versions", "retrying") else 0
    out["bytes_left"] = left
    out["progress"] = (
        round(min(1.0, moved / planned), 4) if planned else (1.0 if state.phase == "done" else 0.0)
    )
    speed = 0.0
    if state.moving_since and moved and now > state.moving_since:
        speed = moved / (now - state.moving_since)
    speed = speed or state.rate
    out["eta_seconds"] = round(left / speed, 1) if left and speed else (0.0 if not left else None)
    return out


def describe(state: RebalanceState, now: float | None = None) -> str:
    """One line for the terminal."""
    p = progress(state, now)
    phase = state.phase
    if phase == "idle":
        return "rebalance: none requested since this cluster started"
    if phase in ("waiting", "retrying"):
        moved = (
            f"; {state.bytes_moved} of {state.bytes_planned} bytes moved"
            if state.bytes_moved
            else ""
        )
        return f"rebalance: {phase} ({state.waiting_for}){moved}"
    if phase == "stopped":
        return (
            f"rebalance: stopped; {state.bytes_moved} of {state.bytes_planned} bytes had "
            f"moved ({state.copies_moved} copies)"
        )
    if phase == "counting":
        return f"rebalance ({state.reason}): counting the bytes each node holds"
    pct = f" ({100 * p['progress']:.0f}%)" if state.bytes_planned else ""
    line = (
        f"rebalance ({state.reason}): {phase}, {state.bytes_moved} of {state.bytes_planned} "
        f"bytes moved{pct}, {state.copies_moved} copies of {state.objects_moved} objects "
        f"({state.objects_seen} looked at), at {state.rate:.0f} bytes/s"
    )
    if phase != "done" and p["eta_seconds"] is not None:
        line += f", about {p['eta_seconds']:.0f} s left"
    if state.failed or state.changed_meanwhile:
        line += f"; {state.failed} failed, {state.changed_meanwhile} changed meanwhile"
    return line


def request(
    seq: int, action: str, reason: str, by: str, version: int = 0, now: float | None = None
) -> str:
    return json.dumps(
        {
            "seq": seq,
            "layout_version": version,
            "action": action,
            "reason": reason,
            "by": by,
            "at": time.time() if now is None else now,
        }
    )


def read_request(text: str | None) -> dict:
    try:
        obj = json.loads(text) if text else {}
    except ValueError:
        obj = {}
    return obj if isinstance(obj, dict) else {}
