"""A Patroni-managed PostgreSQL cluster on this machine, for the index failover tests and
bench/failover.py: one etcd (Debian's ``etcd-server``, installed with apt-get when missing)
and two or three Patroni members (``patroni[etcd3]`` from PyPI, in the ``test`` extra), each
running the machine's PostgreSQL binaries as the ``postgres`` user, since initdb and
postgres refuse root.

Everything listens on 127.0.0.1 on free ports and lives in one temporary directory. The
settings are the ones docs/cluster.md recommends for an index (``synchronous_mode``, so an
acknowledged commit is on two servers; ``primary_start_timeout: 0``, so a crashed primary is
failed over rather than restarted in place), with the shortest timings Patroni accepts.
``fsync`` is off because the tests kill processes, never the machine: the kernel keeps what
was written, and a commit is still acknowledged only once the synchronous standby has it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from holdfast.index.postgres.devserver import RUN_AS, find_bin_dir, free_port

ETCD = "etcd"


class PatroniUnavailable(RuntimeError):
    """etcd or Patroni cannot be had on this machine (the message says why)."""


def _apt(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-q", "-y", *args]
    try:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_etcd() -> str:
    """Debian's etcd (package ``etcd-server``), installed with apt-get if it is missing."""
    found = shutil.which(ETCD)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise PatroniUnavailable("etcd is missing; install it: apt-get install etcd-server")
    if not _apt("install", "etcd-server"):
        _apt("update")
        if not _apt("install", "etcd-server"):
            raise PatroniUnavailable("etcd is missing and 'apt-get install etcd-server' failed")
    found = shutil.which(ETCD)
    if not found:
        raise PatroniUnavailable("apt-get installed etcd-server but there is no etcd on PATH")
    return found


# Patroni runs as the ``postgres`` user when the tests run as root, so it needs a Python that
# this user can execute: the project's own often cannot be (pyenv under /root, mode 0700).
# It gets a virtualenv of its own, made once from the first Python that user can run, and
# kept in a cache directory for the next runs.
PATRONI_REQUIREMENT = ["patroni[etcd3]>=4.0", "psycopg[binary]>=3.2"]


def _cache_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/cache/holdfast-test/patroni-venv")
    return Path.home() / ".cache" / "holdfast-test" / "patroni-venv"


def _runs_as(user: pwd.struct_passwd | None, argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=120, cwd="/", **_as_user(user))
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _as_user(user: pwd.struct_passwd | None) -> dict:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _run_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL and Patroni run as: ``postgres`` when we are root, else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PatroniUnavailable(
            f"running as root, but there is no {RUN_AS!r} user to run PostgreSQL as"
        ) from None


def ensure_patroni() -> str:
    """The Python that runs Patroni (with ``patroni[etcd3]`` from PyPI): a virtualenv made
    and filled with pip on first use."""
    user = _run_user()
    venv = _cache_dir()
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import patroni.dcs.etcd3, psycopg"]
    if python.exists() and _runs_as(user, check):
        return str(python)
    bases = [os.path.realpath(sys.executable), "/usr/bin/python3"]
    usable = [b for b in bases if Path(b).exists() and _runs_as(user, [b, "-c", "import venv"])]
    if not usable and shutil.which("apt-get") and os.geteuid() == 0:
        _apt("install", "python3-venv")  # Debian's python3 without its venv module
        usable = [b for b in bases if _runs_as(user, [b, "-c", "import venv"])]
    if not usable:
        raise PatroniUnavailable(
            f"no Python that the {RUN_AS!r} user can run was found to run Patroni with "
            f"(tried {', '.join(bases)}); install python3 and python3-venv"
        )
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [usable[0], "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *PATRONI_REQUIREMENT],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            raise PatroniUnavailable(f"{' '.join(argv[:4])} failed: {last[0]}")
    if not _runs_as(user, check):
        raise PatroniUnavailable(f"Patroni was installed in {venv} but does not import there")
    return str(python)


def _signal_on_parent_death(sig: int):
    """A preexec_fn: the child gets ``sig`` when the process that started it dies, so a
    test run cut short leaves no etcd or Patroni behind (Patroni stops its PostgreSQL on
    SIGTERM)."""

    def preexec() -> None:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG

    return preexec


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:  # Patroni answers 503 on a non-primary's /primary
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {}


@dataclass
class Member:
    name: str
    dir: Path
    pg_port: int
    api_port: int
    proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def role(self) -> str | None:
        """'primary', 'replica' or None (Patroni's REST API, or nothing when it is down)."""
        try:
            code, body = _get_json(f"http://127.0.0.1:{self.api_port}/patroni", 1.0)
        except OSError:
            return None
        if code >= 500 and not body:
            return None
        return body.get("role") if body.get("state") == "running" else None


@dataclass
class PatroniCluster:
    """etcd plus ``members`` Patroni nodes under ``root`` (which the ``postgres`` user
    must be able to enter: use a directory under /tmp)."""

    root: Path
    members: int = 2
    scope: str = "holdfast"
    etcd_proc: subprocess.Popen | None = None
    etcd_port: int = 0
    python: str = sys.executable
    nodes: list[Member] = field(default_factory=list)

    # -- starting and stopping ----------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> PatroniCluster:
        etcd = ensure_etcd()
        self.python = ensure_patroni()
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PatroniUnavailable("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin)")
        user = _run_user()
        self.root.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o755)
        try:
            self._start_etcd(etcd, user)
            for i in range(self.members):
                member = Member(f"pg{i}", self.root / f"pg{i}", free_port(), free_port())
                self.nodes.append(member)
                self._start_member(member, bin_dir, user)
                if i == 0:  # the first one bootstraps; the others then clone it
                    self.wait_primary(timeout)
            self.wait_synchronous(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_etcd(self, etcd: str, user: pwd.struct_passwd | None) -> None:
        self.etcd_port, peer = free_port(), free_port()
        data = self.root / "etcd"
        client_url, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        argv = [
            etcd, "--name", "holdfast-etcd", "--data-dir", str(data),
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"holdfast-etcd={peer_url}", "--initial-cluster-state", "new",
            "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}",
        ]  # fmt: skip
        with open(self.root / "etcd.log", "ab") as log:
            self.etcd_proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_signal_on_parent_death(signal.SIGTERM),
            )
        deadline = time.monotonic() + 30
        while True:
            if self.etcd_proc.poll() is not None:
                raise PatroniUnavailable(f"etcd exited at start; see {self.root / 'etcd.log'}")
            try:
                if _get_json(f"{client_url}/health", 1.0)[1].get("health") == "true":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise PatroniUnavailable(f"etcd not healthy after 30 s; see {self.root}/etcd.log")
            time.sleep(0.1)

    def _config(self, member: Member, bin_dir: Path) -> dict:
        trust = [
            "local all all trust",
            "host all all 127.0.0.1/32 trust",
            "host replication all 127.0.0.1/32 trust",
        ]
        return {
            "scope": self.scope,
            "name": member.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{member.api_port}",
                "connect_address": f"127.0.0.1:{member.api_port}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    # The shortest Patroni accepts (ttl >= 20, loop_wait + 2*retry <= ttl).
                    "ttl": 20,
                    "loop_wait": 1,
                    "retry_timeout": 5,
                    "synchronous_mode": True,
                    "primary_start_timeout": 0,
                    "maximum_lag_on_failover": 1048576,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 200,
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_log_hints": "on",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
                "pg_hba": trust,
            },
            "postgresql": {
                "listen": f"127.0.0.1:{member.pg_port}",
                "connect_address": f"127.0.0.1:{member.pg_port}",
                "data_dir": str(member.data),
                "bin_dir": str(bin_dir),
                "pgpass": str(member.dir / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "rewinder", "password": "rewinder"},
                },
                "parameters": {
                    "unix_socket_directories": str(member.dir),
                    "fsync": "off",  # processes are killed in the tests, never the machine
                    "shared_buffers": "64MB",
                },
                "pg_hba": trust,
            },
        }

    def _start_member(self, member: Member, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        member.dir.mkdir(parents=True, exist_ok=True)
        config = member.dir / "patroni.yml"
        config.write_text(json.dumps(self._config(member, bin_dir), indent=1))  # JSON is YAML
        if user is not None:
            for path in (member.dir, config):
                os.chown(path, user.pw_uid, user.pw_gid)
        member.dir.chmod(0o700)
        env = {
            **os.environ,
            "HOME": str(member.dir),
            "PATRONI_LOG_FORMAT": "%(asctime)s %(levelname)s: %(message)s",
        }
        with open(member.dir / "patroni.log", "ab") as log:
            member.proc = subprocess.Popen(
                [self.python, "-m", "patroni", str(config)],
                cwd=member.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_signal_on_parent_death(signal.SIGTERM),
                **_as_user(user),
            )

    def stop(self) -> None:
        """Patroni stops its PostgreSQL on SIGTERM; whatever is left is killed."""
        for member in self.nodes:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.send_signal(signal.SIGTERM)
        for member in self.nodes:
            if member.proc is not None:
                try:
                    member.proc.wait(20)
                except subprocess.TimeoutExpired:
                    member.proc.kill()
                    member.proc.wait(5)
            pid = member.postmaster_pid()
            if pid is not None:
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.etcd_proc is not None and self.etcd_proc.poll() is None:
            self.etcd_proc.terminate()
            try:
                self.etcd_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.etcd_proc.kill()

    # -- what the tests look at ---------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq's multi-host form: every member, and only a primary is accepted."""
        hosts = ",".join("127.0.0.1" for _ in self.nodes)
        ports = ",".join(str(m.pg_port) for m in self.nodes)
        return (
            f"host={hosts} port={ports} dbname={dbname} user=postgres "
            "target_session_attrs=read-write"
        )

    def primary(self) -> Member | None:
        primaries = [m for m in self.nodes if m.role() == "primary"]
        return primaries[0] if len(primaries) == 1 else None

    def wait_primary(self, timeout: float, other_than: Member | None = None) -> Member:
        deadline = time.monotonic() + timeout
        while True:
            member = self.primary()
            if member is not None and member is not other_than:
                try:
                    with psycopg.connect(self.dsn(), connect_timeout=2, autocommit=True):
                        return member
                except psycopg.OperationalError:
                    pass
            if time.monotonic() > deadline:
                raise PatroniUnavailable(f"no primary after {timeout:.0f} s; see {self.root}")
            time.sleep(0.2)

    def synchronous_standbys(self) -> list[str]:
        _, body = _get_json(f"http://127.0.0.1:{self.nodes[0].api_port}/cluster")
        return [m["name"] for m in body.get("members", []) if m.get("role") == "sync_standby"]

    def wait_synchronous(self, timeout: float) -> None:
        """Until a standby is synchronous (acknowledged commits are on two servers)."""
        deadline = time.monotonic() + timeout
        while not self.synchronous_standbys():
            if time.monotonic() > deadline:
                raise PatroniUnavailable(
                    f"no synchronous standby after {timeout:.0f} s; see {self.root}"
                )
            time.sleep(0.3)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def kill_primary_postgres(self) -> Member:
        """SIGKILL the primary's PostgreSQL, postmaster and backends at once, as a crash
        would. Patroni stays up on that node, sees PostgreSQL gone and, with
        ``primary_start_timeout: 0``, hands over to the synchronous standby."""
        member = self.primary()
        if member is None:
            raise PatroniUnavailable("no single primary to kill")
        pid = member.postmaster_pid()
        assert pid is not None, member
        kill_postgres(pid)
        return member


def kill_postgres(postmaster: int) -> None:
    """SIGKILL a PostgreSQL server whole. Its backends are each a session of their own,
    so the postmaster's process group does not reach them: the postmaster is stopped first
    (it forks no more), then it and every process it started are killed."""
    os.kill(postmaster, signal.SIGSTOP)
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(entry))
    for pid in [*children, postmaster]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
