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
    index.import_objects(
        ObjectRecord(INDEX_BUCKET, key_for(i), size, etag, now, [segment], inline=body)
        for i in range(n)
    )
    index.close()
