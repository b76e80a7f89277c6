"""Running the HTTP server: uvicorn with httptools and uvloop, one process per core.

docs/http-stack.md records why this stack was chosen and what it measured. The supervisor
binds the listening socket once, without SO_REUSEPORT, and hands it to every worker process
(and to each restarted one): no other program, and no second Holdfast, can bind the same
port while this node runs, so clients can never be split between two unrelated stores.
Each worker builds its own app, index connections and threads from the configuration passed
to it (holdfast/worker.py). The supervisor restarts a worker that dies, with backoff.

Every child (workers, the index committer, the cluster agent) is forked from one forkserver
that has the workers' code imported already (:func:`start_forkserver`), not started as a
fresh interpreter that imports it all again: see docs/failure-testing.md, "Restart at scale".
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import shutil
import signal
import socket
import sys
import time
import types
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess

from holdfast.children import ParentState, inherit, run_cluster_agent, run_index_committer
from holdfast.config import CONFIG_ENV, Config
from holdfast.index.committer import COMMITTER_ENV, COMMITTER_PROCESS_NAME, set_process_name
from holdfast.workers.limits import Backoff

log = logging.getLogger("holdfast.server")

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's (holdfast/ops/metrics.py)
# What the forkserver imports before it forks any child: the worker's whole import graph
# (uvicorn, the S3 app, the service layer, the index, prometheus-client, awscrt) and the
# committer's. Each child then starts with it in memory, shared copy-on-write.
# The list is what a worker imports from its entry point to its first answer (the engine's
# modules are imported when the index is opened, the ops runtime and uvicorn's lifespan and
# WebSocket protocol classes when the app starts); tests/e2e/test_startup_imports.py fails if
# a worker or the committer imports any of them itself.
PRELOAD = [
    "holdfast.server",
    "holdfast.worker",
    "holdfast.s3.app",
    "holdfast.ops.runtime",
    "holdfast.workers.health",
    "holdfast.cluster.status",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.websockets.auto",
]
PRELOAD_SQLITE = ["holdfast.index.sqlite_engine"]  # the workers' and the committer's
PRELOAD_POSTGRES = ["holdfast.index.postgres.engine"]
# A cluster node's workers open the other nodes' drives over mutual TLS; its agent too.
PRELOAD_CLUSTER = [
    "holdfast.cluster.node",
    "holdfast.cluster.agent",
    "holdfast.cluster.remote",
    "holdfast.net.client",
    "holdfast.net.tls",
]

GRACEFUL_SHUTDOWN_SECONDS = 5
STABLE_WORKER_SECONDS = 60.0  # a process that ran this long before dying was not crash-looping
WORKER_NAME = "holdfast-worker"
COMMITTER_NAME = COMMITTER_PROCESS_NAME
AGENT_NAME = "holdfast-cluster"
BACKLOG = 2048
# glibc malloc settings the workers start with (an operator's own values are kept). Large
# bodies move in 1 MiB blocks; with glibc's defaults each block was a fresh mmap that the
# kernel faulted in and zeroed page by page, then unmapped on free, and the pool threads'
# extra arenas were shrunk the same way: page faults and clear_page were a quarter of a
# worker's CPU on large GETs (perf). With blocks below the mmap threshold, two arenas and
# 64 MiB kept before trimming, freed blocks are reused: GET 64 MiB went from 1.4-1.6 to
# 1.8-2.5 GB/s on the probe (docs/performance.md). Memory stays bounded: at most 64 MiB of
# free heap is kept per arena.
ALLOCATOR_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": str(4 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(64 * 1024 * 1024),
}


class PortInUse(Exception):
    """The listening address is held by another process (another Holdfast or anything else)."""


def listen(config: Config) -> socket.socket:
    """The node's one listening socket, bound by the supervisor before any worker starts.

    No SO_REUSEPORT: with it, a second server on the same port (any process of the same
    user that sets it too) would bind as well and the kernel would split clients between
    the two. SO_REUSEADDR only lets a restart bind while old connections sit in TIME_WAIT;
    it never lets two sockets listen on one port.
    """
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"{config.host}:{config.port} is already in use by another program "
                "(another Holdfast?); stop it or choose another --listen"
            ) from None
        raise PortInUse(f"cannot listen on {config.host}:{config.port}: {e.strerror}") from None
    return sock


def run_worker(config_json: str, parent: ParentState, sock: socket.socket) -> None:
    """Entry point of one worker process; ``sock`` is the supervisor's listening socket
    (multiprocessing passes the descriptor to the child). The HTTP server is imported by
    the forkserver and the workers, not by the supervisor (holdfast/worker.py)."""
    inherit(parent)
    set_process_name(WORKER_NAME)
    from holdfast.worker import run

    run(config_json, sock)


@contextlib.contextmanager
def only_target_imports() -> Iterator[None]:
    """While a child process is started: hide the program's ``__main__`` from multiprocessing.

    A ``spawn``ed child first imports the parent's main module again (as ``__mp_main__``), in
    case the function it runs or its arguments were defined there. Here that module is
    ``holdfast.cli`` (``python -m holdfast.cli`` or the console script): every command of the
    tool, a third of a second of CPU in each worker, committer and agent of every start
    (docs/failure-testing.md, "Restart at scale"). Nothing a child runs or is given comes from
    ``__main__`` (the entry points are in this module and holdfast/children.py), so with a bare
    module in its place the child imports only the module of its entry point and what that
    needs. Restored before returning: ``Process.start`` reads it synchronously.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_scratch: str | None = None  # the metrics directory the forkserver imports with (see below)


def preload_modules(config: Config) -> list[str]:
    """The modules the forkserver imports for this node's children."""
    return (
        PRELOAD
        + (PRELOAD_POSTGRES if config.index_dsn else PRELOAD_SQLITE)
        + (PRELOAD_CLUSTER if config.cluster_listen else [])
    )


def start_forkserver(config: Config) -> None:
    """Start the forkserver the node's children are forked from, and return at once: it
    imports their code (:data:`PRELOAD`, half a CPU-second) while the supervisor opens and
    checks the index, instead of each worker, the committer and the agent importing it all
    again, one after the other on a small machine, once the supervisor is done.

    Called as early as the configuration is known; the supervisor calls it again (a no-op
    while the forkserver runs; multiprocessing starts a new one if it has died)."""
    global _scratch
    for name, value in ALLOCATOR_ENV.items():
        os.environ.setdefault(name, value)  # read by glibc when the forkserver starts
    if _scratch is None:
        # Left by a start that failed before it forked a child: the forkserver may still
        # have been importing, so it was not removed then.
        _scratch = str(config.ops_path / "metrics.preload")
        shutil.rmtree(_scratch, ignore_errors=True)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload_modules(config))
    with _forkserver_launch():
        multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def _forkserver_launch() -> Iterator[None]:
    """What the forkserver must be started with, if it is started within this block (by
    :func:`start_forkserver`, or by multiprocessing when a child is started after the
    forkserver died); the supervisor's own state is restored afterwards.

    * SIGTERM ignored: ``kill`` of the node's process group must reach the supervisor and
      the workers, which stop gracefully, and not kill the forkserver under them (the
      supervisor would lose their exit status and stop waiting for them). The forkserver
      exits when the supervisor does; each child takes SIGTERM's default back
      (:func:`holdfast.children.inherit`).
    * prometheus-client picks its multiprocess mode when it is imported, and then opens its
      files, named by process id, in PROMETHEUS_MULTIPROC_DIR. The node's metrics directory
      may not be prepared yet (the supervisor empties it later), so the forkserver imports
      with a scratch directory of its own next to it, removed once it has forked a child
      (when it cannot be importing any more); each child takes the node's directory from
      the supervisor's environment, and prometheus-client reopens its files under the
      child's own process id on first use.
    * The supervisor's ``__main__`` hidden, as for any child (:func:`only_target_imports`).
    """
    if _scratch is None:
        raise RuntimeError("start_forkserver() first")
    os.makedirs(_scratch, exist_ok=True)
    saved_env = os.environ.get(METRICS_ENV)
    os.environ[METRICS_ENV] = _scratch
    saved_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with only_target_imports():
            yield
    finally:
        signal.signal(signal.SIGTERM, saved_term)
        if saved_env is None:
            os.environ.pop(METRICS_ENV, None)
        else:
            os.environ[METRICS_ENV] = saved_env


def _drop_scratch() -> None:
    """After a child was forked: the forkserver has imported everything it will."""
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)


def wants_committer(config: Config) -> bool:
    """One committer serves all the workers; with one worker there is nothing to share.
    HOLDFAST_INDEX_COMMITTER=0 turns it off (each worker then commits its own writes)."""
    if config.index_dsn:  # PostgreSQL commits for every process and node itself
        return False
    return config.worker_count() > 1 and os.environ.get(COMMITTER_ENV, "1") != "0"


class Supervisor:
    """Starts the workers (and the index committer they share), restarts any that dies (with
    backoff, never in a tight loop) and stops them all on SIGTERM/SIGINT. Restarts are
    scheduled, not slept through: one process waiting out its backoff never holds up another's
    restart, nor a stop."""

    def __init__(self, config: Config, sock: socket.socket | None = None) -> None:
        self.config = config
        self.sock = sock  # the listening socket every worker serves; bound in run() if None
        self.context = multiprocessing.get_context("forkserver")
        self.workers: list[multiprocessing.process.BaseProcess] = []
        self.committer: multiprocessing.process.BaseProcess | None = None
        self.agent: multiprocessing.process.BaseProcess | None = None  # cluster nodes only
        self.stopping = False
        # Each kind backs off on its own: a crash-looping committer must not slow down the
        # restart of a worker, nor the other way round.
        self.backoff = {
            WORKER_NAME: Backoff(base=0.5, cap=30.0),
            COMMITTER_NAME: Backoff(base=0.5, cap=30.0),
            AGENT_NAME: Backoff(base=0.5, cap=30.0),
        }
        self.started: dict[int, float] = {}  # process sentinel -> when it was started
        self.restarts: dict[int | str, float] = {}  # worker index or "committer" -> when

    def _spawn(self, target: Callable[..., None] = run_worker) -> BaseProcess:
        parent = ParentState.now()
        if target is run_worker:
            name, args = WORKER_NAME, (self.config.to_env(), parent, self.sock)
        elif target is run_cluster_agent:
            name, args = AGENT_NAME, (self.config.to_env(), parent)
        else:
            name, args = COMMITTER_NAME, (self.config.to_env(), parent)
        proc = self.context.Process(target=target, args=args, name=name)
        with _forkserver_launch():
            proc.start()  # returns once the forkserver has forked the child
        _drop_scratch()
        self.started[proc.sentinel] = time.monotonic()
        return proc

    def _restart_delay(self, proc: BaseProcess) -> float:
        """Backoff between restarts of a crashing process; one that had run for a while
        before it died starts the backoff over, so one crash a day never waits 30 s."""
        backoff = self.backoff[getattr(proc, "name", WORKER_NAME)]
        ran = time.monotonic() - self.started.pop(proc.sentinel, 0.0)
        if ran >= STABLE_WORKER_SECONDS:
            backoff.reset()
        return backoff.next_delay()

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _slots(self) -> dict[int | str, BaseProcess]:
        slots: dict[int | str, BaseProcess] = dict(enumerate(self.workers))
        if self.committer is not None:
            slots["committer"] = self.committer
        if self.agent is not None:
            slots["agent"] = self.agent
        return slots

    def _schedule_restarts(self) -> None:
        for slot, proc in self._slots().items():
            if slot in self.restarts or proc.is_alive():
                continue
            _stop_if_running(proc)
            delay = self._restart_delay(proc)
            log.error(
                "%s %s exited (%s); restarting in %.1fs", proc.name, proc.pid, proc.exitcode, delay
            )
            self.restarts[slot] = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot, due in list(self.restarts.items()):
            if due > now or self.stopping:
                continue
            del self.restarts[slot]
            if slot == "committer":
                self.committer = self._spawn(run_index_committer)
            elif slot == "agent":
                self.agent = self._spawn(run_cluster_agent)
            else:
                self.workers[int(slot)] = self._spawn(run_worker)

    def _wait(self) -> None:
        """Until a process exits, a restart is due, or half a second has passed (the stop
        flag is looked at after each wait)."""
        now = time.monotonic()
        timeout = min([0.5, *(max(0.0, due - now) for due in self.restarts.values())])
        alive = [p.sentinel for p in self._slots().values() if p.is_alive()]
        if alive:
            multiprocessing.connection.wait(alive, timeout=timeout)
        else:
            time.sleep(timeout)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if self.sock is None:
            self.sock = listen(self.config)
        # Started with the workers, not after them: it costs the first GET after a restart
        # ~0.15 s (it competes for the CPU while they start), but a node whose processes
        # are all up when it first answers has the memory it will keep (started a second
        # later, it showed up as 40 MiB of "growth" in the benchmark's RSS workload).
        if wants_committer(self.config):
            self.committer = self._spawn(run_index_committer)
        self.workers = [self._spawn() for _ in range(self.config.worker_count())]
        if self.config.cluster_listen:
            self.agent = self._spawn(run_cluster_agent)
        while not self.stopping:
            self._wait()
            if self.stopping:
                break
            self._schedule_restarts()
            self._restart_due()
        self._shutdown()

    def _shutdown(self) -> None:
        """Workers first (uvicorn's graceful shutdown lets in-flight writes finish through
        the committer), then the committer."""
        agent = [self.agent] if self.agent is not None else []
        for group in (self.workers + agent, [self.committer] if self.committer is not None else []):
            for proc in group:
                if proc.is_alive():
                    proc.terminate()  # SIGTERM
            deadline = time.monotonic() + GRACEFUL_SHUTDOWN_SECONDS + 2
            for proc in group:
                proc.join(max(0.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()
        if self.sock is not None:
            self.sock.close()


def _stop_if_running(proc: BaseProcess) -> None:
    """A child's exit is reported by the forkserver it was forked from; if the forkserver
    itself died (``kill -9``, the OOM killer), every child reads as exited though it still
    runs. Such a child is stopped (SIGTERM: a worker finishes its requests) before its
    replacement starts, so the node never runs extra workers, nor a second committer that
    cannot bind its socket. Only a process of the node's own process group is signalled
    (its pid may have been reused by then)."""
    pid = proc.pid
    if not pid or pid <= 0:
        return
    try:
        if os.getpgid(pid) != os.getpgid(0):
            return
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return  # exited, as reported
    log.error(
        "%s %s still runs though reported exited (the forkserver died): stopped", proc.name, pid
    )


def serve(config: Config, sock: socket.socket | None = None) -> None:
    """Run the node until SIGTERM/SIGINT. ``sock`` is the listening socket from
    :func:`listen` (bound before anything else starts, so a port in use fails the start)."""
    os.environ[CONFIG_ENV] = config.to_env()
    os.environ[COMMITTER_ENV] = "1" if wants_committer(config) else "0"
    start_forkserver(config)  # started already by ``holdfast serve``; not by every caller
    Supervisor(config, sock).run()
