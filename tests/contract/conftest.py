"""The index contract suite's engines: every test in tests/contract/test_index_contract.py runs
once per engine named in ENGINES, each on a fresh, empty index.

An engine is an async factory ``make(tmp_path, gc_grace_seconds) -> Index`` (not started);
the suite starts and closes it. Add an engine by adding its factory here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from holdfast.index.base import Index


async def _sqlite(tmp_path: Path, gc_grace_seconds: float) -> Index:
    from holdfast.index.sqlite_engine import SqliteEngine

    return SqliteEngine(
        tmp_path / "index" / "holdfast.db", gc_grace_seconds=gc_grace_seconds, checkpointer=False
    )


async def _postgres(tmp_path: Path, gc_grace_seconds: float) -> Index:
    """A database of its own on the session's PostgreSQL (tests/postgres.py); skipped when
    the machine has no PostgreSQL binaries."""
    from holdfast.index.postgres.engine import PostgresIndex
    from tests.postgres import database_for

    return PostgresIndex(database_for(tmp_path), gc_grace_seconds=gc_grace_seconds)


ENGINES: dict[str, Callable[[Path, float], Awaitable[Index]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(ENGINES))
def engine_name(request) -> str:
    return request.param


@pytest.fixture
def make_index(engine_name, tmp_path):
    """Another handle on the same index (a second process of the node, a second node)."""

    async def make(gc_grace_seconds: float = 0.0) -> Index:
        return await ENGINES[engine_name](tmp_path, gc_grace_seconds)

    return make


@pytest.fixture
async def index(make_index):
    idx = await make_index()
    await idx.start()
    yield idx
    await idx.close()
