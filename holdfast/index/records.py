"""Records the index stores: plain data, no storage logic, so every layer can share them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import NamedTuple

from holdfast.caching import short_lru_cache


@dataclass(frozen=True)
class Segment:
    """A contiguous run of an object's bytes held in one blob (one per part for multipart).

    ``crcs`` holds one CRC32C per ``block_size`` block, packed big-endian, so every read can be
    verified block by block without trusting the drive.
    """

    blob_id: str
    size: int
    block_size: int
    crcs: bytes
    stores: tuple[str, ...]
    # Stores in ``stores`` that do not hold their copy yet (a drive was down, full or failed
    # mid-write): the commit that makes the segment live queues a repair for each, in the
    # same transaction. Transient: never stored with the segment.
    deferred: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict:
        return {
            "id": self.blob_id,
            "size": self.size,
            "bs": self.block_size,
            "crc": base64.b64encode(self.crcs).decode(),
            "st": list(self.stores),
        }

    @classmethod
    def from_json(cls, d: dict) -> Segment:
        return cls(d["id"], d["size"], d["bs"], base64.b64decode(d["crc"]), tuple(d["st"]))


def tags_to_text(tags: list[tuple[str, str]]) -> str | None:
    """Tags as stored: None (SQL NULL) for none, the common case, so untagged rows cost
    nothing and reading them parses nothing."""
    return json.dumps(tags, separators=(",", ":")) if tags else None


def tags_from_text(text: str | None) -> list[tuple[str, str]]:
    return [] if not text else [(k, v) for k, v in json.loads(text)]


def lock_to_text(mode: str | None, until: float | None, hold: bool) -> str | None:
    """A version's lock as stored: None (SQL NULL) when nothing locks it, the common case."""
    if mode is None and not hold:
        return None
    return json.dumps({"m": mode, "u": until, "h": hold}, separators=(",", ":"))


def lock_from_text(text: str | None) -> tuple[str | None, float | None, bool]:
    if not text:
        return None, None, False
    d = json.loads(text)
    return d.get("m"), d.get("u"), bool(d.get("h"))


def object_lock_text(obj: ObjectRecord) -> str | None:
    return lock_to_text(obj.retention_mode, obj.retain_until, obj.legal_hold)


def segments_to_text(segments: list[Segment]) -> str:
    return json.dumps([s.to_json() for s in segments], separators=(",", ":"))


def move_copy_text(text: str, blob_id: str, old: str, new: str) -> str | None:
    """A row's segments text with blob ``blob_id``'s copy on store ``old`` said to be on
    ``new`` instead (a drain moved it); None when the row has no such copy (or already one
    on ``new``), so the caller changes nothing."""
    entries = json.loads(text)
    for d in entries:
        if d.get("id") == blob_id and old in d.get("st", ()) and new not in d["st"]:
            d["st"] = [new if s == old else s for s in d["st"]]
            return json.dumps(entries, separators=(",", ":"))
    return None


def segments_from_text(text: str) -> list[Segment]:
    return list(_parse_segments(text))


@short_lru_cache(maxsize=8192, max_len=1024)  # a few segments; multipart lists are parsed each time
def _parse_segments(text: str) -> tuple[Segment, ...]:
    """Segments are immutable and a hot object's row is read over and over: parse each
    distinct text once."""
    return tuple(Segment.from_json(d) for d in json.loads(text))


@dataclass
class ObjectRecord:
    bucket: str
    key: str
    size: int
    etag: str  # quoted, as sent in the ETag header
    last_modified: float  # epoch seconds
    segments: list[Segment]
    content_type: str = "binary/octet-stream"
    # Standard headers kept verbatim (content-encoding, content-disposition, ...).
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    checksum_value: str | None = None  # base64, with "-N" for composite multipart
    parts_count: int = 0  # 0 for a single PUT
    state: str = "ok"  # "ok" or "corrupt"
    # Small objects keep their bytes in the index row: one transaction (one fsync) makes data
    # and metadata durable together. Their single segment has no stores.
    inline: bytes | None = None
    # Object tags, in the order given (holdfast/s3/tagging.py keeps S3's limits).
    tags: list[tuple[str, str]] = field(default_factory=list)
    # The version: its number in the index's commit sequence (0 for a version written while
    # the bucket was never versioned), and whether its id is "null" (written while
    # versioning was never enabled or suspended). Set by the index when it commits.
    vseq: int = 0
    vnull: bool = True
    delete_marker: bool = False  # only from the version history (get_version, list)
    # Object lock (holdfast/service/objectlock.py): the version's retention and legal hold,
    # kept with the version as one small nullable column (None for an unlocked version).
    retention_mode: str | None = None
    retain_until: float | None = None
    legal_hold: bool = False
    # What wrote this version, for event notifications ("Put", "Post", "Copy",
    # "CompleteMultipartUpload": the event is s3:ObjectCreated:<origin>). Transient: the
    # outbox row written in the commit's transaction keeps it, the object row does not.
    origin: str = field(default="Put", compare=False)


@dataclass
class BucketRecord:
    name: str
    owner: str
    created: float
    region: str


@dataclass(frozen=True)
class BucketUsage:
    """A bucket with the totals the index keeps for it (holdfast/index/totals.py)."""

    bucket: BucketRecord
    objects: int
    bytes: int  # the objects' sizes
    stored_bytes: int  # every copy counted
    damaged: int  # objects not in state "ok"


@dataclass
class UserRecord:
    name: str
    access_key: str
    secret_key: str
    disabled: bool = False
    created: float = 0.0


@dataclass
class UploadRecord:
    upload_id: str
    bucket: str
    key: str
    owner: str
    initiated: float
    content_type: str
    headers: dict[str, str]
    meta: dict[str, str]
    checksum_algorithm: str | None
    checksum_type: str | None
    tags: list[tuple[str, str]] = field(default_factory=list)  # given the object at completion


@dataclass
class PartRecord:
    upload_id: str
    part_number: int
    size: int
    etag: str
    md5: bytes
    checksum: bytes | None
    last_modified: float
    segment: Segment


class VersionRef(NamedTuple):
    """What a versioned write made: the new version's number, whether its id is "null",
    and whether it is a delete marker."""

    seq: int
    null: bool
    marker: bool = False


class VersionEntry(NamedTuple):
    """One row of ListObjectVersions: a version or a delete marker."""

    key: str
    seq: int
    null: bool
    marker: bool
    size: int
    etag: str
    last_modified: float
    latest: bool


class ListedEntry(NamedTuple):
    """A key row as listing needs it: no segments or data, and a plain tuple, because a
    page builds a thousand of them."""

    key: str
    size: int
    etag: str
    last_modified: float
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass
class RepairTask:
    """One entry of the durable repair queue: make ``store_id`` hold a verified copy of
    ``blob_id`` (op "copy"), or remove its copy (op "delete", a delete the drive missed).
    Rows for a drive that is down are its hinted-handoff log: they wait, without retrying,
    until the drive is back, so it re-syncs exactly what it missed."""

    blob_id: str
    store_id: str
    op: str  # "copy" | "delete"
    reason: str  # deferred | corrupt | missing | io-error | missed-delete | ...
    segment: Segment | None = None  # what a "copy" needs: size, block checksums, sources
    ref: str | None = None  # "bucket/key" of the object, when known (status, damage marks)
    attempts: int = 0
    not_before: float = 0.0
    created: float = 0.0
    last_error: str | None = None

    @property
    def size(self) -> int:
        return self.segment.size if self.segment is not None else 0


@dataclass(frozen=True)
class BackendRecord:
    """A back-end store as ``holdfast store add`` registered it: ``settings`` hold no
    credentials; ``secret`` is them sealed with the master key (holdfast/stores/backends.py)."""

    name: str
    kind: str
    store_id: str
    settings: dict
    secret: bytes
    added: float

    def __repr__(self) -> str:
        return f"BackendRecord(name={self.name!r}, kind={self.kind!r}, settings={self.settings!r})"


# -- the cluster layout (holdfast/cluster/layout.py gives it meaning) -------------------------

NODE_STATES = ("active", "draining", "removed")


@dataclass(frozen=True)
class NodeRecord:
    """One node of the layout: its name (the name in its certificate), the S3 endpoint
    clients use, the internal address other nodes reach it at (HOST:PORT, mutual TLS), its
    zone, its capacity in bytes (0: not stated) and its state."""

    name: str
    s3: str
    cluster: str
    zone: str = ""
    capacity: int = 0
    state: str = "active"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "s3": self.s3,
            "cluster": self.cluster,
            "zone": self.zone,
            "capacity": self.capacity,
            "state": self.state,
        }

    @classmethod
    def from_json(cls, obj: dict) -> NodeRecord:
        return cls(
            name=str(obj["name"]),
            s3=str(obj.get("s3", "")),
            cluster=str(obj.get("cluster", "")),
            zone=str(obj.get("zone", "")),
            capacity=int(obj.get("capacity", 0)),
            state=str(obj.get("state", "active")),
        )


def nodes_to_text(nodes: tuple[NodeRecord, ...]) -> str:
    return json.dumps([n.to_json() for n in sorted(nodes, key=lambda n: n.name)])


def nodes_from_text(text: str) -> tuple[NodeRecord, ...]:
    return tuple(NodeRecord.from_json(o) for o in json.loads(text))


@dataclass(frozen=True)
class LayoutRecord:
    """An applied layout version, with its audit record: who applied it, when, the
    difference from the version before and the blast radius shown to the operator (both
    JSON text, as the CLI computed them)."""

    version: int
    nodes: tuple[NodeRecord, ...]
    applied_at: float = 0.0
    applied_by: str = ""
    diff: str = "[]"
    blast: str = "{}"


@dataclass(frozen=True)
class StagedLayout:
    """The layout an operator has staged (``holdfast cluster node add|remove``), on top of
    version ``base_version``: applying it is refused once the current version moved on."""

    base_version: int
    nodes: tuple[NodeRecord, ...]
    staged_at: float = 0.0
    staged_by: str = ""


def with_new_copies(
    segments: list[Segment], extra: dict[str, list[str]], ref: str, reason: str = "push"
) -> tuple[list[Segment], list[RepairTask]]:
    """The segments with ``extra`` (blob id -> store ids) added to their store lists, and the
    "copy" repair rows that make those copies: what both engines commit together when a
    copy is owed to a store the write did not place it on (a policy set after the write).
    A store a segment already lists is not added twice."""
    out: list[Segment] = []
    tasks: list[RepairTask] = []
    for seg in segments:
        adding = [s for s in extra.get(seg.blob_id, ()) if s not in seg.stores]
        if not adding:
            out.append(seg)
            continue
        grown = Segment(seg.blob_id, seg.size, seg.block_size, seg.crcs, seg.stores + tuple(adding))
        out.append(grown)
        tasks += [RepairTask(seg.blob_id, sid, "copy", reason, grown, ref) for sid in adding]
    return out, tasks


@dataclass
class NotifyEvent:
    """One event owed to one notification target: a row of the index's outbox, written in
    the transaction of the change it reports (holdfast/index/notify.py)."""

    id: int  # the outbox sequence: delivery order within (bucket, target)
    bucket: str
    target: str
    config_id: str  # the bucket configuration's rule id that matched
    event: str  # without "s3:", e.g. "ObjectCreated:Put"
    key: str
    size: int
    etag: str  # unquoted
    vseq: int
    vnull: bool
    created: float
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str | None = None
    state: str = "pending"  # "pending" or "dead" (gave up after the most attempts)


@dataclass(frozen=True)
class TransferSlot:
    """One lease of the cluster's cap on concurrent background transfers
    (holdfast/workers/transfers.py): slot number ``slot`` taken by ``holder`` (node/pid) for
    a ``kind`` of transfer (repair, drain, rebalance) to ``target`` (a node), free again when
    released or ``expires_in`` seconds from now (so a crashed holder's slot comes back)."""

    slot: int
    holder: str
    kind: str
    target: str
    token: str
    expires_in: float


def slot_request(cap: int, holder: str, kind: str, target: str, token: str, ttl: float) -> dict:
    """The named parameters of both engines' one-statement slot acquire, typed as the
    statements want them."""
    return {
        "cap": int(cap),
        "holder": holder,
        "kind": kind,
        "target": target,
        "token": token,
        "ttl": float(ttl),
    }
