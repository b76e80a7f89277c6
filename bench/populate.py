"""Hook for filling Holdfast's index directly, without HTTP.

Putting 1,000,000 objects through HTTP takes far too long for a benchmark
run, so the restart (6) and scale (8) figures at 1M objects need a way to
write the index offline. The lead provides it; until then the figures are
skipped with a note.

Contract for `populate_index(data_dir, n)`:
  * `data_dir` does not exist yet or is empty;
  * afterwards, `holdfast serve --data data_dir` started with the bench's
    credentials (settings.ACCESS_KEY / SECRET_KEY in the environment) serves
    bucket `INDEX_BUCKET` owned by that user, holding keys `key_for(i)` for
    every i in range(n), each with OBJECT_SIZE bytes that GET returns with 200;
  * it must be fast: about a minute for n = 1,000,000 on the bench machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INDEX_BUCKET = "bench-index"
OBJECT_SIZE = 4096


def key_for(i: int) -> str:
    """Key of the i-th pre-populated object (sorted order equals numeric order)."""
    return f"obj/{i:08d}"


def populate_index(
    data_dir: Path, n: int, index_dsn: str | None = None, size: int = OBJECT_SIZE
) -> None:
    """Write n small objects straight into a fresh Holdfast index (inline rows, as a PUT of
    4 KiB stores them), owned by the root user the server is started with. With
    ``index_dsn`` the rows go to that PostgreSQL index (bench/restart_scale.py)."""
    import hashlib
    import time

    from holdfast.config import Config
    from holdfast.index.blocking import open_blocking
    from holdfast.index.records import BucketRecord, ObjectRecord, Segment
    from holdfast.service.users import ROOT_USER
    from holdfast.stores.blocks import BlockChecksummer

    config = Config(data_dirs=[str(data_dir)], index_dsn=index_dsn)
    index = open_blocking(config)
    now = time.time()
    index.create_bucket(BucketRecord(INDEX_BUCKET, ROOT_USER, now, config.region))
    body = b"h" * size
    blocks = BlockChecksummer(config.block_size)
    blocks.update(body)
    segment = Segment("inline", size, config.block_size, blocks.finish(), ())
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    rows = (
        ObjectRecord(INDEX_BUCKET, key_for(i), size, etag, now, [segment], inline=body)
        for i in range(n)
    )
    try:
        if index_dsn:
            with _totals_counted_once(index_dsn, INDEX_BUCKET):
                index.import_objects(rows)
        else:
            index.import_objects(rows)
    finally:
        index.close()


@contextmanager
def _totals_counted_once(dsn: str, bucket: str) -> Iterator[None]:
    """A PostgreSQL load without the per-row totals trigger, then the bucket's totals
    counted once from its rows. Only the benchmark's own database, before any node writes
    to it: the trigger adds each row to ``bucket_totals`` in the inserting transaction, so
    a batch of 10,000 rows updated one totals row 10,000 times inside one transaction, each
    update walking the versions before it (1M rows took 1,648 s). The totals that result
    are the trigger's, summed: same slots table, same stored-bytes formula (the schema's)."""
    import psycopg

    from holdfast.index.postgres.schema import _STORED

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE objects DISABLE TRIGGER objects_totals")
        try:
            yield
        finally:
            conn.execute("ALTER TABLE objects ENABLE TRIGGER objects_totals")
        with conn.transaction():
            conn.execute("DELETE FROM bucket_totals WHERE bucket = %s", (bucket,))
            conn.execute(
                "INSERT INTO bucket_totals (bucket, slot, objects, bytes, stored_bytes, not_ok) "
                f"SELECT bucket, 0, count(*), sum(size), sum({_STORED.format('objects')}), "
                "sum((state <> 'ok')::int) FROM objects WHERE bucket = %s GROUP BY bucket",
                (bucket,),
            )
