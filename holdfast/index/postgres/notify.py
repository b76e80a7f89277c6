"""The PostgreSQL index's notification outbox and SSE key re-sealing: the statements, as
functions of a connection inside the caller's transaction (engine.py calls them).

Outbox ids come from a sequence taken when the row is inserted, inside the write's
transaction; two transactions on different keys may commit in the other order than their
ids, so order is guaranteed per key (writes of one key are serialized by its row or its
advisory lock), and receivers order by the ``sequencer`` as S3 asks them to.
"""

from __future__ import annotations

import json
import time
from typing import Any

from holdfast.index import notify
from holdfast.index.records import NotifyEvent, ObjectRecord, VersionRef

Conn = Any  # psycopg.AsyncConnection

_SELECT = f"SELECT id, {notify.OUTBOX_COLUMNS} FROM notify_outbox"
_INSERT = (
    f"INSERT INTO notify_outbox ({notify.OUTBOX_COLUMNS}) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)


async def _config(conn: Conn, bucket: str) -> str | None:
    cur = await conn.execute(
        "SELECT value FROM bucket_configs WHERE bucket=%s AND name=%s",
        (bucket, notify.CONFIG_NAME),
    )
    row = await cur.fetchone()
    return None if row is None else row[0]


async def _insert(conn: Conn, rows: list) -> None:
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(_INSERT, rows)


async def bucket_state(conn: Conn, bucket: str) -> tuple[str | None, str | None]:
    """(versioning, notification configuration) of a bucket, in one round trip (every PUT)."""
    cur = await conn.execute(
        "SELECT name, value FROM bucket_configs WHERE bucket=%s AND name IN ('versioning', %s)",
        (bucket, notify.CONFIG_NAME),
    )
    found = dict(await cur.fetchall())
    return found.get("versioning"), found.get(notify.CONFIG_NAME)


async def insert_created(conn: Conn, config: str, obj: ObjectRecord, event: str | None) -> None:
    await _insert(conn, notify.created_rows(config, obj, event))


async def removed(
    conn: Conn, bucket: str, keys: list[str], results: list[bool | VersionRef | ObjectRecord | None]
) -> None:
    config = await _config(conn, bucket)
    if config is None:
        return
    for key, result in zip(keys, results, strict=True):
        await _insert(conn, notify.removed_rows(config, bucket, key, result))


async def due(conn: Conn, streams: int, per_stream: int, now: float | None) -> list:
    now = time.time() if now is None else now
    cur = await conn.execute(
        "SELECT o.bucket, o.target FROM notify_outbox o JOIN "
        "(SELECT min(id) AS id FROM notify_outbox WHERE state='pending' "
        "GROUP BY bucket, target) h ON h.id = o.id WHERE o.next_attempt <= %s "
        "ORDER BY o.id LIMIT %s",
        (now, streams),
    )
    out = []
    for bucket, target in await cur.fetchall():
        rows = await conn.execute(
            f"{_SELECT} WHERE state='pending' AND bucket=%s AND target=%s ORDER BY id LIMIT %s",
            (bucket, target, per_stream),
        )
        out.append([notify.event_from_row(r) for r in await rows.fetchall()])
    return out


async def finish(conn: Conn, ids: list[int]) -> None:
    await conn.execute("DELETE FROM notify_outbox WHERE id = ANY(%s::bigint[])", (ids,))


async def defer(conn: Conn, event_id: int, not_before: float, error: str, dead: bool) -> None:
    await conn.execute(
        "UPDATE notify_outbox SET attempts=attempts+1, next_attempt=%s, last_error=%s, "
        "state=%s WHERE id=%s",
        (not_before, error[:500], "dead" if dead else "pending", event_id),
    )


async def retry_dead(conn: Conn, target: str | None) -> int:
    where, args = ("AND target=%s", (target,)) if target else ("", ())
    cur = await conn.execute(
        "UPDATE notify_outbox SET state='pending', attempts=0, next_attempt=0 "
        f"WHERE state='dead' {where}",
        args,
    )
    return cur.rowcount


async def summary(conn: Conn) -> dict:
    cur = await conn.execute(
        "SELECT target, state, count(*), min(created) FROM notify_outbox GROUP BY target, state"
    )
    out: dict = {}
    for target, state, n, oldest in await cur.fetchall():
        out.setdefault(target, {})[state] = {"rows": n, "oldest": oldest}
    return out


async def dead(conn: Conn, limit: int) -> list[NotifyEvent]:
    cur = await conn.execute(f"{_SELECT} WHERE state='dead' ORDER BY id DESC LIMIT %s", (limit,))
    return [notify.event_from_row(r) for r in await cur.fetchall()]


# -- SSE-S3 data keys --------------------------------------------------------------------------


async def scan_sealed(
    conn: Conn, table: str, after: tuple[str, str, int] | None, limit: int, marker: str
) -> list[tuple[str, str, int, str]]:
    if table not in ("objects", "versions"):
        raise ValueError(table)
    where, args = ("AND (bucket, key, vseq) > (%s, %s, %s)", after) if after else ("", ())
    cur = await conn.execute(
        f"SELECT bucket, key, vseq, headers FROM {table} WHERE headers LIKE %s {where} "
        "ORDER BY bucket, key, vseq LIMIT %s",
        (f'%"{marker}"%', *args, limit),
    )
    out = []
    for bucket, key, vseq, headers in await cur.fetchall():
        value = json.loads(headers).get(marker)
        if value is not None:
            out.append((bucket, key, vseq, value))
    return out


def _headers_text(headers: dict) -> str:
    return json.dumps(headers, separators=(",", ":"), sort_keys=True)


async def replace_header(
    conn: Conn, bucket: str, key: str, vseq: int, name: str, old: str, new: str
) -> bool:
    for table in ("objects", "versions"):
        cur = await conn.execute(
            f"SELECT headers FROM {table} WHERE bucket=%s AND key=%s AND vseq=%s FOR UPDATE",
            (bucket, key, vseq),
        )
        row = await cur.fetchone()
        if row is None:
            continue
        headers = json.loads(row[0])
        if headers.get(name) != old:
            return False
        headers[name] = new
        await conn.execute(
            f"UPDATE {table} SET headers=%s WHERE bucket=%s AND key=%s AND vseq=%s",
            (_headers_text(headers), bucket, key, vseq),
        )
        return True
    return False


async def replace_upload_header(conn: Conn, upload_id: str, name: str, old: str, new: str) -> bool:
    cur = await conn.execute(
        "SELECT headers FROM uploads WHERE upload_id=%s FOR UPDATE", (upload_id,)
    )
    row = await cur.fetchone()
    if row is None:
        return False
    headers = json.loads(row[0])
    if headers.get(name) != old:
        return False
    headers[name] = new
    await conn.execute(
        "UPDATE uploads SET headers=%s WHERE upload_id=%s", (_headers_text(headers), upload_id)
    )
    return True
