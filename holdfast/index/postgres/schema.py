"""The PostgreSQL schema, as numbered migrations run at start.

It mirrors the SQLite schema (holdfast/index/sqlite.py, integrity.py, totals.py) table for
table, with these differences, each for a reason:

* Every key, name and id is ``TEXT COLLATE "C"``: bytewise order, which for UTF-8 is code
  point order, as S3 listing requires (a database's default collation may be en_US, where
  "a-b" sorts after "ab").
* objects and uploads reference buckets by foreign key: a PUT racing a DeleteBucket on
  another node either finds its bucket gone (NotFound) or makes the delete fail (NotEmpty);
  the row lock the key check takes is what SQLite's single writer gave for free.
* bucket_totals is split in slots, one per connection (``pg_backend_pid() % 16``): every
  write to a bucket updates its totals in the same transaction, and with one row per bucket
  every PUT to a bucket would wait for the previous one's commit (a row lock held through
  the WAL flush). Readers sum the slots.

Two nodes starting at once must not both migrate: the whole run is one transaction that
first takes a transaction-scoped advisory lock, then reads the version; the second node
waits for the first, then finds nothing left to do.
"""

from __future__ import annotations

import logging

import psycopg

from holdfast.index.errors import SchemaTooNew

log = logging.getLogger("holdfast.index.postgres")

# pg_advisory_xact_lock(MIGRATION_LOCK, 0): a constant of our own ("hfmi"), so as not to
# collide with other applications' advisory locks in a shared database.
MIGRATION_LOCK = 0x68666D69
TOTAL_SLOTS = 16

# The copies of an object, as the scrubber reads them: an inline object (no stores) counts
# as one copy, like a blob with one store.
_STORED = (
    "{0}.size * greatest(1, coalesce(jsonb_array_length(({0}.segments::jsonb) -> 0 -> 'st'), 0))"
)

_V1 = f"""
CREATE TABLE meta (name TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE users (
    access_key TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    secret_key TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT false,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE buckets (
    name TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    region TEXT NOT NULL
);
CREATE INDEX buckets_by_owner ON buckets (owner, name);
CREATE TABLE objects (
    bucket TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    key TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified DOUBLE PRECISION NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    meta TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_type TEXT,
    checksum_value TEXT,
    parts_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'ok',
    segments TEXT NOT NULL,
    inline BYTEA,  -- small objects: the bytes themselves, committed with their metadata
    PRIMARY KEY (bucket, key)
);
-- Damaged objects, for status: a partial index holds only them.
CREATE INDEX objects_damaged ON objects (bucket, key) WHERE state <> 'ok';
CREATE TABLE uploads (
    upload_id TEXT COLLATE "C" PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    key TEXT COLLATE "C" NOT NULL,
    owner TEXT COLLATE "C" NOT NULL,
    initiated DOUBLE PRECISION NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    meta TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_type TEXT
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, initiated, upload_id);
CREATE TABLE parts (
    upload_id TEXT COLLATE "C" NOT NULL,
    part_number INTEGER NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    md5 BYTEA NOT NULL,
    checksum BYTEA,
    last_modified DOUBLE PRECISION NOT NULL,
    segment TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
-- Every blob that committed metadata refers to (the orphan sweeper relies on it).
CREATE TABLE live_blobs (blob_id TEXT COLLATE "C" PRIMARY KEY);
-- Blobs no longer referenced, deleted by the GC once not_before has passed.
CREATE TABLE gc_queue (
    blob_id TEXT COLLATE "C" PRIMARY KEY,
    stores TEXT NOT NULL,
    not_before DOUBLE PRECISION NOT NULL
);
CREATE INDEX gc_due ON gc_queue (not_before);
CREATE TABLE drives (
    store_id TEXT COLLATE "C" PRIMARY KEY,
    uuid TEXT NOT NULL,
    path TEXT NOT NULL,
    added DOUBLE PRECISION NOT NULL
);
CREATE TABLE bucket_policies (
    bucket TEXT COLLATE "C" PRIMARY KEY,
    copies INTEGER NOT NULL,
    min_copies INTEGER NOT NULL
);
CREATE TABLE repair_queue (
    blob_id TEXT COLLATE "C" NOT NULL,
    store_id TEXT COLLATE "C" NOT NULL,
    op TEXT NOT NULL,
    reason TEXT NOT NULL,
    segment TEXT,
    ref TEXT,
    size BIGINT NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before DOUBLE PRECISION NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    PRIMARY KEY (blob_id, store_id)
);
CREATE INDEX repair_due ON repair_queue (store_id, not_before);
CREATE TABLE bucket_totals (
    bucket TEXT COLLATE "C" NOT NULL,
    slot SMALLINT NOT NULL,
    objects BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    stored_bytes BIGINT NOT NULL,
    not_ok BIGINT NOT NULL,
    PRIMARY KEY (bucket, slot)
);
CREATE FUNCTION holdfast_count_objects() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s SMALLINT := pg_backend_pid() % {TOTAL_SLOTS};
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE bucket_totals SET
            objects = objects - 1,
            bytes = bytes - OLD.size,
            stored_bytes = stored_bytes - {_STORED.format("OLD")},
            not_ok = not_ok - (OLD.state <> 'ok')::int
        WHERE bucket = OLD.bucket AND slot = s;
        IF NOT FOUND THEN
            INSERT INTO bucket_totals VALUES (OLD.bucket, s, -1, -OLD.size,
                -{_STORED.format("OLD")}, -(OLD.state <> 'ok')::int);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO bucket_totals VALUES (NEW.bucket, s, 1, NEW.size, {_STORED.format("NEW")},
            (NEW.state <> 'ok')::int)
        ON CONFLICT (bucket, slot) DO UPDATE SET
            objects = bucket_totals.objects + 1,
            bytes = bucket_totals.bytes + EXCLUDED.bytes,
            stored_bytes = bucket_totals.stored_bytes + EXCLUDED.stored_bytes,
            not_ok = bucket_totals.not_ok + EXCLUDED.not_ok;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER objects_totals AFTER INSERT OR UPDATE OR DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION holdfast_count_objects();
"""

# The cluster layout: every applied version is a row (nodes as JSON text, and its audit
# record: who, when, the diff, the blast radius shown), so the history is the table; at most
# one staged layout. Apply is a compare-and-set on the version (holdfast/index/base.py).
_V2 = """
CREATE TABLE layouts (
    version INTEGER PRIMARY KEY,
    nodes TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL,
    applied_by TEXT NOT NULL,
    diff TEXT NOT NULL,
    blast TEXT NOT NULL
);
CREATE TABLE layout_staged (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    base_version INTEGER NOT NULL,
    nodes TEXT NOT NULL,
    staged_at DOUBLE PRECISION NOT NULL,
    staged_by TEXT NOT NULL
);
"""

# Object and upload tags (NULL for none, the common case), and per-bucket configuration
# documents (bucket tags today; versioning, object lock and lifecycle use it next).
_V3 = """
ALTER TABLE objects ADD COLUMN tags TEXT;
ALTER TABLE uploads ADD COLUMN tags TEXT;
CREATE TABLE bucket_configs (
    bucket TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    name TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (bucket, name)
);
"""

# Object versions: ``objects`` keeps exactly the current version of each key that has one
# (ListObjects and GET read only it); noncurrent versions and delete markers live in
# ``versions``. vseq orders a key's versions by commit (0: written before the bucket was
# versioned), taken from version_seq under a per-key lock; vnull marks the "null" version.
_V4 = """
ALTER TABLE objects ADD COLUMN vseq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN vnull SMALLINT NOT NULL DEFAULT 1;
CREATE SEQUENCE version_seq;
CREATE TABLE versions (
    bucket TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    key TEXT COLLATE "C" NOT NULL,
    vseq BIGINT NOT NULL,
    vnull SMALLINT NOT NULL,
    marker SMALLINT NOT NULL DEFAULT 0,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified DOUBLE PRECISION NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    meta TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_type TEXT,
    checksum_value TEXT,
    parts_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'ok',
    segments TEXT NOT NULL,
    inline BYTEA,
    tags TEXT,
    PRIMARY KEY (bucket, key, vseq)
);
"""

# Back-end stores (issue #14, ``holdfast store add``): settings as JSON text without
# credentials, ``secret`` the credentials sealed with the master key; and a bucket policy's
# spread by kind of store (holdfast/placement/policy.py).
_V5 = """
CREATE TABLE stores (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    store_id TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    secret BYTEA NOT NULL,
    added DOUBLE PRECISION NOT NULL
);
ALTER TABLE bucket_policies ADD COLUMN spread TEXT NOT NULL DEFAULT '';
"""

# Object lock: a version's retention and legal hold as one small nullable JSON column (NULL,
# the common case, for a version nothing locks), carried when a version becomes noncurrent.
_V6 = """
ALTER TABLE objects ADD COLUMN objlock TEXT;
ALTER TABLE versions ADD COLUMN objlock TEXT;
"""

# Event notifications: the outbox of events owed to targets, written in the transaction of
# the change each reports (holdfast/index/notify.py); delivered in id order per stream.
_V7 = """
CREATE TABLE notify_outbox (
    id BIGSERIAL PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    config_id TEXT NOT NULL,
    event TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    vseq BIGINT NOT NULL,
    vnull SMALLINT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_error TEXT,
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX notify_outbox_stream ON notify_outbox (state, bucket, target, id);
"""

# Commit tokens: every request write commits a random token with its rows, so that when the
# answer to its COMMIT is lost (the primary died, a failover) the node can learn afterwards
# whether it committed, instead of answering 500 (holdfast/index/postgres/engine.py,
# PostgresIndex._resolve). ``voided``: put there by that check, the write never committed.
# Rows older than a few minutes are deleted by the nodes as they go.
_V8 = """
CREATE TABLE commit_tokens (
    token UUID PRIMARY KEY,
    voided BOOLEAN NOT NULL DEFAULT false,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX commit_tokens_by_age ON commit_tokens (at);
"""

# One-statement writes (issue 16): a PUT or DELETE of a key in a bucket without versioning
# and without event notifications, the common case, is one function call in autocommit mode:
# one round trip to the engine instead of eight (BEGIN, the owner check, the bucket's
# configuration, the row lock, the write, live_blobs, the commit token, COMMIT). Each
# function answers 'slow', having changed nothing, when the bucket is versioned or has a
# notification configuration; the engine then runs its general transaction
# (holdfast/index/postgres/engine.py). The commit token is inserted by the function with the
# write, so a lost answer is resolved as before. The totals follow by the objects trigger.
#
# holdfast_queue_gc: an old version's blobs (its segments text) handed to the GC, as
# engine._queue_for_gc does: no longer live, deleted from their stores after ``grace``.
_V9 = """
CREATE FUNCTION holdfast_queue_gc(p_segments TEXT, p_grace DOUBLE PRECISION)
RETURNS void LANGUAGE sql AS $$
    WITH segs AS (
        SELECT DISTINCT ON (e->>'id') e->>'id' AS blob_id,
            (SELECT string_agg(x, ',' ORDER BY n)
             FROM jsonb_array_elements_text(e->'st') WITH ORDINALITY AS t(x, n)) AS stores
        FROM jsonb_array_elements(p_segments::jsonb) AS e
        WHERE jsonb_array_length(e->'st') > 0
    ), gone AS (
        DELETE FROM live_blobs WHERE blob_id IN (SELECT blob_id FROM segs)
    )
    INSERT INTO gc_queue
    SELECT blob_id, stores, extract(epoch from clock_timestamp())::float8 + p_grace FROM segs
    ON CONFLICT (blob_id) DO UPDATE
        SET stores = EXCLUDED.stores, not_before = EXCLUDED.not_before;
$$;

CREATE FUNCTION holdfast_put_current(
    p_token UUID, p_owner TEXT, p_if_absent BOOLEAN, p_if_etag TEXT, p_grace DOUBLE PRECISION,
    p_notify TEXT, p_live TEXT[],
    p_bucket TEXT, p_key TEXT, p_size BIGINT, p_etag TEXT, p_last_modified DOUBLE PRECISION,
    p_content_type TEXT, p_headers TEXT, p_meta TEXT, p_checksum_algorithm TEXT,
    p_checksum_type TEXT, p_checksum_value TEXT, p_parts_count INTEGER, p_state TEXT,
    p_segments TEXT, p_inline BYTEA, p_tags TEXT, p_vseq BIGINT, p_vnull SMALLINT,
    p_objlock TEXT
) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    found_owner TEXT;
    cur_row RECORD;
BEGIN
    IF p_owner IS NOT NULL THEN
        SELECT owner INTO found_owner FROM buckets WHERE name = p_bucket;
        IF NOT FOUND THEN
            RETURN 'nobucket';
        END IF;
        IF found_owner <> p_owner THEN
            RETURN 'forbidden';
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM bucket_configs
               WHERE bucket = p_bucket AND name IN ('versioning', p_notify)) THEN
        RETURN 'slow';
    END IF;
    LOOP
        SELECT etag, segments INTO cur_row FROM objects
            WHERE bucket = p_bucket AND key = p_key FOR UPDATE;
        IF FOUND THEN
            IF p_if_absent THEN
                RETURN 'exists';
            END IF;
            IF p_if_etag IS NOT NULL AND btrim(cur_row.etag, '"') <> p_if_etag THEN
                RETURN 'mismatch';
            END IF;
            PERFORM holdfast_queue_gc(cur_row.segments, p_grace);
            UPDATE objects SET size = p_size, etag = p_etag, last_modified = p_last_modified,
                content_type = p_content_type, headers = p_headers, meta = p_meta,
                checksum_algorithm = p_checksum_algorithm, checksum_type = p_checksum_type,
                checksum_value = p_checksum_value, parts_count = p_parts_count,
                state = p_state, segments = p_segments, inline = p_inline, tags = p_tags,
                vseq = p_vseq, vnull = p_vnull, objlock = p_objlock
                WHERE bucket = p_bucket AND key = p_key;
            EXIT;
        END IF;
        IF p_if_etag IS NOT NULL THEN
            RETURN 'missing';
        END IF;
        INSERT INTO objects (bucket, key, size, etag, last_modified, content_type, headers,
            meta, checksum_algorithm, checksum_type, checksum_value, parts_count, state,
            segments, inline, tags, vseq, vnull, objlock)
        VALUES (p_bucket, p_key, p_size, p_etag, p_last_modified, p_content_type, p_headers,
            p_meta, p_checksum_algorithm, p_checksum_type, p_checksum_value, p_parts_count,
            p_state, p_segments, p_inline, p_tags, p_vseq, p_vnull, p_objlock)
        ON CONFLICT (bucket, key) DO NOTHING;
        EXIT WHEN FOUND;
        IF p_if_absent THEN  -- another writer created the key meanwhile
            RETURN 'exists';
        END IF;
    END LOOP;
    IF cardinality(p_live) > 0 THEN
        INSERT INTO live_blobs SELECT unnest(p_live) ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO commit_tokens (token) VALUES (p_token);
    RETURN 'ok';
END $$;

CREATE FUNCTION holdfast_delete_current(
    p_token UUID, p_bucket TEXT, p_key TEXT, p_grace DOUBLE PRECISION, p_notify TEXT
) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    old_segments TEXT;
BEGIN
    IF EXISTS (SELECT 1 FROM bucket_configs
               WHERE bucket = p_bucket AND name IN ('versioning', p_notify)) THEN
        RETURN 'slow';
    END IF;
    DELETE FROM objects WHERE bucket = p_bucket AND key = p_key RETURNING segments
        INTO old_segments;
    IF NOT FOUND THEN
        RETURN 'absent';
    END IF;
    PERFORM holdfast_queue_gc(old_segments, p_grace);
    INSERT INTO commit_tokens (token) VALUES (p_token);
    RETURN 'deleted';
END $$;
"""

# The cluster's cap on concurrent background transfers (issue #13, holdfast/workers/
# transfers.py): one row per slot taken, a lease that expires unless renewed, so a crashed
# holder's slots come back by themselves (holdfast/index/postgres/transfers.py).
_V10 = """
CREATE TABLE transfer_slots (
    slot INTEGER PRIMARY KEY,
    holder TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
"""

# (version, SQL): append only; a released step is never edited.
MIGRATIONS: list[tuple[int, str]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
    (8, _V8),
    (9, _V9),
    (10, _V10),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


async def migrate(conn: psycopg.AsyncConnection) -> int:
    """Bring the database up to :data:`SCHEMA_VERSION` in one transaction; the version it
    is at afterwards. SchemaTooNew if a newer Holdfast migrated it."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (MIGRATION_LOCK,))
        cur = await conn.execute("SELECT to_regclass('meta') IS NOT NULL")
        (has_meta,) = await cur.fetchone()
        version = 0
        if has_meta:
            cur = await conn.execute("SELECT value FROM meta WHERE name = 'schema_version'")
            row = await cur.fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the index was migrated to schema {version} by a newer Holdfast; this one "
                f"knows up to {SCHEMA_VERSION}: upgrade Holdfast on this node"
            )
        for step, sql in MIGRATIONS:
            if step > version:
                log.info("index schema %d -> %d", version, step)
                await conn.execute(sql)
                version = step
        await conn.execute(
            "INSERT INTO meta VALUES ('schema_version', %s) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (str(version),),
        )
    return version
