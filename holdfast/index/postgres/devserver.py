"""A PostgreSQL of its own, from the machine's binaries: for the tests and ``holdfast cluster
dev``, never for production (there the operator runs PostgreSQL, e.g. on Patroni).

``initdb`` and ``postgres`` refuse to run as root, so when Holdfast runs as root the server
runs as the ``postgres`` user, and its data directory must be reachable by that user: every
directory above it must let ``postgres`` through. :func:`unreachable_for` names the first one
that does not, so the caller can say in one line what to change instead of showing
initdb's "could not change directory" later.

The server listens on 127.0.0.1 and on a unix socket inside its own directory, trusts every
local connection (it is a development server), and leads its own process group so a caller
can stop it whole.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

# Debian's layout (postgresql-15); a newer major version is taken when that is what's there.
BIN_GLOB = "/usr/lib/postgresql/*/bin"
RUN_AS = "postgres"
# Test and development settings: durability is not the point, start-up and speed are.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _die_with_parent() -> None:
    """In the child, after its user was set (a change of credentials would clear it): an
    immediate shutdown (SIGQUIT) of the postmaster when the parent dies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGQUIT, 0, 0, 0)


class DevServerError(RuntimeError):
    """The development PostgreSQL could not be set up or started (one line says why)."""


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: $HOLDFAST_PG_BIN, Debian's
    newest version, or the PATH."""
    env = os.environ.get("HOLDFAST_PG_BIN")
    candidates = [env] if env else []
    candidates += sorted(glob.glob(BIN_GLOB), key=_version_key, reverse=True)
    for d in candidates:
        if d and (Path(d) / "initdb").exists() and (Path(d) / "postgres").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(initdb).parent
    return None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_for(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first directory from / down to ``path`` (which must exist) that the user
    ``uid`` (groups ``gids``) cannot search, or None when every one lets it through."""
    path = path.resolve()
    for d in [*reversed(path.parents), path]:
        st = d.stat()
        if st.st_uid == uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in gids:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return d
    return None


@dataclass
class DevPostgres:
    """One PostgreSQL server in ``root``: ``root/data`` (the cluster, kept across starts),
    ``root/socket`` (its unix socket), ``root/postgres.log``."""

    root: Path
    port: int = 0  # 0: a free port, chosen at start
    fast: bool = True  # fsync off (tests); False keeps PostgreSQL's durable defaults
    settings: dict[str, str] = field(default_factory=dict)
    # The server goes down with the process that started it, even one killed with SIGKILL
    # (a test run cut short must not leave PostgreSQL servers behind).
    die_with_parent: bool = True
    proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    # -- starting and stopping ----------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> DevPostgres:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise DevServerError(
                "PostgreSQL binaries not found (looked in /usr/lib/postgresql/*/bin and PATH); "
                "install postgresql (Debian: apt-get install postgresql) or set HOLDFAST_PG_BIN"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        user = self._user()
        if user is not None:
            self._make_reachable(user)
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bin_dir, user)
        self.socket_dir.mkdir(exist_ok=True)
        if user is not None:
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)
        if not self.port:
            self.port = free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "200",
            "shared_buffers": "128MB",
            **(FAST_SETTINGS if self.fast else {}),
            **self.settings,
        }
        argv = [str(bin_dir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
                **self._as_user(user),
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def _user(self) -> pwd.struct_passwd | None:
        """The user PostgreSQL runs as: ``postgres`` when we are root, else ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(RUN_AS)
        except KeyError:
            raise DevServerError(
                f"running as root, but there is no {RUN_AS!r} user to run PostgreSQL as "
                "(PostgreSQL refuses root); create it (useradd --system postgres) or run "
                "Holdfast as another user"
            ) from None

    @staticmethod
    def _as_user(user: pwd.struct_passwd | None) -> dict:
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _make_reachable(self, user: pwd.struct_passwd) -> None:
        gids = {user.pw_gid} | {g for g in os.getgrouplist(user.pw_name, user.pw_gid)}
        # ``root`` itself is handed to the user below; the directories above it must let
        # the user through as they are.
        blocked = unreachable_for(self.root.parent, user.pw_uid, gids)
        if blocked is not None:
            raise DevServerError(
                f"PostgreSQL runs as the {RUN_AS!r} user, which cannot enter {blocked} "
                f"(mode {blocked.stat().st_mode & 0o777:o}); choose a directory outside it "
                f"(e.g. under /tmp or /srv) or run: chmod o+x {blocked}"
            )
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o700)
        if self.log_path.exists():
            os.chown(self.log_path, user.pw_uid, user.pw_gid)

    def _initdb(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        if self.fast:
            argv.append("--no-sync")
        done = subprocess.run(argv, capture_output=True, text=True, **self._as_user(user))
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise DevServerError(f"initdb failed in {self.data}: {last[0]}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise DevServerError(
                    f"postgres exited at start (code {self.proc.returncode}); "
                    f"see {self.log_path}: {self._log_tail()}"
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2, autocommit=True):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise DevServerError(
                        f"postgres not ready after {timeout:.0f} s; see {self.log_path}"
                    ) from None
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: sessions are ended, the data stays consistent)."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None

    # -- databases ----------------------------------------------------------------------------

    def create_database(self, name: str, icu_locale: str | None = None) -> str:
        """A new, empty database; returns its DSN. ``icu_locale`` (e.g. "en-US") makes that
        the database's default collation instead of C."""
        locale = f" LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}' LOCALE 'C'" if icu_locale else ""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'{locale}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
