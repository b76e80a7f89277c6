"""Admin commands on the index: ``holdfast bucket list|info|policy`` and ``holdfast fsck``.

Both open the node's index directly (SQLite in WAL mode is safe to share with a running
server), so they work whether or not the server is up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable

from holdfast.config import Config
from holdfast.index.base import Index
from holdfast.placement.policy import Policy
from holdfast.sizes import format_size

COMMANDS = ("bucket", "fsck", "store", "object")


def register(sub: argparse._SubParsersAction, add_data: Callable) -> None:
    bucket = sub.add_parser("bucket", help="buckets: sizes, object counts, placement policy")
    bucket_sub = bucket.add_subparsers(dest="bucket_command", required=True)
    lst = bucket_sub.add_parser(
        "list",
        help="every bucket with its owner, object count and size",
        description="Sizes come from the totals the index keeps per bucket: no scan.",
    )
    add_data(lst)
    lst.add_argument("--owner", help="only this user's buckets")
    lst.add_argument("--json", action="store_true")
    info = bucket_sub.add_parser(
        "info", help="one bucket: owner, created, objects, size, copies, damaged, policy"
    )
    info.add_argument("name")
    add_data(info)
    info.add_argument("--json", action="store_true")
    pol = bucket_sub.add_parser(
        "policy",
        help="show or set a bucket's placement policy (copies, write quorum)",
        description="Without --copies or --clear, shows the policy. Running servers pick "
        "a change up within 2 seconds; it applies to objects written afterwards (the "
        "scrubber does not re-place existing ones).",
    )
    pol.add_argument("name")
    add_data(pol)
    pol.add_argument("--copies", dest="policy_copies", type=int, help="copies on distinct drives")
    pol.add_argument(
        "--min-copies", dest="policy_min_copies", type=int, help="write quorum (default 1)"
    )
    pol.add_argument("--clear", action="store_true", help="use the server's policy again")
    pol.add_argument("--json", action="store_true")

    pol.add_argument(
        "--spread",
        dest="policy_spread",
        help="spread over kinds of store, e.g. kinds=2 or kinds=2,s3>=1 ('' for none)",
    )

    from holdfast.workers import store_commands
    from holdfast.workers.fsck import add_fsck_parser

    add_fsck_parser(sub, add_data)
    store_commands.register(sub, add_data)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "bucket" and args.bucket_command == "list":
        return _bucket_list(args, config)
    if args.command == "bucket" and args.bucket_command == "info":
        return _bucket_info(args, config)
    if args.command == "bucket":
        return _bucket_policy(args, config)
    if args.command in ("store", "object"):
        from holdfast.workers import store_commands

        return store_commands.run(args, config)
    from holdfast.workers.fsck import run_fsck

    return run_fsck(args, config)


def _with_index(config: Config, work: Callable) -> int:
    """Runs ``await work(index)`` against the node's index (opened as a tool), then closes it."""
    from holdfast.index import open_index

    index = open_index(config, role="tool")
    absent = index.absent()
    if absent is not None:
        raise SystemExit(f"holdfast: {absent}; pass the server's --data")

    async def run() -> int:
        await index.start()
        try:
            return await work(index)
        finally:
            await index.close()

    return asyncio.run(run())


def _usage_view(u) -> dict:
    return {
        "name": u.bucket.name,
        "owner": u.bucket.owner,
        "created": u.bucket.created,
        "region": u.bucket.region,
        "objects": u.objects,
        "bytes": u.bytes,
        "stored_bytes": u.stored_bytes,
        "damaged": u.damaged,
    }


def _local_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _bucket_list(args: argparse.Namespace, config: Config) -> int:
    return _with_index(config, lambda index: _list_buckets(args, index))


async def _list_buckets(args: argparse.Namespace, index: Index) -> int:
    from holdfast.ops.commands import table

    usage = await index.bucket_usage(args.owner)
    if args.json:
        print(json.dumps([_usage_view(u) for u in usage]))
        return 0
    rows = [
        [
            u.bucket.name,
            u.bucket.owner,
            u.objects,
            format_size(u.bytes),
            _local_time(u.bucket.created),
            u.damaged or "",
        ]
        for u in usage
    ]
    print(table(["NAME", "OWNER", "OBJECTS", "SIZE", "CREATED", "DAMAGED"], rows))
    return 0


def _bucket_info(args: argparse.Namespace, config: Config) -> int:
    return _with_index(config, lambda index: _show_bucket(args, index))


async def _show_bucket(args: argparse.Namespace, index: Index) -> int:
    found = [u for u in await index.bucket_usage() if u.bucket.name == args.name]
    if not found:
        print(f"holdfast: no bucket {args.name!r}", file=sys.stderr)
        return 1
    view = _usage_view(found[0])
    stored = (await index.bucket_policies()).get(args.name)
    view["policy"] = (
        {"copies": stored[0], "min_copies": stored[1], "spread": stored[2]} if stored else None
    )
    if args.json:
        print(json.dumps(view))
        return 0
    policy = (
        f"{stored[0]} copies, write quorum {stored[1]}"
        + (f", spread {stored[2]}" if stored[2] else "")
        if stored
        else "the server's (--copies / --min-copies)"
    )
    print(
        f"bucket    {view['name']}\n"
        f"owner     {view['owner']}\n"
        f"created   {_local_time(view['created'])}\n"
        f"region    {view['region']}\n"
        f"objects   {view['objects']}\n"
        f"size      {format_size(view['bytes'])} ({view['bytes']} bytes)\n"
        f"stored    {format_size(view['stored_bytes'])} with every copy\n"
        f"damaged   {view['damaged']}\n"
        f"policy    {policy}"
    )
    return 0


def _bucket_policy(args: argparse.Namespace, config: Config) -> int:
    from holdfast.index import open_index

    index = open_index(config, role="tool")
    absent = index.absent()
    if absent is not None:
        raise SystemExit(f"holdfast: {absent}; pass the server's --data")

    async def policy() -> int:
        await index.start()
        try:
            return await _apply_policy(args, config, index)
        finally:
            await index.close()

    return asyncio.run(policy())


async def _apply_policy(args: argparse.Namespace, config: Config, index: Index) -> int:
    if await index.get_bucket(args.name) is None:
        print(f"holdfast: no bucket {args.name!r}", file=sys.stderr)
        return 1
    kinds = ["local"] * len(config.data_dirs) + [b.kind for b in await index.backend_stores()]
    drives = len(kinds)
    if args.clear:
        await index.set_bucket_policy(args.name, None, None)
    elif args.policy_copies is not None:
        try:
            policy = Policy(args.policy_copies, args.policy_min_copies or 1)
            if args.policy_spread:
                policy = policy.with_spread(args.policy_spread)
        except ValueError as e:
            print(f"holdfast: {e}", file=sys.stderr)
            return 2
        if policy.copies > drives:
            print(
                f"holdfast: {policy.copies} copies need {policy.copies} stores; "
                f"{drives} there ({len(config.data_dirs)} given with --data, "
                f"{drives - len(config.data_dirs)} back-end)",
                file=sys.stderr,
            )
            return 2
        reason = policy.unmeetable(kinds)
        if reason:
            print(f"holdfast: refused: the stores cannot meet it: {reason}", file=sys.stderr)
            return 2
        await index.set_bucket_policy(args.name, policy.copies, policy.min_copies, policy.spread())
    stored = (await index.bucket_policies()).get(args.name)
    shown = {
        "bucket": args.name,
        "copies": stored[0] if stored else None,
        "min_copies": stored[1] if stored else None,
        "spread": stored[2] if stored else None,
        "source": "bucket" if stored else "server",
    }
    if args.json:
        print(json.dumps(shown))
    elif stored:
        spread = f", spread {stored[2]}" if stored[2] else ""
        print(f"{args.name}: {stored[0]} copies, write quorum {stored[1]}{spread}")
    else:
        print(f"{args.name}: the server's policy (--copies / --min-copies)")
    return 0
