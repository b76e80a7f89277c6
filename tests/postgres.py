"""A real PostgreSQL for the tests, started once per session from the machine's binaries
(holdfast/index/postgres/devserver.py: as the ``postgres`` user when the tests run as root),
with a fresh database per test or per server so no test sees another's rows.

``HOLDFAST_TEST_INDEX=postgres`` makes every test server (tests/conftest.py) use it too, so
the whole e2e suite runs on either engine.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from holdfast.index.postgres.devserver import DevPostgres, DevServerError, find_bin_dir

INDEX_ENV = "HOLDFAST_TEST_INDEX"


def whole_suite_on_postgres() -> bool:
    return os.environ.get(INDEX_ENV, "sqlite").lower() in ("postgres", "postgresql", "pg")


class SessionPostgres:
    """The session's server; :meth:`new_database` gives each user its own database."""

    def __init__(self) -> None:
        self.server: DevPostgres | None = None
        self._failed: str | None = None

    def ensure(self) -> DevPostgres:
        if self._failed:
            pytest.skip(self._failed)
        if self.server is None:
            if find_bin_dir() is None:
                self._failed = (
                    "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin); "
                    "install postgresql-15 to run the PostgreSQL tests"
                )
                if os.environ.get("CI"):
                    # CI machines have them: a missing binary there is a broken setup.
                    raise RuntimeError(self._failed)
                pytest.skip(self._failed)
            # Directly under /tmp: pytest's own tmp dirs are mode 0700 under root's, which
            # the postgres user cannot enter.
            root = Path(tempfile.mkdtemp(prefix="holdfast-test-pg-"))
            try:
                self.server = DevPostgres(root).start()
            except DevServerError as e:
                self._failed = f"could not start PostgreSQL: {e}"
                raise
        return self.server

    def new_database(self, label: str = "t", icu_locale: str | None = None) -> str:
        server = self.ensure()
        name = f"{label}_{uuid.uuid4().hex[:12]}"
        return server.create_database(name, icu_locale)

    def stop(self) -> None:
        if self.server is not None:
            root = self.server.root
            self.server.stop()
            self.server = None
            import shutil

            shutil.rmtree(root, ignore_errors=True)


# The one server of the test session (tests/conftest.py stops it at the end).
SESSION = SessionPostgres()
_DATABASES: dict[str, str] = {}


def database_for(place: Path) -> str:
    """The DSN of a database that belongs to ``place`` (a test's tmp_path): every handle
    opened for the same place reaches the same database, as the nodes of one cluster do."""
    key = str(place)
    if key not in _DATABASES:
        _DATABASES[key] = SESSION.new_database()
    return _DATABASES[key]
