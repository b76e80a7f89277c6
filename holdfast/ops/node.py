"""Start-up and shutdown bookkeeping of a node, done once by the supervisor process.

Every worker process builds its own app, but some things belong to the node as a whole: its
boot id and start time (uptime, the restart alert), whether the previous run ended cleanly,
and the directory where the workers' Prometheus counters live. The supervisor prepares these
before any worker starts. Nothing here imports prometheus-client: the multiprocess directory
must be in the environment before that library is first imported in a process, because it
picks its value storage at import time.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from holdfast import __version__
from holdfast.config import Config

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
NODE_FILE = "node.json"
RUNNING_MARKER = "running"


@dataclass(frozen=True)
class NodeInfo:
    """Facts about this run of the node, shared by every worker through ``node.json``."""

    boot_id: str
    started: float
    supervisor_pid: int
    version: str
    hostname: str
    previous_shutdown: str  # "clean", "unclean" (killed or crashed) or "first start"


def metrics_dir(config: Config) -> Path:
    return config.ops_path / "metrics"


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class NodeLock:
    """An exclusive lock on the ops directory, held by the supervisor for its lifetime, so a
    second ``holdfast serve`` on the same data cannot wipe the first one's metrics."""

    def __init__(self, ops: Path) -> None:
        self.fd = os.open(ops / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise SystemExit(
                f"holdfast: another 'holdfast serve' is running on {ops.parent}"
            ) from None

    def release(self) -> None:
        os.close(self.fd)


def prepare_node(config: Config) -> tuple[NodeInfo, NodeLock]:
    """Lock the ops directory, record this boot, and give the workers an empty metrics dir.

    The metrics directory is emptied because its files hold the previous run's counters under
    process ids that may be reused; a fresh run starts its counters at zero, as Prometheus
    expects after a restart.
    """
    ops = config.ops_path
    ops.mkdir(parents=True, exist_ok=True)
    lock = NodeLock(ops)
    marker = ops / RUNNING_MARKER
    if marker.exists():
        previous = "unclean"
    elif (ops / NODE_FILE).exists():
        previous = "clean"
    else:
        previous = "first start"
    marker.write_text(str(os.getpid()))
    info = NodeInfo(
        boot_id=secrets.token_hex(8),
        started=time.time(),
        supervisor_pid=os.getpid(),
        version=__version__,
        hostname=socket.gethostname(),
        previous_shutdown=previous,
    )
    write_atomic(ops / NODE_FILE, json.dumps(asdict(info)).encode())
    mdir = metrics_dir(config)
    shutil.rmtree(mdir, ignore_errors=True)
    mdir.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(mdir)
    return info, lock


def finish_node(config: Config, lock: NodeLock) -> None:
    """A clean stop: the next start will not report an unclean shutdown."""
    (config.ops_path / RUNNING_MARKER).unlink(missing_ok=True)
    lock.release()


def load_node_info(config: Config) -> NodeInfo:
    """This boot's facts as the supervisor recorded them; a worker started without the
    supervisor (tests, a bare uvicorn) makes up its own."""
    try:
        data = json.loads((config.ops_path / NODE_FILE).read_text())
        return NodeInfo(**data)
    except (OSError, ValueError, TypeError):
        return NodeInfo(
            boot_id=secrets.token_hex(8),
            started=time.time(),
            supervisor_pid=os.getppid(),
            version=__version__,
            hostname=socket.gethostname(),
            previous_shutdown="unknown",
        )
