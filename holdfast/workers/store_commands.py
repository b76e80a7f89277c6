"""``holdfast store add|list|remove`` (back-end stores) and ``holdfast object push|where``
(iwhd's ``op=push`` and ``op=check``): docs/stores.md.

Like ``holdfast bucket policy`` they open the node's index engine directly (SQLite in WAL
mode is safe to share with a running server; PostgreSQL is shared anyway), through the
blocking adapter (holdfast/index/blocking.py). A store added here is taken in by running servers
within about two seconds (their drive monitor, holdfast/workers/monitor.py); ``push`` queues repairs that the
running server's repair worker carries out at the repair rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator

from holdfast.config import Config
from holdfast.index.blocking import BlockingIndex, open_blocking
from holdfast.index.errors import Conflict, IndexError_
from holdfast.index.records import ObjectRecord, RepairTask
from holdfast.masterkey import MasterKeyError, load_keyring
from holdfast.placement.policy import Policy, default_policy
from holdfast.sizes import parse_size
from holdfast.stores.backends import (
    BackendRefused,
    backend_store_id,
    check_backend,
    check_name,
    new_record,
    normalize_prefix,
)
from holdfast.stores.health import adopt
from holdfast.stores.s3_settings import S3Settings

COMMANDS = ("store", "object")
SECRET_ENV = "HOLDFAST_STORE_SECRET_KEY"


def register(sub: argparse._SubParsersAction, add_data: Callable) -> None:
    store = sub.add_parser("store", help="back-end stores (an external S3 service)")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    add = store_sub.add_parser(
        "add",
        help="register an S3-compatible service as a store",
        description="Connects first (lists, writes, reads back and removes a small object): "
        "a wrong URL, refused credentials, a missing bucket or a service that does not speak "
        "S3 is refused with the reason and nothing is registered. Running servers take "
        "the store in within about two seconds.",
    )
    add.add_argument("name")
    add.add_argument("--s3", dest="endpoint", required=True, metavar="URL")
    add.add_argument("--bucket", required=True)
    add.add_argument("--access-key", required=True)
    add.add_argument(
        "--secret-key", help=f"the secret key (default: ${SECRET_ENV}; kept sealed, never shown)"
    )
    add.add_argument("--region", default="us-east-1")
    add.add_argument("--prefix", default="", help="keep Holdfast's objects under this prefix")
    add.add_argument(
        "--quota",
        required=True,
        type=parse_size,
        help="bytes Holdfast may use there (an S3 service reports no free space)",
    )
    add_data(add)
    lst = store_sub.add_parser("list", help="the stores (no credentials shown)")
    lst.add_argument("--json", action="store_true")
    add_data(lst)
    rm = store_sub.add_parser(
        "remove",
        help="unregister a back-end store, after showing what it holds",
        description="Shows the blast radius (objects whose copies would fall below their "
        "policy, bytes to move) and refuses when an object would lose its last copy, "
        "unless --force.",
    )
    rm.add_argument("name")
    rm.add_argument("--force", action="store_true")
    rm.add_argument("--json", action="store_true")
    add_data(rm)

    obj = sub.add_parser("object", help="where an object's copies are; re-replicate it")
    obj_sub = obj.add_subparsers(dest="object_command", required=True)
    where = obj_sub.add_parser("where", help="every copy of an object, and its policy")
    where.add_argument("bucket")
    where.add_argument("key")
    where.add_argument("--json", action="store_true")
    where.add_argument("--no-verify", action="store_true", help="do not read the copies")
    add_data(where)
    push = obj_sub.add_parser(
        "push", help="re-check and re-make every copy (of one object, or a prefix) via repair"
    )
    push.add_argument("bucket")
    push.add_argument("key", nargs="?")
    push.add_argument("--prefix")
    push.add_argument("--json", action="store_true")
    add_data(push)


def run(args: argparse.Namespace, config: Config) -> int:
    from holdfast.index import open_index

    adding = args.command == "store" and args.store_command == "add"
    absent = open_index(config, role="tool").absent()
    if absent is not None and not adding:  # a store may be added before the first start
        print(f"holdfast: {absent}; pass the server's --data", file=sys.stderr)
        return 1
    try:
        index = open_blocking(config, role="tool")
    except IndexError_ as e:
        print(f"holdfast: the index is unavailable: {e}", file=sys.stderr)
        return 1
    try:
        if args.command == "store":
            return {"add": _add, "list": _list, "remove": _remove}[args.store_command](
                args, config, index
            )
        return {"where": _where, "push": _push}[args.object_command](args, config, index)
    except (BackendRefused, MasterKeyError) as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return 2
    finally:
        index.close()


# -- store add / list / remove ---------------------------------------------------------------


def _add(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    name = check_name(args.name)
    secret = args.secret_key or os.environ.get(SECRET_ENV)
    if not secret:
        raise BackendRefused(f"give the secret key with --secret-key or ${SECRET_ENV}")
    if any(r.name == name for r in index.backend_stores()):
        raise BackendRefused(f"a store named {name!r} exists (holdfast store list)")
    if args.quota <= 0:
        raise BackendRefused("--quota must be above 0")
    settings = S3Settings(
        endpoint=args.endpoint.rstrip("/"),
        bucket=args.bucket,
        access_key=args.access_key,
        secret_key=secret,
        region=args.region,
        prefix=normalize_prefix(args.prefix),
        quota=args.quota,
    )
    check_backend(settings)
    keyring = load_keyring(config.primary_dir, create=True)
    record = new_record(name, settings, keyring)
    from holdfast.stores.s3 import S3Store  # boto3: only for a command that uses it

    store = S3Store(record.store_id, settings)
    try:
        uuid_ = adopt(store, os.urandom(16).hex())  # keeps a marker already there
    except OSError as e:
        raise BackendRefused(
            f"{settings.endpoint}: could not write the store marker: {e}"
        ) from None
    try:
        index.add_backend_store(record, uuid_, store.location())
    except Conflict as e:
        raise BackendRefused(str(e)) from None
    print(
        f"added store {name} ({record.store_id}): s3 {store.location()}, quota "
        f"{args.quota} bytes; running servers take it in within about 2 s"
    )
    return 0


def _list(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    from holdfast.stores.local import local_drives

    node = config.node_name or "local"
    rows = [
        {"name": s.name, "kind": "local", "store_id": s.store_id, "location": s.location()}
        for s in local_drives(node, config.data_dirs)
    ]
    for r in index.backend_stores():
        rows.append({"name": r.name, "kind": r.kind, "store_id": r.store_id, **r.settings})
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        if row["kind"] == "local":
            print(f"{row['name']:<16} local  {row['location']}")
        else:
            where = f"{row['endpoint']}/{row['bucket']}/{row['prefix']}"
            print(f"{row['name']:<16} {row['kind']:<6} {where}  quota {row['quota']}")
    return 0


def _policies(config: Config, index: BlockingIndex, stores: int) -> Callable[[str], Policy]:
    recorded = index.get_meta("default_policy")  # the running server's (holdfast serve)
    if recorded:
        d = json.loads(recorded)
        default = _policy(d["copies"], d["min_copies"], d.get("spread") or "", stores)
    else:
        default = default_policy(stores, config.copies, config.min_copies)
        default = _policy(default.copies, default.min_copies, config.spread, stores)
    rows = index.bucket_policies()

    def policy_for(bucket: str) -> Policy:
        row = rows.get(bucket)
        return default if row is None else _policy(row[0], row[1], row[2], stores)

    return policy_for


def _policy(copies: int, min_copies: int, spread: str, stores: int) -> Policy:
    """A policy as the server applies it (no more copies than stores); a spread the fitted
    policy cannot hold is reported against the unfitted one instead of failing."""
    p = Policy(copies, min_copies)
    if not spread:
        return p.fit(stores)
    try:
        return p.fit(stores).with_spread(spread)
    except ValueError:
        return p.with_spread(spread)


def _all_objects(index: BlockingIndex) -> Iterator[ObjectRecord]:
    after = None
    while True:
        page = index.scan_objects(after, 1000)
        if not page:
            return
        yield from page
        after = (page[-1].bucket, page[-1].key)


def _remove(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    record = next((r for r in index.backend_stores() if r.name == args.name), None)
    if record is None:
        raise BackendRefused(f"no back-end store named {args.name!r} (holdfast store list)")
    sid = record.store_id
    kinds = {sid: r.kind for r in index.backend_stores() for sid in [r.store_id]}
    stores = len(config.data_dirs) + len(kinds)
    policy_for = _policies(config, index, stores)  # the policies as they are, before removal
    below = lost = 0
    to_move = 0
    for obj in _all_objects(index):
        segs = [s for s in obj.segments if sid in s.stores]
        if not segs:
            continue
        to_move += sum(s.size for s in segs)
        policy = policy_for(obj.bucket)
        for seg in segs:
            rest = [kinds.get(x, "local") for x in seg.stores if x != sid]
            if not rest:
                lost += 1
                break
            if policy.shortfall(rest):
                below += 1
                break
    radius = {
        "store": args.name,
        "store_id": sid,
        "objects_below_policy": below,
        "objects_losing_every_copy": lost,
        "bytes_to_move": to_move,
    }
    print(json.dumps(radius) if args.json else _radius_text(radius))
    if lost and not args.force:
        print(
            f"holdfast: refused: {lost} object(s) have no other copy; copy them elsewhere "
            "first (holdfast object push) or pass --force to lose them",
            file=sys.stderr,
        )
        return 2
    index.remove_backend_store(args.name)
    if not args.json:
        print(f"removed store {args.name}; running servers let it go within about 2 s")
    return 0


def _radius_text(r: dict) -> str:
    return (
        f"store {r['store']} ({r['store_id']}): {r['objects_below_policy']} object(s) would "
        f"fall below their policy, {r['objects_losing_every_copy']} would lose every copy; "
        f"{r['bytes_to_move']} bytes to move"
    )


# -- object where / push ----------------------------------------------------------------------


def _open_stores(config: Config, index: BlockingIndex):
    from holdfast.service.integrity import backend_stores, node_name
    from holdfast.stores.local import local_drives
    from holdfast.stores.registry import StoreMap

    name = node_name(config, index.drives())
    locals_ = local_drives(name, config.data_dirs)
    return StoreMap(locals_ + backend_stores(config, index), name)


def where(
    config: Config, index: BlockingIndex, bucket: str, key: str, verify: bool, stores=None
) -> dict:
    """Every copy of an object: on which store (and its kind), what the store holds, the
    result of reading it back now (unless ``verify`` is off), and whether the object meets
    its policy. Shared by the CLI and the admin API."""
    from holdfast.stores.verify import copy_state

    obj = index.get_object(bucket, key)
    if obj is None:
        raise LookupError(f"no object {bucket}/{key}")
    stores = stores if stores is not None else _open_stores(config, index)
    policy = _policies(config, index, len(stores))(bucket)
    queued = {(t.blob_id, stores.resolve(t.store_id)) for t in index.repairs(100_000)}
    out_segments = []
    short: list[str] = []
    if obj.inline is not None:
        return {
            "bucket": bucket,
            "key": key,
            "size": obj.size,
            "inline": True,
            "segments": [],
            "policy": policy.as_dict(),
            "meets_policy": policy.copies == 1,
            "shortfall": [] if policy.copies == 1 else ["kept inline in the index: 1 copy"],
        }
    for seg in obj.segments:
        copies = []
        good_kinds = []
        for raw in seg.stores:
            sid = stores.resolve(raw)
            store = stores.get(sid)
            entry: dict = {"store_id": sid, "kind": store.kind if store else "unknown"}
            if store is None:
                entry["state"] = "unknown store"
            else:
                try:
                    info = store.stat(seg.blob_id)
                except OSError as e:
                    info, entry["error"] = None, str(e)
                entry["finished"] = info.mtime if info else None
                if verify and info is not None:
                    try:
                        entry["state"] = copy_state(store, seg)
                    except OSError as e:
                        entry["state"], entry["error"] = "unreadable", str(e)
                    entry["verified_at"] = time.time()
                else:
                    entry["state"] = "present" if info else "missing"
            entry["repair_queued"] = (seg.blob_id, sid) in queued
            if entry.get("state") in ("ok", "present"):
                good_kinds.append(entry["kind"])
            copies.append(entry)
        lack = policy.shortfall(good_kinds)
        short += lack
        out_segments.append(
            {"blob_id": seg.blob_id, "size": seg.size, "copies": copies, "shortfall": lack}
        )
    return {
        "bucket": bucket,
        "key": key,
        "size": obj.size,
        "inline": False,
        "segments": out_segments,
        "policy": policy.as_dict(),
        "meets_policy": not short,
        "shortfall": sorted(set(short)),
    }


def _where(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    try:
        found = where(config, index, args.bucket, args.key, not args.no_verify)
    except LookupError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found))
        return 0
    print(f"{args.bucket}/{args.key}: {found['size']} bytes")
    for seg in found["segments"]:
        print(f"  blob {seg['blob_id']} ({seg['size']} bytes)")
        for c in seg["copies"]:
            when = c.get("verified_at")
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)) if when else "-"
            queued = " (repair queued)" if c["repair_queued"] else ""
            print(
                f"    {c['store_id']:<20} {c['kind']:<6} {c['state']:<10} verified {stamp}{queued}"
            )
    verdict = "meets" if found["meets_policy"] else "does NOT meet"
    print(f"  {verdict} its policy ({Policy(**_policy_args(found['policy'])).describe()})")
    for reason in found["shortfall"]:
        print(f"    - {reason}")
    return 0


def _policy_args(d: dict) -> dict:
    p = Policy(d["copies"], d["min_copies"])
    p = p.with_spread(d["spread"]) if d["spread"] else p
    return {
        "copies": p.copies,
        "min_copies": p.min_copies,
        "kinds": p.kinds,
        "at_least": p.at_least,
    }


def push(
    index: BlockingIndex,
    bucket: str,
    key: str | None,
    prefix: str | None,
    stores=None,  # type: ignore[no-untyped-def]
    policy_for: Callable[[str], Policy] | None = None,
) -> dict:
    """Queue a "copy" repair for every copy the index lists of the object (or of every
    object under the prefix): the repair worker re-checks each and re-makes any that is
    missing or bad, at the repair rate. Given the ``stores`` this process knows and the
    policies, a blob whose copies fall short of its bucket's policy now (one set after the
    write) is also given new copies on stores that make it whole, recorded in the index
    with their repair rows in one transaction. Shared by the CLI and the admin API."""
    objects: list[ObjectRecord] = []
    if key is not None:
        obj = index.get_object(bucket, key)
        if obj is None:
            raise LookupError(f"no object {bucket}/{key}")
        objects = [obj]
    else:
        for obj in _all_objects(index):
            if obj.bucket == bucket and obj.key.startswith(prefix or ""):
                objects.append(obj)
    tasks = []
    now = time.time()
    for obj in objects:
        for seg in obj.segments:
            for sid in seg.stores:
                tasks.append(
                    RepairTask(
                        seg.blob_id,
                        sid,
                        "copy",
                        "push",
                        seg,
                        f"{obj.bucket}/{obj.key}",
                        not_before=now,
                        created=now,
                    )
                )
    queued = index.queue_repairs(tasks)
    added = 0
    if stores is not None and policy_for is not None:
        for obj in objects:
            added += _add_owed_copies(index, obj, stores, policy_for(obj.bucket))
    return {"objects": len(objects), "copies": len(tasks), "queued": queued, "added": added}


def _add_owed_copies(index: BlockingIndex, obj: ObjectRecord, stores, policy: Policy) -> int:  # type: ignore[no-untyped-def]
    from holdfast.placement.policy import more_copies

    free: dict[str, int] = {}  # read once per object: an S3 store's may be a listing
    for s in stores.values():
        try:
            free[s.store_id] = s.space()[0]
        except OSError:
            free[s.store_id] = -1
    candidates = sorted(stores.values(), key=lambda s: free[s.store_id], reverse=True)
    extra: dict[str, list[str]] = {}
    for seg in obj.segments:
        if any(sid not in stores for sid in seg.stores):
            continue  # a copy on a store this process cannot see (another node's): no verdict
        have = [stores[sid] for sid in seg.stores]
        if not policy.shortfall(s.kind for s in have):
            continue
        fits = [s for s in candidates if free[s.store_id] > seg.size]
        new = more_copies(policy, have, fits)
        if new:
            extra[seg.blob_id] = [s.store_id for s in new]
    if not extra:
        return 0
    return index.add_copies(obj.bucket, obj.key, obj.etag, extra)


def _push(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    if (args.key is None) == (args.prefix is None):
        print("holdfast: give a KEY or --prefix P", file=sys.stderr)
        return 2
    stores = _open_stores(config, index)
    try:
        result = push(
            index,
            args.bucket,
            args.key,
            args.prefix,
            stores,
            _policies(config, index, len(stores)),
        )
    except LookupError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"queued {result['queued']} copy check(s) of {result['objects']} object(s) and "
            f"{result['added']} new copies their policy now wants; the repair worker makes "
            "them at the repair rate"
        )
    return 0


__all__ = ["COMMANDS", "register", "run", "where", "push", "backend_store_id"]
