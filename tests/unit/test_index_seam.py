"""Nothing of the index engine leaks out of holdfast/index/ (issue 17, "Nothing leaks"): no
sqlite3 import, no SQLite exception, no SQL string, no index file path and no import of the
SQLite engine's modules anywhere else in holdfast/. Pure: reads the source with ``ast``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "holdfast"
INDEX = ROOT / "index"

# The SQLite engine's own modules; outside holdfast/index/ only the interface (base, errors,
# records, listing, blocking, the package's factory) and the committer's names the
# supervisor and metrics need are imported.
ENGINE_MODULES = {
    "sqlite3",
    "holdfast.index.sqlite",
    "holdfast.index.sqlite_engine",
    "holdfast.index.sqlite_migrations",
    "holdfast.index.integrity",
    "holdfast.index.queries",
    "holdfast.index.totals",
    "holdfast.index.outbox",
}
ALLOWED_ENGINE_IMPORTS = {
    # The alert outbox is node-local storage (it must work while the index is down); ops
    # uses it through its methods only.
    ("ops/alerts.py", "holdfast.index.outbox"),
}
SQLITE_ERRORS = {"OperationalError", "IntegrityError", "DatabaseError", "ProgrammingError"}
SQL = re.compile(
    r"\bSELECT\b.+\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|"
    r"\bDELETE\s+FROM\b|\bCREATE\s+(TEMP\s+)?(TABLE|INDEX|TRIGGER)\b|\bBEGIN\s+IMMEDIATE\b|"
    r"\bPRAGMA\s+\w+|\bDROP\s+(TABLE|INDEX|TRIGGER)\b|\bWITHOUT\s+ROWID\b",
    re.S,
)
DB_PATH = re.compile(r"\.db(-wal|-shm|-journal)?\b|holdfast\.db")
# prometheus_client's multiprocess files (counter_<pid>.db), not an index.
ALLOWED_DB_STRINGS = {("ops/metrics.py", r"_(\d+)\.db$")}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def leaks(path: Path, source: str) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            names = []
        for name in names:
            if name in ENGINE_MODULES and (rel, name) not in ALLOWED_ENGINE_IMPORTS:
                found.append(f"{where}: imports {name}")
        if isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in SQLITE_ERRORS:
                found.append(f"{where}: SQLite exception {name}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if SQL.search(node.value):
                found.append(f"{where}: SQL string {node.value[:60]!r}")
            if DB_PATH.search(node.value) and (rel, node.value) not in ALLOWED_DB_STRINGS:
                found.append(f"{where}: index file path {node.value[:60]!r}")
    return found


def test_nothing_of_the_index_engine_leaks_out_of_holdfast_index() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if INDEX in path.parents:
            continue
        found += leaks(path, path.read_text())
    assert found == [], "\n".join(found)


def test_the_checker_finds_each_kind_of_leak() -> None:
    """The walk above is only as good as its patterns: each kind of leak is caught."""
    fake = ROOT / "service" / "fake.py"
    cases = {
        "import sqlite3\n": "imports sqlite3",
        "from holdfast.index.sqlite import SqliteIndex\n": "imports holdfast.index.sqlite",
        "try:\n    pass\nexcept OperationalError:\n    pass\n": "SQLite exception",
        "q = 'SELECT key FROM objects WHERE bucket=?'\n": "SQL string",
        "q = f'DELETE FROM gc_queue WHERE blob_id={1}'\n": "SQL string",
        "p = 'index/holdfast.db'\n": "index file path",
    }
    for source, kind in cases.items():
        assert any(kind in leak for leak in leaks(fake, source)), source
    assert leaks(fake, '"""Reads SELECT ... FROM objects, in prose."""\nx = 1\n') == []
