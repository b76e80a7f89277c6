"""The index engine's settings (``holdfast serve`` and every command that opens the index):
each declared once here, with its flag, Config field, type, environment variable and help.

With no DSN the node keeps the embedded SQLite index in its first data directory, exactly as
a single node always has; with one, the index is the PostgreSQL it names (docs/cluster.md).

A node served with a DSN records it in its data directory (:data:`ENGINE_FILE`, mode 0600,
like the root credentials next to it). Commands given only ``--data`` (``holdfast user add``,
``fsck``, ...) then reach the same index, and a restart without the flag keeps using it
instead of quietly starting an empty SQLite index.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from holdfast.config import Config

# (flag, Config field, type, environment variable, help). Defaults come from Config itself.
FLAGS: list[tuple[str, str, type, str, str]] = [
    (
        "--index-dsn",
        "index_dsn",
        str,
        "HOLDFAST_INDEX_DSN",
        "keep the index in PostgreSQL at this DSN (a cluster's shared index), e.g. "
        "postgresql://holdfast@db:5432/holdfast or 'host=a,b port=5432,5432 dbname=holdfast "
        "target_session_attrs=read-write'; unset: embedded SQLite in the first --data",
    ),
    (
        "--index-timeout",
        "index_timeout_seconds",
        float,
        "HOLDFAST_INDEX_TIMEOUT",
        "seconds an index call may take before the request is answered 503 "
        "(or 500 when a commit's outcome is unknown)",
    ),
    (
        "--index-pool",
        "index_pool_size",
        int,
        "HOLDFAST_INDEX_POOL",
        "PostgreSQL connections per worker process",
    ),
]


ENGINE_FILE = "index-engine.json"


def engine_file(config: Config) -> Path:
    return config.state_dir / ENGINE_FILE


def recorded_dsn(config: Config) -> str | None:
    try:
        return json.loads(engine_file(config).read_text()).get("dsn") or None
    except (OSError, ValueError, AttributeError):
        return None


def remember_index(config: Config) -> None:
    """Record the node's index DSN in its data directory (see the module docstring)."""
    if not config.index_dsn or recorded_dsn(config) == config.index_dsn:
        return
    path = engine_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"engine": "postgres", "dsn": config.index_dsn}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def add_index_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("index engine (docs/cluster.md)")
    defaults = Config()
    for flag, field, kind, env, text in FLAGS:
        default = getattr(defaults, field)
        shown = f" [{default}]" if default is not None else ""
        group.add_argument(
            flag,
            dest=field,
            type=kind,
            default=None,
            metavar="DSN" if field == "index_dsn" else "N",
            help=f"{text} (env {env}){shown}",
        )


def apply_index_flags(args: argparse.Namespace, config: Config) -> None:
    """Copy the flags, else the environment, into ``config``; a bad value stops the command
    with one line saying what is wrong."""
    for flag, field, kind, env, _text in FLAGS:
        value = getattr(args, field, None)
        if value is None and os.environ.get(env):
            try:
                value = kind(os.environ[env])
            except ValueError:
                raise SystemExit(
                    f"holdfast: {env}={os.environ[env]!r} is not a valid {flag}"
                ) from None
        if value is not None:
            setattr(config, field, value)
    if config.index_dsn is None:
        config.index_dsn = recorded_dsn(config)
    if config.index_timeout_seconds <= 0 or config.index_pool_size < 1:
        raise SystemExit("holdfast: --index-timeout must be > 0 and --index-pool >= 1")
    if config.index_dsn is not None:
        config.index_dsn = config.index_dsn.strip() or None
    if config.index_dsn:
        from holdfast.index.postgres.engine import check_dsn

        try:
            check_dsn(config.index_dsn)
        except ValueError as e:
            raise SystemExit(f"holdfast: {e}") from None
