"""Owner-only modes for the data directory, whatever the umask.

Holdfast runs with umask 077 (holdfast/cli.py), so everything it creates is owner-only:
directories 0700, files 0600, including the SQLite files it does not create itself (SQLite
gives -wal and -shm the database file's mode). A data directory made by an older Holdfast,
or copied in with a loose umask, is repaired at start: each data directory itself (0700
keeps every other user out of everything below it) and each file and folder that holds a
secret or metadata, named in :func:`sensitive_paths`. Nothing else is walked: a data
directory can hold millions of blobs, and start-up must not scan them (DESIGN.md).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from holdfast.config import Config

log = logging.getLogger("holdfast.filemodes")

UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600

# Below the first data directory: files holding credentials, keys and the index.
PRIMARY_FILES = ("root-credentials.json", "ui-session.key", "master.key")
INDEX_DIR = "index"
INDEX_FILE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def sensitive_paths(config: Config) -> list[Path]:
    """Every path whose mode :func:`tighten` checks, existing or not."""
    paths: list[Path] = []
    for data_dir in config.data_dirs:
        paths.append(Path(data_dir))
    primary = config.primary_dir
    paths += [primary / name for name in PRIMARY_FILES]
    index = primary / INDEX_DIR
    paths.append(index)
    if index.is_dir():
        paths += sorted(index.iterdir())
    ops = config.ops_path
    paths.append(ops)
    if ops.is_dir():
        paths += sorted(p for p in ops.iterdir() if p.name != "metrics")
    if config.tls_key and Path(config.tls_key).resolve().is_relative_to(primary.resolve()):
        paths.append(Path(config.tls_key))
    return paths


def tighten(config: Config) -> list[str]:
    """Take group and other permissions off every sensitive path; returns what changed,
    as "path (0644 -> 0600)"."""
    changed = []
    for path in sensitive_paths(config):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        want = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            new = mode & ~0o077 | (want & 0o700)
            os.chmod(path, new)
            changed.append(f"{path} ({mode:04o} -> {new:04o})")
    return changed


def loose_tls_key(config: Config) -> str | None:
    """A warning when the TLS private key, kept outside the data directory, is readable by
    other users (Holdfast does not change files it was only pointed at)."""
    if not config.tls_key:
        return None
    try:
        mode = stat.S_IMODE(os.stat(config.tls_key).st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return (
            f"the TLS key {config.tls_key} is readable by other users (mode {mode:04o}); "
            f"run: chmod 600 {config.tls_key}"
        )
    return None
