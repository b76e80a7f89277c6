"""Nothing above holdfast/stores/ reaches a blob except through the Store interface
(holdfast/stores/base.py): no blob path, no drive layout, no file opened on a drive.

A pure source walk (ast), so it costs milliseconds and names the offending line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "holdfast"
STORES = ROOT / "stores"

# What only a local drive has: its paths and the helpers that build them.
LAYOUT_ATTRIBUTES = {
    "blob_path",
    "ensure_dir",
    "fsync_dir",
    "forget_dirs",
    "tmp_path",
    "blobs_in_hour",
    "_stale_tmp",
}
# Directory names of a drive's layout: joining one onto a path is building a blob path.
LAYOUT_NAMES = {"blobs", "quarantine", "tmp", "drive", ".holdfast-drive"}
# The data-path layers: here no file is opened or removed at all, except the few files
# listed that are not blobs (they belong to the index and ops, not to a store).
DATA_LAYERS = ("service", "workers", "placement")
OS_FILE_CALLS = {"open", "pread", "pwrite", "unlink", "rename", "remove", "scandir", "listdir"}
PATH_METHODS = {"unlink", "open", "read_bytes", "write_bytes", "iterdir", "rglob", "glob"}
NOT_BLOB_FILES = {
    "service/users.py",  # root-credentials.json
    "service/node.py",  # the index file's path (the index seam's business)
    "workers/health.py",  # integrity-status.json next to the index
    "workers/runner.py",  # the background workers' lock file next to the index
    "workers/notify_commands.py",  # the operator's webhook token/secret files (0600)
}
# Objects whose .open() is no file: the master keyring opens sealed data keys (SSE-S3).
NOT_FILE_OWNERS = {"keyring", "self.keyring", "self._keyring"}


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if STORES not in p.parents)


def _name_of(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover
        return ""


def violations(path: Path, text: str) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(text, str(path))
    data_layer = rel.split("/", 1)[0] in DATA_LAYERS and rel not in NOT_BLOB_FILES
    found: list[str] = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(f"holdfast/{rel}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr in LAYOUT_ATTRIBUTES:
                bad(node, f"drive layout helper .{node.attr}")
            elif node.attr == "root" and "store" in _name_of(node.value).lower():
                bad(node, f"a store's directory ({_name_of(node)})")
        elif isinstance(node, ast.ImportFrom) and node.module == "holdfast.stores.local":
            names = {a.name for a in node.names}
            # The composition root may build the node's drives (and ops may look for one
            # without opening it); nothing may use them as anything but Stores.
            if names - {"local_drives", "drive_identities", "drive_present"}:
                bad(node, f"imports {sorted(names)} from holdfast.stores.local")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if isinstance(node.right, ast.Constant) and node.right.value in LAYOUT_NAMES:
                bad(node, f"builds a drive path ({_name_of(node)})")
        elif isinstance(node, ast.Call) and data_layer:
            text = _name_of(node.func)
            owner, _, name = text.rpartition(".")
            if (
                text in ("open", "Path")
                or text.startswith("os.path.")
                or (owner == "os" and name in OS_FILE_CALLS)
                or (
                    owner
                    and owner != "os"
                    and owner not in NOT_FILE_OWNERS
                    and name in PATH_METHODS
                )
            ):
                bad(node, f"file access in a data-path layer ({text})")
    return found


def test_no_blob_paths_above_the_stores():
    found = [v for p in _sources() for v in violations(p, p.read_text())]
    assert not found, "blob paths outside holdfast/stores/:\n" + "\n".join(found)


def test_the_check_sees_what_it_forbids():
    """The walk itself works: each kind of violation is caught in a made-up module."""
    fake = ROOT / "workers" / "fake.py"
    samples = [
        "p = store.blob_path(b)",
        "p = self.node.stores['d0'].root / 'x'",
        "from holdfast.stores.local import LocalStore",
        "p = base / 'quarantine'",
        "f = open(p, 'rb')",
        "os.unlink(p)",
        "p.unlink(missing_ok=True)",
        "q = os.path.join(a, b)",
        "q = Path(a)",
    ]
    for sample in samples:
        assert violations(fake, sample), sample
    assert not violations(fake, "store.read_blocks(seg, 0, 10)")
    assert not violations(fake, "self.writers.remove(w)")
    assert not violations(
        ROOT / "service" / "integrity.py", "from holdfast.stores.local import local_drives"
    )
