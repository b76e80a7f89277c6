"""The request log: one JSON line per request, written by every worker, searched by the CLI
and the admin API.

**Several workers, no interleaving.** Each worker process writes only its own segment files
(``requests-<created ms>-<pid>.jsonl``), so no two processes ever append to the same file and
no line can be torn or interleaved, whatever its length; nothing depends on O_APPEND
atomicity, which POSIX promises for pipes (below PIPE_BUF), not for regular files. A segment
is closed when it reaches an eighth of the size cap and a new one is opened; the oldest
closed segments are then deleted until all of them fit under the cap. The deletion runs
under an ``flock`` so two workers rotating at once cannot both delete.

**Cheap on the request path.** The hook only appends the finished request to a list; this
module turns the list into lines in a background thread (see ``runtime.py``).

**No secrets.** A record is built from named fields only: never headers, never the query
string (a presigned URL carries its signature there), never a body. An error code is taken
from the error response, not its message (SignatureDoesNotMatch's body echoes the string to
sign).
"""

from __future__ import annotations

import fcntl
import heapq
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REQUEST_LOG_DIR = "requestlog"  # under the ops directory
SEGMENT_PATTERN = re.compile(r"^requests-(\d{13})-(\d+)\.jsonl$")
MIN_SEGMENT_BYTES = 64 * 1024
SEGMENTS_PER_CAP = 8

# The order of a record's fields. Records are written with these separators, so search can
# skip most lines with a substring test before parsing them.
FIELDS = (
    "time",
    "ts",
    "request_id",
    "remote",
    "access_key",
    "user",
    "operation",
    "method",
    "bucket",
    "key",
    "status",
    "error_code",
    "bytes_in",
    "bytes_out",
    "latency_ms",
    "user_agent",
    "outcome",  # "aborted", only on a response cut short (then also status_sent and aborted)
    "status_sent",
    "aborted",
    "access",
    "pid",
)


def iso_utc(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# -- writing -------------------------------------------------------------------------------


class RequestLogWriter:
    """Appends this process's lines to its own segment file. Blocking: call from a thread."""

    def __init__(self, directory: Path, max_bytes: int, pid: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(MIN_SEGMENT_BYTES, max_bytes // SEGMENTS_PER_CAP)
        self.pid = pid or os.getpid()
        self._fd: int | None = None
        self._size = 0
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, data: bytes) -> None:
        """Append whole lines; a batch larger than a segment is split at line ends across
        segments, so no segment (and so the cap) is overrun by a burst."""
        while data:
            if self._fd is None or (self._size and self._size + len(data) > self.segment_bytes):
                self._open_segment()
            cut = self._cut(data, self.segment_bytes - self._size)
            self._append(data[:cut])
            data = data[cut:]

    @staticmethod
    def _cut(data: bytes, room: int) -> int:
        if len(data) <= room:
            return len(data)
        cut = data.rfind(b"\n", 0, room) + 1
        return cut or (data.find(b"\n") + 1) or len(data)

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def _open_segment(self) -> None:
        self.close()
        stamp = int(time.time() * 1000)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        while True:  # two segments opened within one millisecond get distinct names
            try:
                self._fd = os.open(
                    self.directory / f"requests-{stamp:013d}-{self.pid}.jsonl", flags, 0o600
                )
                break
            except FileExistsError:
                stamp += 1
        self._size = 0
        enforce_cap(self.directory, self.max_bytes)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def segments(directory: Path) -> list[Path]:
    """Segment files, oldest first."""
    try:
        names = [n for n in os.listdir(directory) if SEGMENT_PATTERN.match(n)]
    except FileNotFoundError:
        return []
    return [directory / n for n in sorted(names)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def enforce_cap(directory: Path, max_bytes: int) -> list[Path]:
    """Delete the oldest segments until the rest fit in ``max_bytes``. The newest segment of
    every live process is its open file and is never deleted."""
    fd = os.open(directory / ".rotate.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        files = []
        newest: dict[int, Path] = {}
        for path in segments(directory):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            pid = int(SEGMENT_PATTERN.match(path.name).group(2))
            newest[pid] = path
            files.append((path, size))
        protected = {p for pid, p in newest.items() if pid_alive(pid)}
        total = sum(size for _, size in files)
        removed = []
        for path, size in files:
            if total <= max_bytes:
                break
            if path in protected:
                continue
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        return removed
    finally:
        os.close(fd)


# -- searching -----------------------------------------------------------------------------


@dataclass
class LogQuery:
    since: float | None = None
    until: float | None = None
    bucket: str | None = None
    key_prefix: str | None = None
    access_key: str | None = None
    status: str | None = None  # "404", or a class such as "5xx"
    request_id: str | None = None
    operation: str | None = None
    limit: int = 100
    # Paging: only records older than this (ts, request_id), the last one a page showed.
    # A cursor rather than an offset, so records arriving meanwhile do not shift the pages.
    before: tuple[float, str] | None = None

    def needles(self) -> list[str]:
        """Substrings every matching line must contain: a cheap test before json.loads."""
        out = []
        if self.request_id:
            out.append('"request_id":' + json.dumps(self.request_id))
        if self.bucket:
            out.append('"bucket":' + json.dumps(self.bucket))
        if self.access_key:
            out.append('"access_key":' + json.dumps(self.access_key))
        if self.key_prefix:
            out.append('"key":' + json.dumps(self.key_prefix)[:-1])
        if self.operation:
            out.append('"operation":' + json.dumps(self.operation))
        return out

    def matches(self, r: dict) -> bool:
        ts = r.get("ts", 0.0)
        if self.since is not None and ts < self.since:
            return False
        if self.until is not None and ts > self.until:
            return False
        if self.before is not None and (ts, r.get("request_id") or "") >= self.before:
            return False
        if self.bucket and r.get("bucket") != self.bucket:
            return False
        if self.key_prefix and not (r.get("key") or "").startswith(self.key_prefix):
            return False
        if self.access_key and r.get("access_key") != self.access_key:
            return False
        if self.request_id and r.get("request_id") != self.request_id:
            return False
        if self.operation and r.get("operation") != self.operation:
            return False
        return self.status is None or status_matches(self.status, r.get("status"))


def status_matches(wanted: str, status: int | None) -> bool:
    if status is None:
        return False
    wanted = wanted.lower()
    if len(wanted) == 3 and wanted.endswith("xx"):
        return str(status)[0] == wanted[0]
    return str(status) == wanted


def _lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from f
    except FileNotFoundError:  # rotated away while searching
        return


def search(directory: Path, query: LogQuery) -> list[dict]:
    """The newest ``query.limit`` matching records, newest first. Blocking."""
    needles = query.needles()
    heap: list[tuple[float, str, int, dict]] = []
    seq = 0
    for path in segments(directory):
        if query.since is not None:
            try:
                if path.stat().st_mtime < query.since:
                    continue  # written to for the last time before the window opened
            except FileNotFoundError:
                continue
        for line in _lines(path):
            if not all(n in line for n in needles):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if not query.matches(record):
                continue
            seq += 1
            # Ordered by (ts, request_id), the order the paging cursor follows.
            item = (record.get("ts", 0.0), record.get("request_id") or "", seq, record)
            if len(heap) < query.limit:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    return [r for _, _, _, r in sorted(heap, reverse=True)]


def page_cursor(records: list[dict], query: LogQuery) -> str | None:
    """The ``before`` value for the next (older) page, or None if this page was the last."""
    if len(records) < query.limit or not records:
        return None
    last = records[-1]
    return f"{last.get('ts', 0.0)!r},{last.get('request_id') or ''}"


def parse_cursor(text: str) -> tuple[float, str]:
    ts, sep, request_id = text.partition(",")
    try:
        value = float(ts)
    except ValueError:
        value = float("nan")
    if not sep or value != value:
        raise ValueError(f"not a paging cursor: {text!r}")
    return value, request_id


# -- time arguments ------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_when(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``15m`` / ``2h`` / ``1d`` (that long ago), an epoch number, an
    ISO 8601 time (local time unless it has an offset or Z) or ``HH:MM[:SS]`` today."""
    now = time.time() if now is None else now
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    if re.fullmatch(r"\d{9,}(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", text):
        today = datetime.fromtimestamp(now).date().isoformat()
        text = f"{today}T{text}"
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.astimezone()  # local time; overflows at the ends of the calendar
        return dt.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(
            f"cannot read time {text!r}: use 15m, 2h, 1d, HH:MM, an ISO 8601 time or epoch seconds"
        ) from None


__all__ = [
    "FIELDS",
    "LogQuery",
    "RequestLogWriter",
    "enforce_cap",
    "iso_utc",
    "page_cursor",
    "parse_cursor",
    "parse_when",
    "search",
]
