"""The crash loop's two sides: a child process that runs a node's operations until it is
killed, and the parent's checks after each kill.

The child is a real process (forked from a forkserver that has Holdfast imported, so a
restart costs milliseconds) that opens the node's index and drives exactly as a server
worker does, and runs the same service code an S3 request runs: PUT (inline and blob),
multipart complete, copy, DeleteObjects, and repair of a copy it damages itself (its repair
row is queued before the damage, as the scrubber or a GET would). Before and after each
operation it tells the parent what it is doing, in one atomic pipe write, so the parent
knows which outcomes a kill at any instant may leave.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from holdfast.config import Config
from holdfast.index.records import ObjectRecord, RepairTask, Segment
from holdfast.service import Service
from holdfast.service.multipart import RequestedPart
from holdfast.workers.limits import Pacer
from holdfast.workers.repair import Repairer, copy_state

BUCKETS = {"two": 2, "one": 1}  # bucket -> copies (the "one" bucket stores small objects inline)
KEYS = [f"k{i}" for i in range(5)]
SIZES = [0, 900, 30_000, 70_000, 150_000, 300_000]


def body_for(key: str, version: int, size: int) -> bytes:
    return random.Random(f"{key}/{version}").randbytes(size)


@dataclass
class Verified:
    md5: bytes
    checksum: bytes | None = None
    algorithm: str | None = None
    checksum_b64: str | None = None


class Body:
    """A BodySource over bytes or over another object's verified bytes (a copy)."""

    def __init__(self, data: bytes | None = None, stream: AsyncIterator[bytes] | None = None):
        self.data, self.stream = data, stream
        self._md5 = hashlib.md5()

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.stream is not None:
            async for piece in self.stream:
                yield piece
            return
        for i in range(0, len(self.data or b""), 64 * 1024):
            yield self.data[i : i + 64 * 1024]

    def update(self, data: bytes) -> None:
        self._md5.update(data)

    def finish(self) -> Verified:
        return Verified(self._md5.digest())


class Child:
    def __init__(self, service: Service, model: dict, rng: random.Random, conn) -> None:
        self.s, self.model, self.rng, self.conn = service, model, rng, conn
        self.version = int(time.time() * 1000) % 1_000_000_000

    def say(self, *msg: object) -> None:
        self.conn.send_bytes(json.dumps(msg).encode())  # one write: atomic under a kill

    def pick(self) -> tuple[str, str]:
        return self.rng.choice(list(BUCKETS)), self.rng.choice(KEYS)

    async def commit(self, bucket: str, key: str, received, md5: str) -> None:
        record = ObjectRecord(
            bucket, key, received.segment.size, f'"{md5}"', time.time(), [received.segment],
            inline=received.inline,
        )  # fmt: skip
        await self.s.objects.commit(record)

    async def put(self) -> None:
        bucket, key = self.pick()
        self.version += 1
        data = body_for(key, self.version, self.rng.choice(SIZES))
        md5 = hashlib.md5(data).hexdigest()
        self.say("begin", "put", bucket, [key], md5)
        received = await self.s.objects.receive(Body(data), len(data), bucket=bucket)
        await self.commit(bucket, key, received, md5)
        self.model[f"{bucket}/{key}"] = md5
        self.say("done")

    async def copy(self) -> None:
        bucket, key = self.pick()
        src_key = self.rng.choice(KEYS)
        src = await self.s.objects.find(bucket, src_key)
        if src is None:
            return
        md5 = self.model[f"{bucket}/{src_key}"]
        self.say("begin", "copy", bucket, [key], md5)
        stream = self.s.objects.read(src, 0, src.size)
        received = await self.s.objects.receive(Body(stream=stream), src.size, bucket=bucket)
        await self.commit(bucket, key, received, md5)
        self.model[f"{bucket}/{key}"] = md5
        self.say("done")

    async def multipart(self) -> None:
        bucket, key = self.pick()
        self.version += 1
        data = body_for(key, self.version, self.rng.choice(SIZES[1:]))
        md5 = hashlib.md5(data).hexdigest()
        mp = self.s.multipart
        upload = await mp.create("root", bucket, key, "binary/octet-stream", {}, {}, None, None)
        part = await mp.upload_part(upload, 1, Body(data), len(data))
        self.say("begin", "complete", bucket, [key], md5)
        await mp.complete(upload, [RequestedPart(1, part.etag, {})], None)
        self.model[f"{bucket}/{key}"] = md5
        self.say("done")

    async def delete_objects(self) -> None:
        bucket = self.rng.choice(list(BUCKETS))
        keys = self.rng.sample(KEYS, self.rng.randint(1, 3))
        self.say("begin", "delete", bucket, keys, None)
        await self.s.objects.delete_many(bucket, keys)
        for key in keys:
            self.model[f"{bucket}/{key}"] = None
        self.say("done")

    async def repair(self) -> None:
        bucket, key = "two", self.rng.choice(KEYS)
        obj = await self.s.objects.find(bucket, key)
        if obj is None or obj.inline is not None or not obj.segments[0].stores:
            return
        seg = obj.segments[0]
        store_id = self.rng.choice(seg.stores)
        node = self.s.node
        if any(t.blob_id == seg.blob_id for t in await node.index.repairs(10_000)):
            return  # damage only blobs whose other copy is known good (as bit rot would)
        task = RepairTask(seg.blob_id, store_id, "copy", "crash-test", seg, f"{bucket}/{key}")
        await node.index.queue_repairs([task])  # first the row, then the damage (as a GET would)
        path = node.stores[store_id].blob_path(seg.blob_id)
        self.say("begin", "repair", bucket, [key], None)
        if path.exists() and seg.size:
            if self.rng.random() < 0.5:
                path.unlink()
            else:
                with open(path, "r+b") as f:
                    f.seek(self.rng.randrange(seg.size))
                    f.write(b"\xff")
        repairer = Repairer(node, Pacer(node, 1 << 40))
        await node.run(repairer.execute, task)
        self.say("done")

    async def run(self) -> None:
        ops = [self.put] * 4 + [self.copy, self.multipart, self.delete_objects, self.repair]
        self.say("ready")
        while True:
            await self.rng.choice(ops)()


def child_main(config_json: str, model: dict, seed: int, conn) -> None:
    async def main() -> None:
        service = Service(Config(**json.loads(config_json)))
        await service.start()
        await Child(service, model, random.Random(seed), conn).run()

    asyncio.run(main())


# -- the parent's checks -----------------------------------------------------------------------


def read_all(service: Service, obj: ObjectRecord) -> bytes:
    async def collect() -> bytes:
        return b"".join([c async for c in service.objects.read(obj, 0, obj.size)])

    return service.node.call(collect())


def check_objects(service: Service, model: dict, pending: list | None) -> dict:
    """Every key holds its last acknowledged content or, if an operation on it was under
    way at the kill, that operation's outcome: whole, as its MD5 shows. Returns the model
    as found (what the next child starts from)."""
    allowed: dict[str, set] = {name: {md5} for name, md5 in model.items()}
    if pending and pending[1] != "repair":
        _, _op, bucket, keys, md5 = pending
        for key in keys:
            allowed[f"{bucket}/{key}"].add(md5)  # None for a delete
    found = {}
    for name in model:
        bucket, key = name.split("/", 1)
        obj = service.node.blocking.get_object(bucket, key)
        got = None if obj is None else hashlib.md5(read_all(service, obj)).hexdigest()
        assert got in allowed[name], f"{name}: {got} is none of {allowed[name]}"
        if obj is not None:
            assert obj.state == "ok", f"{name} marked {obj.state}"
        found[name] = got
    return found


def check_copies(service: Service) -> int:
    """Every copy a live segment names is whole, or a repair for it is queued (a copy
    owed by a degraded write, or one a repair was rebuilding at the kill). Returns the
    copies checked."""
    index = service.node.blocking
    owed = {(t.blob_id, t.store_id) for t in index.repairs(100_000)}
    segments: list[Segment] = []
    after = None
    while batch := index.scan_objects(after, 500):
        segments += [s for o in batch for s in o.segments if s.stores]
        after = (batch[-1].bucket, batch[-1].key)
    segments += [p.segment for p in index.scan_parts(None, 100_000)]
    checked = 0
    for seg in segments:
        for store_id in seg.stores:
            state = copy_state(service.node.stores[store_id], seg, lambda _n: None)
            assert state == "ok" or (seg.blob_id, store_id) in owed, (seg.blob_id, store_id, state)
            checked += 1
    return checked


def _all_blobs(store, hour: str) -> list:
    out, cursor = [], None
    while True:
        page = store.list_blobs(hour, cursor)
        out += page.blobs
        cursor = page.cursor
        if cursor is None:
            return out


def leftover_files(service: Service) -> dict[str, int]:
    """Blob files no index row knows (orphans) and temporary files, per drive."""
    out = {"orphans": 0, "tmp": 0}
    for store in service.node.stores.values():
        names = [b.blob_id for hour in store.hours() for b in _all_blobs(store, hour)]
        out["orphans"] += len(names) - len(service.node.blocking.known_blobs(names))
        out["tmp"] += sum(1 for p in (store.root / "tmp").iterdir() if not p.name.startswith("."))
    return out


def replay(model: dict, messages: list) -> tuple[dict, list | None]:
    """The model after the operations the child finished, and the one a kill interrupted
    (if any). A repair changes no content, so it never changes what a key may hold."""
    model = dict(model)
    current = None
    for m in messages:
        if m[0] == "begin":
            current = m
        elif m[0] == "done" and current is not None:
            _, op, bucket, keys, md5 = current
            if op != "repair":
                for key in keys:
                    model[f"{bucket}/{key}"] = md5
            current = None
    return model, current


def fresh_config(dirs: list[str]) -> Config:
    cfg = Config(data_dirs=dirs)
    cfg.block_size = 64 * 1024  # several blocks per object, without big objects
    cfg.gc_grace_seconds = 0.0
    cfg.orphan_age_seconds = 0.0  # the parent sweeps only while no child runs
    cfg.foreground_max_wait_seconds = 0.0
    return cfg


def os_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
