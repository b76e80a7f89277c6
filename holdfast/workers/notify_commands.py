"""``holdfast notify``: the operator's webhook targets and the outbox (docs/notifications.md).

    holdfast notify target add NAME --url URL [--auth-token-file F] [--secret-file F]
    holdfast notify target list [--json]
    holdfast notify target remove NAME
    holdfast notify status [--json]
    holdfast notify retry [--target NAME]

Secrets come from files, never from the command line (where ``ps`` and shell history would
show them); a file others may read is refused, as ssh refuses a loose key. They are stored
sealed with the master key and never printed. Running servers pick a change up within 2
seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from collections.abc import Callable

from holdfast.config import Config
from holdfast.index.blocking import BlockingIndex, open_blocking
from holdfast.index.errors import IndexError_
from holdfast.masterkey import MasterKeyError, load_keyring
from holdfast.service import notify

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Refused(Exception):
    pass


def register(sub: argparse._SubParsersAction, add_data: Callable) -> None:
    cmd = sub.add_parser(
        "notify", help="event notifications: webhook targets, the outbox (docs/notifications.md)"
    )
    cmd_sub = cmd.add_subparsers(dest="notify_command", required=True)
    target = cmd_sub.add_parser("target", help="webhook targets that buckets refer to by ARN")
    target_sub = target.add_subparsers(dest="target_command", required=True)
    add = target_sub.add_parser(
        "add",
        help="register a webhook target and print its ARN",
        description="Buckets name the target by the ARN printed "
        "(arn:holdfast:sqs:REGION:NAME:webhook) in PutBucketNotificationConfiguration.",
    )
    add.add_argument("name")
    add.add_argument("--url", "--webhook", dest="url", required=True, metavar="URL")
    add.add_argument(
        "--auth-token-file",
        metavar="FILE",
        help="a file (mode 0600) holding a token sent as 'Authorization: Bearer TOKEN'",
    )
    add.add_argument(
        "--secret-file",
        metavar="FILE",
        help="a file (mode 0600) holding a secret: each message is signed with HMAC-SHA256 "
        f"in the {notify.SIGNATURE_HEADER} header",
    )
    add.add_argument("--region", default=Config.region, help="the region in the ARN printed")
    add.add_argument("--json", action="store_true")
    add_data(add)
    lst = target_sub.add_parser("list", help="the targets (secrets never shown)")
    lst.add_argument("--region", default=Config.region)
    lst.add_argument("--json", action="store_true")
    add_data(lst)
    rm = target_sub.add_parser(
        "remove", help="forget a target (its undelivered events are dead-lettered)"
    )
    rm.add_argument("name")
    add_data(rm)
    status = cmd_sub.add_parser("status", help="the outbox: queued and dead events per target")
    status.add_argument("--json", action="store_true")
    add_data(status)
    retry = cmd_sub.add_parser("retry", help="send dead-lettered events again")
    retry.add_argument("--target", help="only this target's")
    add_data(retry)


def run(args: argparse.Namespace, config: Config) -> int:
    from holdfast.index import open_index

    absent = open_index(config, role="tool").absent()
    if absent is not None:
        print(f"holdfast: {absent}; pass the server's --data", file=sys.stderr)
        return EXIT_FAILED
    try:
        index = open_blocking(config, role="tool")
    except IndexError_ as e:
        print(f"holdfast: the index is unavailable: {e}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if args.notify_command == "target":
            verbs = {"add": _add, "list": _list, "remove": _remove}
            return verbs[args.target_command](args, config, index)
        if args.notify_command == "status":
            return _status(args, index)
        n = index.retry_dead_notifications(args.target)
        print(f"{n} dead event(s) queued again")
        return EXIT_OK
    except (Refused, MasterKeyError, ValueError) as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, ValueError) else EXIT_FAILED
    except IndexError_ as e:
        print(f"holdfast: the index is unavailable: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        index.close()


def read_secret_file(path: str) -> str:
    """The first line of a secret file that only its owner may read."""
    try:
        st = os.stat(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise Refused(
                f"{path} may be read by other users (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"chmod 600 {path}"
            )
        with open(path, encoding="utf-8") as f:
            value = f.readline().strip()
    except OSError as e:
        raise Refused(f"cannot read {path}: {e.strerror}") from None
    if not value:
        raise Refused(f"{path} is empty")
    return value


def _add(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    notify.check_target_name(args.name)
    notify.check_url(args.url)
    token = read_secret_file(args.auth_token_file) if args.auth_token_file else None
    secret = read_secret_file(args.secret_file) if args.secret_file else None
    targets = notify.targets_from_text(index.get_meta(notify.META_TARGETS))
    if args.name in targets:
        raise Refused(f"a target named {args.name!r} exists (holdfast notify target list)")
    keyring = load_keyring(config.primary_dir, create=True)
    targets[args.name] = notify.new_target(keyring, args.name, args.url, token, secret)
    index.set_meta(notify.META_TARGETS, notify.targets_to_text(targets))
    shown = targets[args.name].public(args.region)
    if args.json:
        print(json.dumps(shown))
    else:
        print(f"added target {args.name}: {shown['url']}\narn: {shown['arn']}")
    return EXIT_OK


def _list(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    targets = notify.targets_from_text(index.get_meta(notify.META_TARGETS))
    rows = [t.public(args.region) for t in targets.values()]
    if args.json:
        print(json.dumps(rows))
        return EXIT_OK
    if not rows:
        print("no notification targets (holdfast notify target add NAME --url URL)")
    for r in rows:
        extras = [k for k in ("auth_token", "hmac_secret") if r[k]]
        print(f"{r['name']}\t{r['url']}\t{r['arn']}\t{','.join(extras) or '-'}")
    return EXIT_OK


def _remove(args: argparse.Namespace, config: Config, index: BlockingIndex) -> int:
    targets = notify.targets_from_text(index.get_meta(notify.META_TARGETS))
    if targets.pop(args.name, None) is None:
        raise Refused(f"no target named {args.name!r}")
    index.set_meta(notify.META_TARGETS, notify.targets_to_text(targets))
    print(f"removed target {args.name}")
    return EXIT_OK


def _status(args: argparse.Namespace, index: BlockingIndex) -> int:
    summary = index.notification_summary()
    dead = [
        {
            "id": e.id,
            "bucket": e.bucket,
            "key": e.key,
            "event": e.event,
            "target": e.target,
            "attempts": e.attempts,
            "error": e.last_error,
        }
        for e in index.dead_notifications(20)
    ]
    if args.json:
        print(json.dumps({"targets": summary, "dead_examples": dead}))
        return EXIT_OK
    now = time.time()
    if not summary:
        print("the outbox is empty")
    for target, states in sorted(summary.items()):
        pending = states.get("pending", {})
        age = f", oldest {now - pending['oldest']:.0f}s" if pending else ""
        print(
            f"{target}: {pending.get('rows', 0)} queued{age}, "
            f"{states.get('dead', {}).get('rows', 0)} dead"
        )
    for d in dead:
        print(f"  dead #{d['id']} {d['event']} {d['bucket']}/{d['key']}: {d['error']}")
    return EXIT_OK
