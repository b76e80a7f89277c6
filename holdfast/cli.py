"""Command line: ``holdfast serve``, ``holdfast user add|list|disable|remove``,
``holdfast key rotate``, ``holdfast admin status``, ``holdfast log search``. Exit codes: see holdfast/ops/commands.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from holdfast import __version__, filemodes
from holdfast.cluster import commands as cluster_commands
from holdfast.cluster import node as cluster_node
from holdfast.config import DEFAULT_DATA, DEFAULT_LISTEN, Config, parse_listen
from holdfast.index.blocking import BlockingIndex, open_blocking
from holdfast.index.errors import Conflict, IndexError_, NotEmpty
from holdfast.index.flags import add_index_flags, apply_index_flags, remember_index
from holdfast.masterkey import ENV as MASTER_KEY_ENV
from holdfast.masterkey import Keyring, MasterKeyError, encode_key, load_keyring, write_key_file
from holdfast.masterkey import key_file as master_key_file
from holdfast.masterkey import new_key as new_master_key
from holdfast.net import commands as net_commands
from holdfast.ops import commands as ops_commands
from holdfast.ops.node import NodeLock, finish_node, prepare_node
from holdfast.placement.policy import default_policy
from holdfast.service import notify
from holdfast.service.integrity import node_name
from holdfast.service.users import (
    ROOT_USER,
    RootCredentials,
    Users,
    load_root_credentials,
    seal_secrets,
    sealed_key_ids,
    validate_user_name,
)
from holdfast.stores.backends import reseal_backends
from holdfast.stores.registry import WrongNode
from holdfast.workers import commands as integrity_commands
from holdfast.workers import notify_commands
from holdfast.workers.flags import add_integrity_flags, apply_integrity_flags, check_stores
from holdfast.workers.notify_flags import add_notify_flags, apply_notify_flags

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def _add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        action="append",
        metavar="DIR",
        help=f"data directory; give once per drive (default {DEFAULT_DATA})",
    )
    add_index_flags(p)  # every command that reads the data reads the index too


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holdfast", description="S3-compatible object store")
    parser.add_argument("--version", action="version", version=f"holdfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a node")
    _add_data_arg(serve)
    serve.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to serve S3, the admin UI and status on (default {DEFAULT_LISTEN})",
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    serve.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help=f"worker processes (default: one per core, {os.cpu_count() or 1} here)",
    )
    serve.add_argument(
        "--region",
        default=Config.region,
        help=f"the region the node reports and accepts in signatures (default {Config.region})",
    )
    serve.add_argument(
        "--domain",
        action="append",
        metavar="NAME",
        help="domain for virtual-host-style addressing (<bucket>.NAME); may repeat "
        "(default localhost)",
    )
    serve.add_argument(
        "--website-domain",
        action="append",
        metavar="NAME",
        help="serve buckets with a website configuration as static sites at <bucket>.NAME on "
        f"the same port; may repeat (default {Config().website_domains[0]})",
    )

    serve.add_argument(
        "--presign-cache",
        type=int,
        default=4096,
        metavar="N",
        help="presigned URLs remembered after a successful check, per worker "
        "(0: off; default 4096)",
    )
    serve.add_argument(
        "--orphan-age",
        type=float,
        default=7200.0,
        metavar="SECONDS",
        help="age after which an unreferenced blob is garbage (default 7200)",
    )
    serve.add_argument(
        "--sweep-interval",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how often the orphan sweeper runs (default 600)",
    )
    ops_commands.add_serve_args(serve)
    add_integrity_flags(serve)
    add_notify_flags(serve)
    cluster_node.add_serve_flags(serve)  # --cluster-listen, --node-cert, ... (docs/cluster.md)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user and print its keys")
    add.add_argument("name")
    _add_data_arg(add)
    lst = user_sub.add_parser("list", help="list users")
    _add_data_arg(lst)
    lst.add_argument("--json", action="store_true")
    for verb, text in (
        ("disable", "refuse the user's keys from now on (within 2 s on every worker)"),
        ("enable", "accept the user's keys again"),
        ("remove", "delete a user who owns no buckets"),
    ):
        cmd = user_sub.add_parser(verb, help=text)
        cmd.add_argument("name")
        _add_data_arg(cmd)
        cmd.add_argument("--json", action="store_true")
    key = sub.add_parser("key", help="the master key that seals users' secrets")
    key_sub = key.add_subparsers(dest="key_command", required=True)
    rotate = key_sub.add_parser(
        "rotate", help="seal every secret under a new master key (the node must be stopped)"
    )
    _add_data_arg(rotate)
    retire = key_sub.add_parser(
        "retire",
        help="drop the older master keys once nothing is sealed under them (node stopped)",
        description="After 'key rotate' a server re-seals SSE-S3 data keys in the "
        "background (status: sse_reseal). This checks every version and upload, and drops "
        "the older keys only when none is left under them.",
    )
    _add_data_arg(retire)
    ops_commands.add_admin_args(sub)
    ops_commands.add_log_args(sub, _add_data_arg)
    integrity_commands.register(sub, _add_data_arg)
    notify_commands.register(sub, _add_data_arg)
    cluster = sub.add_parser(
        "cluster",
        help="the cluster: CA and certificates, layout, nodes, a dev cluster (docs/cluster.md)",
    )
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    net_commands.register(cluster_sub)
    cluster_commands.register(cluster_sub, _add_data_arg)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    config = Config(data_dirs=args.data or [DEFAULT_DATA])
    if getattr(args, "listen", None):
        config.host, config.port = parse_listen(args.listen)
    if getattr(args, "tls_cert", None) or getattr(args, "tls_key", None):
        if not (args.tls_cert and args.tls_key):
            raise SystemExit("holdfast: --tls-cert and --tls-key go together")
        config.tls_cert, config.tls_key = args.tls_cert, args.tls_key
    config.workers = getattr(args, "workers", 0) or 0
    config.region = getattr(args, "region", None) or config.region
    if getattr(args, "domain", None):
        config.domains = args.domain
    if getattr(args, "website_domain", None):
        config.website_domains = args.website_domain
    config.presign_cache_size = getattr(args, "presign_cache", config.presign_cache_size)
    config.orphan_age_seconds = getattr(args, "orphan_age", config.orphan_age_seconds)
    config.sweep_interval_seconds = getattr(args, "sweep_interval", config.sweep_interval_seconds)
    config.data_dirs = [os.path.abspath(d) for d in config.data_dirs]
    ops_commands.apply_serve_args(config, args)
    apply_integrity_flags(args, config)
    if getattr(args, "command", None) == "serve":
        apply_notify_flags(args, config)
    apply_index_flags(args, config)
    return config


def banner(config: Config, creds: RootCredentials) -> str:
    lines = [
        f"Holdfast {__version__} serving S3 at {config.endpoint}",
        f"  node: {config.node_name}   data: {', '.join(config.data_dirs)}   "
        f"workers: {config.worker_count()}",
        f"  region: {config.region}",
        f"  admin UI: {config.endpoint}/_holdfast/ui/   (or open {config.endpoint}/ in a browser)",
        f"  status:   {config.endpoint}/_holdfast/status   health: {config.endpoint}/_holdfast/health",
    ]
    if config.index_dsn:
        from holdfast.index.postgres.engine import public_location

        lines.append(f"  index: PostgreSQL, {public_location(config.index_dsn)}")
    if creds.source == "environment":
        lines.append("  credentials: from HOLDFAST_ACCESS_KEY / HOLDFAST_SECRET_KEY")
        secret = "$HOLDFAST_SECRET_KEY"
    elif creds.source == "generated":
        lines.append(
            "  credentials: generated now and saved in the data directory; "
            "the secret is shown only this once"
        )
        secret = creds.secret_key
    else:
        lines.append(f"  credentials: from {creds.source} (secret not shown again)")
        secret = f"$(jq -r .secret_key {creds.source})"
    lines += [
        "",
        "  export AWS_ACCESS_KEY_ID=" + creds.access_key,
        "  export AWS_SECRET_ACCESS_KEY=" + secret,
        f"  export AWS_ENDPOINT_URL={config.endpoint}",
        "  export AWS_DEFAULT_REGION=" + config.region,
        f"  mc alias set holdfast {config.endpoint} {creds.access_key} {secret}",
        "",
    ]
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    from holdfast.server import PortInUse, listen, serve, start_forkserver

    config = config_from_args(args)
    identity = cluster_node.apply_serve_flags(args, config)  # None: not a cluster node
    try:
        # First of all: a port held by anything else fails the start before any file changes.
        sock = listen(config)
    except PortInUse as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return 1
    # The workers' code is imported by the forkserver while this process prepares the node
    # (holdfast/server.py): the first GET after a restart waits for the longer of the two,
    # not for both in a row.
    start_forkserver(config)
    for d in config.data_dirs:
        os.makedirs(d, exist_ok=True)
    repaired = filemodes.tighten(config)
    if repaired:
        print(
            f"holdfast: made {len(repaired)} path(s) in the data directory owner-only: "
            + ", ".join(repaired),
            file=sys.stderr,
        )
    warning = filemodes.loose_tls_key(config)
    if warning:
        print(f"holdfast: warning: {warning}", file=sys.stderr)
    creds = load_root_credentials(config.primary_dir)
    try:
        index = open_blocking(config)  # create or migrate before workers start
    except IndexError_ as e:
        print(f"holdfast: the index is unavailable: {e}", file=sys.stderr)
        return 1
    try:
        # Resolved once here, so every worker uses the same name (holdfast/stores/registry.py).
        config.node_name = node_name(config, index.drives())
        keyring = _keyring(config, index)
        sealed, resealed = seal_secrets(index, keyring)
        if sealed or resealed:
            index.purge_history()  # no old text left in the engine's log
        kinds = ["local"] * len(config.data_dirs) + [b.kind for b in index.backend_stores()]
        unfit = check_stores(config, kinds)
        if unfit:
            print(f"holdfast: {unfit}", file=sys.stderr)
            return 2
        # Recorded for the admin commands (object where, store remove), which run without
        # the server's flags.
        policy = default_policy(len(kinds), config.copies, config.min_copies, config.spread)
        index.set_meta("default_policy", json.dumps(policy.as_dict()))
    except WrongNode as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return 2
    except MasterKeyError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return 1
    finally:
        index.close()
    if sealed or resealed:
        print(
            f"holdfast: sealed {sealed} user secret(s) stored in plain text by an older "
            f"Holdfast, re-sealed {resealed} under the current master key ({keyring.source})",
            file=sys.stderr,
        )
    if identity is not None:
        # A cluster node registers nothing itself: its name must be in the layout already.
        asyncio.run(cluster_node.check_layout(config))
    remember_index(config)
    _, node_lock = prepare_node(config)  # boot record, metrics dir; before any worker starts
    print(banner(config, creds), flush=True)
    serve(config, sock)
    finish_node(config, node_lock)
    return 0


def _keyring(config: Config, index: BlockingIndex) -> Keyring:
    """The master key; a new one only where the index holds no sealed secret yet, so a lost
    key is reported (MasterKeyError), never silently replaced."""
    needed = (
        sealed_key_ids(index.list_users())
        or index.backend_stores()
        or index.get_meta(notify.META_TARGETS) not in (None, "{}")
    )
    return load_keyring(config.primary_dir, create=not needed)


def _index(config: Config) -> BlockingIndex:
    """The node's index for a command (no event loop here: BlockingIndex runs one)."""
    from holdfast.index import open_index

    absent = open_index(config, role="tool").absent()
    if absent is not None:
        raise SystemExit(
            f"holdfast: {absent}; run 'holdfast serve --data ...' once or pass the right --data"
        )
    return open_blocking(config)


def _users(args: argparse.Namespace) -> tuple[BlockingIndex, Users]:
    config = config_from_args(args)
    index = _index(config)
    try:
        keyring = _keyring(config, index)
    except BaseException:
        index.close()
        raise
    users = Users(index.index, load_root_credentials(config.primary_dir), keyring)
    return index, users


def cmd_user(args: argparse.Namespace) -> int:
    try:
        return _cmd_user(args)
    except IndexError_ as e:
        print(f"holdfast: the index is unavailable: {e}", file=sys.stderr)
        return ops_commands.EXIT_UNREACHABLE
    except MasterKeyError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return ops_commands.EXIT_FAILED


def cmd_key(args: argparse.Namespace) -> int:
    """``holdfast key rotate``: seal every user's secret under a new master key;
    ``holdfast key retire``: drop the older keys once nothing is sealed under them."""
    config = config_from_args(args)
    index = _index(config)
    config.ops_path.mkdir(parents=True, exist_ok=True)
    try:
        lock = NodeLock(config.ops_path)  # the node must be stopped: its workers hold the key
    except SystemExit:
        print(
            f"holdfast: a 'holdfast serve' is running on {config.primary_dir}: stop it, rotate, "
            "start it again",
            file=sys.stderr,
        )
        return ops_commands.EXIT_FAILED
    try:
        old = load_keyring(config.primary_dir)
        if args.key_command == "retire":
            return _retire(index, old, config)
        if old.source == MASTER_KEY_ENV:
            return _rotate_env(index, old)
        fresh = Keyring.of([new_master_key(), *old.keys.values()], old.source)
        path = master_key_file(config.primary_dir)
        # The new key goes into the file before any secret is sealed with it, and the old
        # ones stay until every secret is re-sealed: a crash anywhere leaves a file that
        # opens everything, and running the command again finishes the job.
        write_key_file(path, fresh)
        _, resealed = seal_secrets(index, fresh)
        resealed += reseal_backends(index, fresh)
        resealed += notify.reseal_targets(index, fresh)
        index.purge_history()
        # The old keys stay, open-only: SSE-S3 objects' data keys are sealed under the key
        # current when each object was written; a running server re-seals them in the
        # background (holdfast/workers/reseal.py), then 'holdfast key retire' drops them.
        write_key_file(path, fresh)
    except MasterKeyError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return ops_commands.EXIT_FAILED
    finally:
        index.close()
        lock.release()
    print(f"rotated the master key: {', '.join(sorted(old.keys))} -> {fresh.current_id}")
    print(
        f"re-sealed {resealed} user secret(s); back up {path} now. The old key stays in it, "
        "open-only, until the server has re-sealed the data keys of SSE-S3 objects written "
        "before (status: sse_reseal); then run 'holdfast key retire'"
    )
    return ops_commands.EXIT_OK


def _retire(index: BlockingIndex, keyring: Keyring, config: Config) -> int:
    """Drop every key but the current one, after checking that nothing is sealed under
    them: users' and stores' secrets, targets' tokens, and every SSE-S3 data key."""
    from holdfast.workers.reseal import count_old_data_keys

    if len(keyring.keys) < 2:
        print(f"only the current master key {keyring.current_id} is there: nothing to retire")
        return ops_commands.EXIT_OK
    _, resealed = seal_secrets(index, keyring)
    resealed += reseal_backends(index, keyring) + notify.reseal_targets(index, keyring)
    if resealed:
        index.purge_history()
    old = count_old_data_keys(index, keyring)
    if old:
        print(
            f"holdfast: {old} SSE-S3 data key(s) are still sealed under an older master key; "
            "start the server and let it re-seal them (status: sse_reseal), then retire "
            "again. Nothing changed.",
            file=sys.stderr,
        )
        return ops_commands.EXIT_FAILED
    retired = sorted(k for k in keyring.keys if k != keyring.current_id)
    if keyring.source == MASTER_KEY_ENV:
        print(
            f"nothing is sealed under {', '.join(retired)} any more: keep only the first key "
            'in HOLDFAST_MASTER_KEY:\n  export HOLDFAST_MASTER_KEY="${HOLDFAST_MASTER_KEY%%,*}"'
        )
        return ops_commands.EXIT_OK
    current = keyring.keys[keyring.current_id]
    write_key_file(master_key_file(config.primary_dir), Keyring.of([current], keyring.source))
    print(
        f"retired master key(s) {', '.join(retired)}; {keyring.current_id} is the only one. "
        f"Back up {master_key_file(config.primary_dir)} now."
    )
    return ops_commands.EXIT_OK


def _rotate_env(index: BlockingIndex, keyring: Keyring) -> int:
    """With HOLDFAST_MASTER_KEY the operator holds the keys: the new one is given first, the
    old one after it, and every secret is re-sealed under the first."""
    if len(keyring.keys) < 2:
        print(
            "holdfast: HOLDFAST_MASTER_KEY holds one key. Put a new key first and the old one "
            "after it, run 'holdfast key rotate' again, then keep only the new key:\n"
            f"  export HOLDFAST_MASTER_KEY={encode_key(new_master_key())},$HOLDFAST_MASTER_KEY",
            file=sys.stderr,
        )
        return ops_commands.EXIT_FAILED
    _, resealed = seal_secrets(index, keyring)
    resealed += reseal_backends(index, keyring)
    resealed += notify.reseal_targets(index, keyring)
    index.purge_history()
    print(
        f"re-sealed {resealed} user secret(s) under key {keyring.current_id} (the first in "
        "HOLDFAST_MASTER_KEY); keep the older keys after it until a server has re-sealed the "
        "SSE-S3 data keys (status: sse_reseal) and 'holdfast key retire' says they may go"
    )
    return ops_commands.EXIT_OK


def _cmd_user(args: argparse.Namespace) -> int:
    index, users = _users(args)
    try:
        return _user_command(args, index, users)
    finally:
        index.close()


def _user_command(args: argparse.Namespace, index: BlockingIndex, users: Users) -> int:
    if args.user_command in ("disable", "enable", "remove"):
        return _change_user(index, users, args)
    if args.user_command == "add":
        try:
            validate_user_name(args.name)
        except ValueError as e:
            print(f"holdfast: {e}", file=sys.stderr)
            return ops_commands.EXIT_USAGE
        try:
            user = index.run(users.add(args.name))
        except Conflict:
            print(f"holdfast: user {args.name!r} already exists", file=sys.stderr)
            return 1
        print(f"user: {user.name}\naccess key: {user.access_key}\nsecret key: {user.secret_key}")
        return 0
    # Root first, marked: it is a user like the others to whoever reads the list, even
    # though its keys live outside the index.
    rows = [
        {"name": ROOT_USER, "access_key": users.root.access_key, "disabled": False, "root": True}
    ] + [
        {"name": u.name, "access_key": u.access_key, "disabled": u.disabled, "root": False}
        for u in index.list_users()
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        print(
            ops_commands.table(
                ["NAME", "ACCESS KEY", "STATE"],
                [
                    [
                        r["name"],
                        r["access_key"],
                        "root" if r["root"] else ("disabled" if r["disabled"] else "enabled"),
                    ]
                    for r in rows
                ],
            )
        )
    return 0


def _change_user(index: BlockingIndex, users: Users, args: argparse.Namespace) -> int:
    verb = args.user_command
    if args.name == ROOT_USER:
        print("holdfast: the root user is set by HOLDFAST_ACCESS_KEY/SECRET_KEY", file=sys.stderr)
        return ops_commands.EXIT_USAGE
    try:
        found = (
            index.run(users.remove(args.name))
            if verb == "remove"
            else index.run(users.set_disabled(args.name, verb == "disable"))
        )
    except NotEmpty as e:
        print(
            f"holdfast: user {args.name!r} still owns buckets ({e}); delete or empty them "
            "first, or use 'holdfast user disable'",
            file=sys.stderr,
        )
        return ops_commands.EXIT_FAILED
    if not found:
        print(f"holdfast: no user {args.name!r}", file=sys.stderr)
        return ops_commands.EXIT_FAILED
    result = {"disable": "disabled", "enable": "enabled", "remove": "removed"}[verb]
    print(
        json.dumps({"name": args.name, "result": result}) if args.json else f"{result} {args.name}"
    )
    return ops_commands.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Runs one command. Output piped into ``head`` (or anything that stops reading) ends the
    command quietly with 141, as a shell reports a program stopped by SIGPIPE."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # inside the try (also after --help's exit): a closed pipe shows here
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's own flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # Everything Holdfast creates is owner-only, whatever the umask it was started with
    # (holdfast/filemodes.py); worker processes inherit it.
    os.umask(filemodes.UMASK)
    if args.command == "key":
        return cmd_key(args)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "user":
        return cmd_user(args)
    if args.command == "admin":
        return ops_commands.cmd_admin(args)
    if args.command == "log":
        return ops_commands.cmd_log(args, config_from_args(args))
    if args.command == "cluster":
        if args.cluster_command in net_commands.VERBS:
            return net_commands.run(args)
        if args.cluster_command == "dev":
            return cluster_commands.run(args, None)
        return cluster_commands.run(args, config_from_args(args))
    if args.command == "notify":
        return notify_commands.run(args, config_from_args(args))
    if args.command in integrity_commands.COMMANDS:
        return integrity_commands.run(args, config_from_args(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
