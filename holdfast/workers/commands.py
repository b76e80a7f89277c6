"""Admin commands for integrity: ``holdfast bucket policy`` and ``holdfast fsck``.

Both open the node's index directly (SQLite in WAL mode is safe to share with a running
server), so they work whether or not the server is up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable

from holdfast.config import Config
from holdfast.index.base import Index
from holdfast.placement.policy import Policy

COMMANDS = ("bucket", "fsck")


def register(sub: argparse._SubParsersAction, add_data: Callable) -> None:
    bucket = sub.add_parser("bucket", help="bucket administration (placement policy)")
    bucket_sub = bucket.add_subparsers(dest="bucket_command", required=True)
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

    from holdfast.workers.fsck import add_fsck_parser

    add_fsck_parser(sub, add_data)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "bucket":
        return _bucket_policy(args, config)
    from holdfast.workers.fsck import run_fsck

    return run_fsck(args, config)


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
    drives = len(config.data_dirs)
    if args.clear:
        await index.set_bucket_policy(args.name, None, None)
    elif args.policy_copies is not None:
        try:
            policy = Policy(args.policy_copies, args.policy_min_copies or 1)
        except ValueError as e:
            print(f"holdfast: {e}", file=sys.stderr)
            return 2
        if policy.copies > drives:
            print(
                f"holdfast: {policy.copies} copies need {policy.copies} drives; "
                f"{drives} given with --data",
                file=sys.stderr,
            )
            return 2
        await index.set_bucket_policy(args.name, policy.copies, policy.min_copies)
    stored = (await index.bucket_policies()).get(args.name)
    shown = {
        "bucket": args.name,
        "copies": stored[0] if stored else None,
        "min_copies": stored[1] if stored else None,
        "source": "bucket" if stored else "server",
    }
    if args.json:
        print(json.dumps(shown))
    elif stored:
        print(f"{args.name}: {stored[0]} copies, write quorum {stored[1]}")
    else:
        print(f"{args.name}: the server's policy (--copies / --min-copies)")
    return 0
