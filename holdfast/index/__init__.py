"""The index: metadata of buckets, objects, uploads, users, and the durable queues.

Everything outside this package talks to the index through :class:`holdfast.index.base.Index`
(asynchronous) and its errors (holdfast/index/errors.py); :func:`open_index` picks the engine
from the configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holdfast.config import Config
    from holdfast.index.base import Index


def open_index(config: Config, *, role: str = "worker") -> Index:
    """The index engine the configuration names (PostgreSQL when ``index_dsn`` is set, else
    SQLite under the first data directory). ``role`` is "worker" (a serving process: may use the node's committer),
    or "tool" (CLI commands, the committer itself). Call ``await index.start()`` next."""
    if config.index_dsn:
        from holdfast.index.postgres.engine import PostgresIndex

        return PostgresIndex.from_config(config, role=role)
    from holdfast.index.sqlite_engine import SqliteEngine

    return SqliteEngine.from_config(config, role=role)


def run_committer_process(config: Config) -> None:
    """The body of the node's index committer process, which the supervisor starts when
    several workers share an embedded index (SQLite internals: holdfast/index/committer.py)."""
    from holdfast.index.sqlite_engine import run_node_committer

    run_node_committer(config)
