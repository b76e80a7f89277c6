"""The status snapshot: what the status page, readiness, metrics and alerts all read.

Each worker keeps its own snapshot in memory, refreshed by one background task
(:class:`StatusKeeper`). Serving status is then a dictionary read: it cannot block on the
index, a drive or a lock, which is the S3 2017 lesson (DESIGN.md invariant 6).

The refresher is the only ops code that touches the index or the drives, and it never waits
on them: every drive or file check runs in its own thread (:class:`BoundedCall`) with a
timeout, a check that hangs is not started again until it returns, and the index is asked
through its interface with a deadline (``probe``, ``status_counts``), which the engine keeps
off its busy paths. A failed or hung check becomes state in the snapshot ("index
unreachable: database is locked", "drive d1 missing") instead of an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from holdfast.config import Config
from holdfast.index.base import Index
from holdfast.ops.node import NodeInfo, write_atomic
from holdfast.ops.providers import HEALTHY, OpsProvider, call
from holdfast.stores.local import drive_present

log = logging.getLogger("holdfast.ops")

INDEX_TIMEOUT = 3.0
DRIVE_TIMEOUT = 2.0
FILE_TIMEOUT = 2.0
CORRUPT_EXAMPLES = 20
BACKGROUND_FILE = "background.json"
# Parts of Index.status_counts that go to the providers (from_index), not into the counts.
DURABLE_KEYS = ("repair_queue", "damaged")
BACKGROUND_STALE = 60.0


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {INDEX_TIMEOUT:g}s"
    return f"{type(e).__name__}: {e}" if not str(e).startswith("index") else str(e)


class BoundedCall:
    """Runs one blocking check at a time in its own thread and waits at most ``timeout``.

    A check that hangs (a dead NFS mount, a wedged disk) keeps its thread, and the next
    refresh reports it as still hanging instead of piling up more threads behind it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"holdfast-ops-{name}")
        self._future: Future | None = None
        self._started = 0.0

    async def __call__(
        self, timeout: float, fn: Callable[..., Any], *args: Any
    ) -> tuple[bool, Any]:
        """(True, result) or (False, why it failed)."""
        if self._future is not None and not self._future.done():
            return False, f"check still running after {time.monotonic() - self._started:.0f}s"
        self._started = time.monotonic()
        self._future = self._executor.submit(fn, *args)
        try:
            result = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(self._future)), timeout
            )
        except TimeoutError:
            return False, f"no answer within {timeout:g}s"
        except Exception as e:
            return False, f"{type(e).__name__}: {e}"
        return True, result

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# -- checks (blocking; each runs in a BoundedCall thread) ------------------------------------


def check_drive(store_id: str, data_dir: str) -> dict:
    """Presence, writability and capacity of one drive, from the filesystem alone."""
    out: dict[str, Any] = {
        "id": store_id,
        "path": data_dir,
        "state": "ok",
        "reason": None,
        "total_bytes": None,
        "free_bytes": None,
        "used_bytes": None,
        "free_percent": None,
    }
    try:
        st = os.statvfs(data_dir)
    except FileNotFoundError:
        return {**out, "state": "missing", "reason": "data directory is gone"}
    except OSError as e:
        return {**out, "state": "down", "reason": f"statvfs failed: {e}"}
    if not drive_present(data_dir):
        return {
            **out,
            "state": "missing",
            "reason": "drive/blobs not found (unmounted or removed?)",
        }
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    out.update(
        total_bytes=total,
        free_bytes=free,
        used_bytes=total - st.f_bfree * st.f_frsize,
        free_percent=round(100.0 * free / total, 2) if total else 0.0,
    )
    if st.f_flag & os.ST_RDONLY:
        out.update(state="read-only", reason="filesystem is mounted read-only")
    return out


def read_json_file(path: Path) -> dict | None:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


# -- the snapshot ----------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """scheme://host/path of a webhook URL: credentials and query strings are secrets."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def config_summary(config: Config) -> dict:
    return {
        "data_dirs": config.data_dirs,
        "endpoint": config.endpoint,
        "tls": bool(config.tls_cert),
        "workers": config.worker_count(),
        "region": config.region,
        "ops_dir": str(config.ops_path),
        "request_log_max_bytes": config.request_log_max_bytes,
        "alert_channels": [f"webhook {redact_url(u)}" for u in config.alert_webhooks]
        + (
            [f"smtp {config.alert_smtp} -> {', '.join(config.alert_email_to)}"]
            if config.alert_smtp
            else []
        ),
        "alert_thresholds": {
            "free_percent": config.alert_free_percent,
            "error_rate": config.alert_error_rate,
            "error_window_seconds": config.alert_error_window_seconds,
            "backlog_minutes": config.alert_backlog_minutes,
        },
    }


HEADLINE_EXAMPLES = 3


def damaged_headline(count: int, examples: list[dict]) -> str:
    """Objects no copy of which verifies, by name, and the next step: nothing in Holdfast
    can bring their bytes back."""
    names = ", ".join(f"{e['bucket']}/{e['key']}" for e in examples[:HEADLINE_EXAMPLES])
    if count > min(len(examples), HEADLINE_EXAMPLES):
        names = f"{count} objects ({names}, ...)" if names else f"{count} objects"
    what = "it" if count == 1 else "them"
    return f"no good copy of {names}: restore {what} from backup, or delete {what}"


def assess(snap: dict, config: Config) -> list[dict]:
    """What is wrong, most serious first: the page's headline and readiness's reasons."""
    problems: list[dict] = []

    def add(severity: str, what: str) -> None:
        problems.append({"severity": severity, "what": what})

    index = snap["index"]
    if not index.get("readable"):
        add("critical", f"index unreachable: {index.get('error') or 'not checked yet'}")
    elif not index.get("writable"):
        add("critical", f"index not writable: {index.get('error')}")
    corrupt = index.get("corrupt_objects")
    if corrupt:  # first of the warnings: named, with what to do about them
        add("warning", damaged_headline(corrupt, index.get("corrupt_examples") or []))
    drives = snap["drives"]
    usable = [d for d in drives if d["state"] == "ok"]
    for d in drives:
        if d["state"] != "ok":
            add(
                "critical" if not usable else "warning",
                f"drive {d['id']} {d['state']}: {d['reason']}",
            )
        elif d["free_percent"] is not None and d["free_percent"] < config.alert_free_percent:
            add("warning", f"drive {d['id']} has {d['free_percent']:.1f}% free")
    alerts = snap.get("alerts", {})
    if alerts.get("channels") and alerts.get("oldest_pending_age_seconds", 0) > 300:
        add(
            "warning",
            f"alerts undelivered for {alerts['oldest_pending_age_seconds']:.0f}s: {alerts.get('last_error')}",
        )
    notifications = snap.get("providers", {}).get("notifications") or {}
    if notifications.get("dead"):
        add(
            "warning",
            f"{notifications['dead']} event notification(s) dead-lettered: "
            f"{notifications.get('last_error')} (holdfast notify retry)",
        )
    if notifications.get("oldest_queued_age_seconds", 0) > 300:
        add(
            "warning",
            f"event notifications undelivered for "
            f"{notifications['oldest_queued_age_seconds']:.0f}s: {notifications.get('last_error')}",
        )
    if snap.get("background", {}).get("state") == "stale":
        add("warning", "background workers have not reported for over a minute")
    rlog = snap.get("request_log", {})
    if rlog.get("write_errors"):
        add("warning", f"request log cannot be written: {rlog.get('last_error')}")
    for name, section in snap.get("sections_failed", {}).items():
        add("warning", f"{name} unavailable: {section}")
    return sorted(problems, key=lambda p: p["severity"] != "critical")


def readiness(snap: dict, refresh_seconds: float) -> tuple[bool, list[str]]:
    """Ready to take traffic: a fresh snapshot, a writable index, enough writable drives."""
    reasons = []
    age = time.time() - snap.get("refreshed_at", 0)
    if age > max(10.0, 5 * refresh_seconds):
        reasons.append(f"status snapshot is {age:.0f}s old")
    index = snap["index"]
    if not index.get("readable"):
        reasons.append(f"index unreachable: {index.get('error')}")
    elif not index.get("writable"):
        reasons.append(f"index not writable: {index.get('error')}")
    quorum = snap.get("write_quorum", 1)
    usable = sum(1 for d in snap["drives"] if d["state"] == "ok")
    if usable < quorum:
        reasons.append(f"{usable} writable drive(s), {quorum} needed")
    return not reasons, reasons


class StatusKeeper:
    """Keeps one worker's snapshot current. ``sections`` are extra blocking readers (alert
    outbox, time series) whose results go into the snapshot under their names."""

    def __init__(
        self,
        config: Config,
        node: NodeInfo,
        index: Callable[[], Index],
        providers: list[OpsProvider],
        sections: dict[str, Callable[[], dict]],
        workers: Callable[[], Any],
        background_state: Callable[[Any], dict],
        worker_state: Callable[[], dict],
    ) -> None:
        self.config = config
        self.node = node
        self.index = index
        self.providers = providers
        self.sections = sections
        self.workers = workers
        self.background_state = background_state
        self.worker_state = worker_state
        self._drive_calls = {
            f"d{i}": BoundedCall(f"drive{i}") for i in range(len(config.data_dirs))
        }
        self._section_calls = {name: BoundedCall(name) for name in sections}
        self._background_call = BoundedCall("background")
        self._counts: dict = {}
        self._durable: dict = {}  # the index's view for the providers: repair queue, damage
        self.snapshot: dict = self._assemble(
            [],
            {"readable": False, "error": "not checked yet", "state": "unknown"},
            {},
            {name: {} for name in sections},
        )
        self.snapshot["refreshed_at"] = 0.0

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status refresh failed")
            await asyncio.sleep(self.config.status_refresh_seconds)

    async def refresh(self) -> dict:
        drives = await asyncio.gather(
            *(
                self._drive(store_id, d)
                for store_id, d in zip(self._drive_calls, self.config.data_dirs, strict=True)
            )
        )
        index = await self._index()
        background = await self._background()
        sections: dict[str, dict] = {}
        for name, reader in self.sections.items():
            ok, value = await self._section_calls[name](FILE_TIMEOUT, reader)
            sections[name] = value if ok else {"error": value}
        self.snapshot = self._assemble(list(drives), index, background, sections)
        return self.snapshot

    async def _drive(self, store_id: str, data_dir: str) -> dict:
        ok, value = await self._drive_calls[store_id](
            DRIVE_TIMEOUT, check_drive, store_id, data_dir
        )
        if ok:
            return value
        return {
            "id": store_id,
            "path": data_dir,
            "state": "down",
            "reason": f"check failed: {value}",
            "total_bytes": None,
            "free_bytes": None,
            "used_bytes": None,
            "free_percent": None,
        }

    async def _index(self) -> dict:
        try:
            index = self.index()
            value = await asyncio.wait_for(index.probe(INDEX_TIMEOUT - 0.5), INDEX_TIMEOUT)
        except Exception as e:  # never raised by an engine; a stuck one is timed out here
            index, value = None, {"readable": False, "writable": False, "error": _why(e)}
        if index is not None and value.get("readable"):
            # Kept totals and the queues, never a scan: every refresh (the corruption alert
            # and the providers read them from here).
            try:
                counts = await asyncio.wait_for(
                    index.status_counts(INDEX_TIMEOUT - 0.5, CORRUPT_EXAMPLES), INDEX_TIMEOUT
                )
            except Exception as e:
                value["count_error"] = f"counting failed: {_why(e)}"
            else:
                counts = dict(counts)
                self._durable = {k: counts.pop(k) for k in DURABLE_KEYS if k in counts}
                self._counts = counts
            value["providers"] = (
                {p.name: call(p, "from_index", self._durable) for p in self.providers}
                if self._durable
                else {}
            )
        value.update(self._counts)
        value["checked_at"] = time.time()
        value["state"] = (
            "ok"
            if value.get("writable")
            else ("not writable" if value.get("readable") else "unreachable")
        )
        return value

    async def _background(self) -> dict:
        """Publish this process's background-worker state if it runs them; read the file."""
        path = self.config.ops_path / BACKGROUND_FILE
        workers = self.workers()
        if workers is not None and getattr(workers, "leader", False):
            state = {
                "pid": os.getpid(),
                "written_at": time.time(),
                **self.background_state(workers),
            }
            await self._background_call(
                FILE_TIMEOUT, write_atomic, path, json.dumps(state).encode()
            )
        ok, value = await self._background_call(FILE_TIMEOUT, read_json_file, path)
        if not ok:
            return {"state": "unknown", "error": value}
        if value is None:
            return {"state": "unknown", "error": "no background worker has reported yet"}
        age = time.time() - value.get("written_at", 0)
        value["age_seconds"] = round(age, 1)
        value["state"] = "stale" if age > BACKGROUND_STALE else "ok"
        return value

    def _assemble(self, drives: list[dict], index: dict, background: dict, sections: dict) -> dict:
        provided = {name: dict(v) for name, v in (index.get("providers") or {}).items()}
        for name, section in (background.get("providers") or {}).items():
            if isinstance(section, dict):
                # One section (repair) has parts from both: the queue from the index, the
                # worker's progress from the background process. Merge, never replace.
                target = provided.setdefault(name, {})
                for key, value in section.items():
                    if isinstance(value, dict) and isinstance(target.get(key), dict):
                        target[key] = {**target[key], **value}
                    else:
                        target[key] = value
        for p in self.providers:
            provided.setdefault(p.name, {}).update(call(p, "live"))
        quorum = 1
        for data in provided.values():
            for store_id, state in (data.get("drives") or {}).items():
                for d in drives:
                    if (
                        d["id"] == store_id
                        and state.get("state", "ok") not in HEALTHY
                        and d["state"] == "ok"
                    ):
                        d.update(state=state["state"], reason=state.get("reason"))
            # Stores the filesystem checks cannot see (an external S3 back-end: its health
            # is this process's circuit breaker, its capacity its quota).
            known = {d["id"] for d in drives}
            for name, state in (data.get("drives") or {}).items():
                if name in known or "kind" not in state:
                    continue
                total, free = state.get("total_bytes"), state.get("free_bytes")
                drives.append(
                    {
                        "id": name,
                        "kind": state["kind"],
                        "path": state.get("path"),
                        "state": "ok" if state.get("state") in HEALTHY else state.get("state"),
                        "reason": state.get("reason") if state.get("state") != "up" else None,
                        "total_bytes": total,
                        "free_bytes": free,
                        "used_bytes": total - free
                        if total is not None and free is not None
                        else None,
                        "free_percent": round(100.0 * free / total, 2) if total else None,
                    }
                )
                known.add(name)
            quorum = max(quorum, int(data.get("write_quorum", 1)))
        snap = {
            "refreshed_at": time.time(),
            "node": self._node(),
            "index": {k: v for k, v in index.items() if k != "providers"},
            "drives": drives,
            # Holdfast's own data (every copy) next to the drives' size and free space, which
            # count whatever else shares the filesystems.
            "capacity": {**_capacity(drives), "data_bytes": index.get("copies_bytes")},
            "write_quorum": quorum,
            "repair": _merged(provided, "repair"),
            "scrub": _merged(provided, "scrub"),
            "lifecycle": _merged(provided, "lifecycle"),
            "gc": {**background.get("gc", {}), "queued": index.get("gc_queue")},
            "corruption": {
                "objects": index.get("corrupt_objects"),
                "examples": index.get("corrupt_examples", []),
                **_merged(provided, "corruption", unavailable=False),
            },
            "background": {
                k: background.get(k)
                for k in ("state", "pid", "age_seconds", "error")
                if k in background
            },
            "providers": provided,
            "request_log": self.worker_state().get("request_log", {}),
            "config": config_summary(self.config),
        }
        failed = {}
        for name, section in sections.items():
            snap[name] = section
            if "error" in section:
                failed[name] = section["error"]
        snap["sections_failed"] = failed
        snap["problems"] = assess(snap, self.config)
        severities = {p["severity"] for p in snap["problems"]}
        snap["state"] = (
            "critical" if "critical" in severities else ("degraded" if severities else "ok")
        )
        return snap

    def _node(self) -> dict:
        return {
            "hostname": self.node.hostname,
            "version": self.node.version,
            "boot_id": self.node.boot_id,
            "started": self.node.started,
            "previous_shutdown": self.node.previous_shutdown,
            "supervisor_pid": self.node.supervisor_pid,
            "worker_pid": os.getpid(),
        }

    def close(self) -> None:
        calls = [
            self._background_call,
            *self._drive_calls.values(),
            *self._section_calls.values(),
        ]
        for bounded in calls:
            bounded.close()


def _capacity(drives: list[dict]) -> dict:
    present = [d for d in drives if d.get("total_bytes") is not None]
    return {
        "total_bytes": sum(d["total_bytes"] for d in present),
        "free_bytes": sum(d["free_bytes"] for d in present),
        "used_bytes": sum(d["used_bytes"] for d in present),
        "drives_ok": sum(1 for d in drives if d["state"] == "ok"),
        "drives": len(drives),
    }


def _merged(provided: dict[str, dict], key: str, unavailable: bool = True) -> dict:
    """One section (repair, scrub) from whichever providers report it."""
    out: dict = {}
    for data in provided.values():
        section = data.get(key)
        if isinstance(section, dict):
            out.update(section)
    if out:
        return {"available": True, **out} if unavailable else out
    if not unavailable:
        return {}
    return {
        "available": False,
        "reason": "no provider reports it (repair and scrub arrive with issue 4)",
    }
