"""``holdfast cluster layout show|apply|revert|history`` and ``holdfast cluster node
add|remove`` (docs/cluster.md). Each command opens the index engine named by
``--index-dsn`` (or the one recorded in ``--data``), does one thing, and says in one line
what went wrong and what to do when it cannot: nothing is changed then."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import sys
import time
from collections.abc import Callable

from holdfast.cluster import rails
from holdfast.cluster import rebalance_state as rbs
from holdfast.cluster.layout import (
    Layout,
    LayoutError,
    add_node,
    check_capacity,
    describe_change,
    diff,
    drain_node,
    parse_address,
    parse_capacity,
    remove_node,
    set_capacity,
    staged_nodes,
)
from holdfast.config import Config
from holdfast.index import open_index
from holdfast.index.base import Index
from holdfast.index.errors import Conflict, IndexError_, IndexUnavailable
from holdfast.index.records import LayoutRecord, NodeRecord, StagedLayout
from holdfast.placement.balance import used_bytes

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
CLUSTER_NAME_META = "cluster_name"
DEFAULT_CLUSTER_NAME = "holdfast"
VERBS = ("layout", "node", "rebalance", "dev")


def register(
    cluster_sub: argparse._SubParsersAction,
    add_index_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    layout = cluster_sub.add_parser(
        "layout",
        help="show, apply, revert the staged layout; its history",
        description="The layout (nodes, addresses, zones, capacities, states) lives in the "
        "index engine with a version. Changes are staged with 'holdfast cluster node "
        "add|remove', then applied (docs/cluster.md).",
    )
    layout_sub = layout.add_subparsers(dest="layout_command", required=True)
    show = layout_sub.add_parser("show", help="the current layout and the staged change")
    apply = layout_sub.add_parser(
        "apply",
        help="apply the staged change: prints the difference and its blast radius first",
        description="Compare-and-set on the layout version: refused when someone applied a "
        "change since it was staged. Safety rules (one node removed per step, enough nodes "
        "and zones for every policy) refuse unsafe changes unless --force.",
    )
    apply.add_argument(
        "--dry-run",
        action="store_true",
        help="show the plan and the rules' verdict; change nothing",
    )
    apply.add_argument(
        "--force",
        action="store_true",
        help="apply despite the safety rules; asks you to type the cluster's name",
    )
    apply.add_argument(
        "--cluster-name",
        metavar="NAME",
        help="the name --force asks for; recorded by the first apply only (default: holdfast)",
    )
    rules = layout_sub.add_parser(
        "rules",
        help="show or set the numbers of the safety rules (headroom floor, capacity share, "
        "interval between removals)",
        description="Kept in the index engine for the whole cluster; 0 turns a rule off. "
        "Without options, shows them.",
    )
    for flag, field, _parse, text in rails.SETTINGS:
        default = getattr(rails.Settings(), field)
        rules.add_argument(flag, dest=field, metavar="N", help=f"{text} (default {default:g})")
    revert = layout_sub.add_parser("revert", help="drop the staged change")
    history = layout_sub.add_parser(
        "history", help="applied versions: who, when, the difference, the blast radius shown"
    )
    history.add_argument("--limit", type=int, default=20, metavar="N", help="newest N (default 20)")
    for p in (show, apply, rules, revert, history):
        add_index_args(p)
        p.add_argument("--json", action="store_true", help="print JSON")

    node = cluster_sub.add_parser("node", help="stage adding or removing a node")
    node_sub = node.add_subparsers(dest="node_command", required=True)
    add = node_sub.add_parser(
        "add",
        help="stage a node: NAME (as in its certificate) and ADDR, its node-to-node HOST:PORT",
    )
    add.add_argument("name", metavar="NAME", help="the node's name (its certificate's)")
    add.add_argument("addr", metavar="ADDR", help="its --cluster-listen address, HOST:PORT")
    add.add_argument(
        "--s3", metavar="URL", default="", help="its S3 endpoint, for clients and status"
    )
    add.add_argument(
        "--zone", metavar="Z", default="", help="its zone (copies go to distinct zones)"
    )
    add.add_argument(
        "--capacity",
        metavar="C",
        default=None,
        help="its capacity, e.g. 4T or 500G: its weight in the share of the bytes each node "
        "holds (default: unset; unless every node has one, all weigh the same)",
    )
    setp = node_sub.add_parser(
        "set",
        help="stage a new capacity for a node; once applied, a rebalance moves copies so "
        "that each node holds its share at the rebalance rate",
    )
    setp.add_argument("name", metavar="NAME")
    setp.add_argument("--capacity", metavar="C", required=True, help="e.g. 4T or 500G")
    remove = node_sub.add_parser(
        "remove", help="stage a node's removal (apply refuses removing more than one per step)"
    )
    remove.add_argument("name", metavar="NAME")
    drain = node_sub.add_parser(
        "drain",
        help="stage draining a node: once applied it takes no new copies and its copies move "
        "to other nodes at the drain rate ('layout rules --drain-rate'); remove it after",
    )
    drain.add_argument("name", metavar="NAME")
    for p in (add, setp, remove, drain):
        add_index_args(p)

    rebalance = cluster_sub.add_parser(
        "rebalance",
        help="progress of the rebalance that follows an added node or a changed capacity; "
        "start or stop one",
        description="A layout apply that adds a node or changes a capacity starts a "
        "rebalance: copies move from nodes above their share of the bytes (by capacity) to "
        "nodes below it, at the rebalance rate ('layout rules --rebalance-rate'); "
        "docs/cluster.md, Rebalancing.",
    )
    rebalance_sub = rebalance.add_subparsers(dest="rebalance_command", required=True)
    rb_status = rebalance_sub.add_parser("status", help="bytes planned and moved, objects, ETA")
    rb_start = rebalance_sub.add_parser(
        "start", help="start a rebalance now (e.g. after capacities drifted)"
    )
    rb_stop = rebalance_sub.add_parser(
        "stop", help="stop the rebalance under way (what moved stays moved)"
    )
    for p in (rb_status, rb_start, rb_stop):
        add_index_args(p)
        p.add_argument("--json", action="store_true", help="print JSON")

    dev = cluster_sub.add_parser(
        "dev",
        help="run a whole cluster on this machine: PostgreSQL, a cluster CA, N nodes (mTLS)",
        description="Writes DIR/cluster.json (index DSN and pid; each node's name, S3 "
        "endpoint, pid, data directory, argv and env) and runs until Ctrl-C or SIGTERM, "
        "which stop everything it started. Started again with the same DIR it keeps the "
        "data (docs/cluster.md).",
    )
    dev.add_argument("--nodes", type=int, default=3, metavar="N", help="how many nodes (default 3)")
    dev.add_argument("--dir", required=True, metavar="DIR", help="where everything is kept")
    dev.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="S3 worker processes per node (default 1)",
    )


def run(args: argparse.Namespace, config: Config | None) -> int:
    if args.cluster_command == "dev":
        from holdfast.cluster import dev

        return dev.run(args)
    try:
        return asyncio.run(_run(args, config))
    except LayoutError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return EXIT_USAGE
    except IndexUnavailable as e:
        print(
            f"holdfast: cannot reach the index engine ({e}); check --index-dsn and that "
            "PostgreSQL is running",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except IndexError_ as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return EXIT_FAILED


async def _run(args: argparse.Namespace, config: Config) -> int:
    index = open_index(config, role="tool")
    absent = index.absent()
    if absent is not None:
        raise LayoutError(
            f"{absent}; pass --index-dsn (a cluster's PostgreSQL) or the right --data"
        )
    await index.start()
    try:
        if args.cluster_command == "node":
            verb = {
                "add": node_add,
                "set": node_set,
                "remove": node_remove,
                "drain": node_drain,
            }
            return await verb[args.node_command](index, args)
        if args.cluster_command == "rebalance":
            rb = {"status": rebalance_status, "start": rebalance_start, "stop": rebalance_stop}
            return await rb[args.rebalance_command](index, args)
        return await {
            "show": layout_show,
            "apply": layout_apply,
            "revert": layout_revert,
            "history": layout_history,
            "rules": layout_rules,
        }[args.layout_command](index, args)
    finally:
        await index.close()


def operator() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"{who}@{socket.gethostname()}"


async def _state(index: Index) -> tuple[Layout, StagedLayout | None]:
    return Layout.of(await index.get_layout()), await index.get_staged_layout()


async def _stage(index: Index, current: Layout, nodes: tuple[NodeRecord, ...], staged) -> None:
    base = staged.base_version if staged is not None else current.version
    await index.stage_layout(StagedLayout(base, nodes, time.time(), operator()))


async def node_add(index: Index, args: argparse.Namespace) -> int:
    parse_address(args.addr)
    node = NodeRecord(
        name=args.name,
        s3=args.s3,
        cluster=args.addr,
        zone=args.zone,
        capacity=0 if args.capacity is None else check_capacity(parse_capacity(args.capacity)),
    )
    current, staged = await _state(index)
    nodes = add_node(staged_nodes(current, staged), node)
    await _stage(index, current, nodes, staged)
    print(
        f"staged: add node {node.name} at {node.cluster}; 'holdfast cluster layout apply' applies it"
    )
    return EXIT_OK


async def node_set(index: Index, args: argparse.Namespace) -> int:
    capacity = check_capacity(parse_capacity(args.capacity))
    current, staged = await _state(index)
    nodes = set_capacity(staged_nodes(current, staged), args.name, capacity)
    await _stage(index, current, nodes, staged)
    print(
        f"staged: capacity of node {args.name} to {capacity} bytes; 'holdfast cluster layout "
        "apply' applies it (and starts a rebalance)"
    )
    return EXIT_OK


async def node_remove(index: Index, args: argparse.Namespace) -> int:
    current, staged = await _state(index)
    nodes = remove_node(staged_nodes(current, staged), args.name)
    await _stage(index, current, nodes, staged)
    print(f"staged: remove node {args.name}; 'holdfast cluster layout apply' applies it")
    return EXIT_OK


async def node_drain(index: Index, args: argparse.Namespace) -> int:
    current, staged = await _state(index)
    nodes = drain_node(staged_nodes(current, staged), args.name)
    await _stage(index, current, nodes, staged)
    print(f"staged: drain node {args.name}; 'holdfast cluster layout apply' applies it")
    return EXIT_OK


DRAIN_META = "drain_state"  # written by holdfast/workers/drain.py


def describe_drain(d: dict) -> str:
    """One line of drain progress, from the leading node's saved state."""
    nodes = ", ".join(d.get("nodes") or []) or "-"
    phase = d.get("phase")
    if phase == "idle":
        return "drain: nothing draining"
    moved, total = d.get("bytes_moved", 0), d.get("bytes_to_move", 0)
    pct = f" ({100 * moved / total:.0f}%)" if total else ""
    line = (
        f"drain of {nodes}: {phase}, {d.get('copies_moved', 0)} of {d.get('copies_to_move', 0)} "
        f"copies, {moved} of {total} bytes moved{pct} at {d.get('rate', 0):.0f} bytes/s"
    )
    if d.get("failed") or d.get("changed_meanwhile"):
        line += f"; {d.get('failed', 0)} failed, {d.get('changed_meanwhile', 0)} to look at again"
    if phase == "done" and not d.get("failed") and not d.get("changed_meanwhile"):
        line += f"; 'holdfast cluster node remove {nodes}' may follow"
    return line


def _node_rows(nodes: tuple[NodeRecord, ...]) -> list[str]:
    rows = [f"  {'NAME':16} {'STATE':9} {'CLUSTER ADDR':22} {'ZONE':10} {'CAPACITY':>14}  S3"]
    for n in nodes:
        rows.append(
            f"  {n.name:16} {n.state:9} {n.cluster:22} {n.zone or '-':10} "
            f"{n.capacity or '-':>14}  {n.s3 or '-'}"
        )
    return rows


async def layout_show(index: Index, args: argparse.Namespace) -> int:
    current, staged = await _state(index)
    changes = diff(current.nodes, staged.nodes) if staged else []
    if args.json:
        drain = await index.get_meta(DRAIN_META)
        print(
            json.dumps(
                {
                    "drain": json.loads(drain) if drain else None,
                    "rebalance": rbs.progress(await _rebalance(index)),
                    "version": current.version,
                    "nodes": [n.to_json() for n in current.nodes],
                    "staged": None
                    if staged is None
                    else {
                        "base_version": staged.base_version,
                        "by": staged.staged_by,
                        "at": staged.staged_at,
                        "nodes": [n.to_json() for n in staged.nodes],
                        "changes": changes,
                    },
                }
            )
        )
        return EXIT_OK
    print(f"layout version {current.version}" + ("" if current.nodes else " (empty)"))
    if current.nodes:
        print("\n".join(_node_rows(current.nodes)))
    drain = await index.get_meta(DRAIN_META)
    if drain:
        print(describe_drain(json.loads(drain)))
    rebalance = await _rebalance(index)
    if rebalance.phase != "idle":
        print(rbs.describe(rebalance))
    if staged is None:
        print("staged: nothing")
    else:
        stale = "" if staged.base_version == current.version else "  (STALE: made on version "
        stale += f"{staged.base_version})" if stale else ""
        print(f"staged by {staged.staged_by} on version {staged.base_version}{stale}:")
        print("\n".join("  " + describe_change(c) for c in changes) or "  (no difference)")
    return EXIT_OK


SCAN_SECONDS = 20.0  # how long the blast radius may scan the index before it says "at least"


async def _plan(index: Index, current: Layout, staged: StagedLayout) -> rails.Plan:
    policies = await index.bucket_policies()
    plan = rails.Plan(current, staged.nodes, {b: p[0] for b, p in policies.items()})
    plan.settings = rails.Settings.from_text(await index.get_meta(rails.SETTINGS_META))
    if plan.removed:
        plan.copies = await copies_on(index, set(plan.removed))
    if plan.draining:
        plan.drained = await copies_on(index, set(plan.draining))
    if plan.rebalances and current.version > 0:  # the first layout has nothing to move
        plan.held = await held_by(index, {n.name for n in plan.after.active})
    if plan.removes_capacity:
        plan.used_bytes = sum(u.stored_bytes for u in await index.bucket_usage(None))
        for r in await index.layout_history(1000):  # newest first
            if rails.removed_capacity(json.loads(r.blast or "{}")):
                plan.last_removal = (r.version, r.applied_at)
                break
    return plan


async def layout_rules(index: Index, args: argparse.Namespace) -> int:
    settings = rails.Settings.from_text(await index.get_meta(rails.SETTINGS_META))
    changed = False
    for flag, field, parse, _text in rails.SETTINGS:
        value = getattr(args, field)
        if value is None:
            continue
        try:
            setattr(settings, field, parse(value))
        except ValueError as e:
            raise LayoutError(f"{flag}: {e}") from None
        changed = True
    if changed:
        await index.set_meta(rails.SETTINGS_META, settings.to_text())
    if args.json:
        print(settings.to_text())
        return EXIT_OK
    for flag, field, _parse, text in rails.SETTINGS:
        value = getattr(settings, field)
        print(f"{flag[2:]:20} {value:g}{'  (off)' if not value else ''}   {text}")
    return EXIT_OK


async def copies_on(index: Index, removed: set[str], budget: float = SCAN_SECONDS) -> dict:
    """What the nodes ``removed`` hold, by a scan of the objects in pages (only when a
    change removes a node); cut after ``budget`` seconds ("complete": False, counts are
    then lower bounds)."""
    tally = {"objects_losing_copies": 0, "objects_without_copies": 0, "bytes_to_move": 0}
    deadline = time.monotonic() + budget
    after = None
    complete = True
    while True:
        page = await index.scan_objects(after, 1000)
        rails.count_copies(page, removed, tally)
        if len(page) < 1000:
            break
        after = (page[-1].bucket, page[-1].key)
        if time.monotonic() > deadline:
            complete = False
            break
    return {**tally, "complete": complete}


async def held_by(index: Index, nodes: set[str], budget: float = SCAN_SECONDS) -> dict:
    """The bytes each of ``nodes`` holds (every copy of objects and noncurrent versions),
    by a scan in pages cut after ``budget`` seconds ("complete": False, then a lower
    bound)."""
    used: dict[str, int] = {}
    deadline = time.monotonic() + budget
    complete = True
    for scan in (index.scan_objects, index.scan_versions):
        after = None
        while True:
            page = await scan(after, 1000)
            used_bytes(page, nodes, used)
            if len(page) < 1000:
                break
            last = page[-1]
            after = (
                (last.bucket, last.key)
                if scan == index.scan_objects
                else (last.bucket, last.key, last.vseq)
            )
            if time.monotonic() > deadline:
                complete = False
                break
        if not complete:
            break
    return {"used": used, "complete": complete}


async def request_rebalance(index: Index, action: str, reason: str, version: int = 0) -> int:
    """Ask the leading node to start (or stop) a rebalance, for layout ``version`` (it waits
    until it follows that version); the request's sequence number."""
    seq = int(rbs.read_request(await index.get_meta(rbs.REQUEST_KEY)).get("seq") or 0) + 1
    await index.set_meta(rbs.REQUEST_KEY, rbs.request(seq, action, reason, operator(), version))
    return seq


def describe_rebalance_change(changes: list[dict]) -> str:
    """Why a layout change rebalances, in a few words: "n3 added", "n2 capacity"."""
    parts = []
    for c in changes:
        before, after = c["before"] or {}, c["after"] or {}
        if c["change"] == "added":
            parts.append(f"{c['node']} added")
        elif c["change"] == "changed" and before.get("capacity") != after.get("capacity"):
            parts.append(
                f"{c['node']} capacity {before.get('capacity')} -> {after.get('capacity')}"
            )
    return ", ".join(parts) or "layout change"


def _confirm(name: str) -> bool:
    print(f"type the cluster's name ({len(name)} characters) to force this change: ", end="")
    sys.stdout.flush()
    line = sys.stdin.readline()
    return line.strip() == name


async def layout_apply(index: Index, args: argparse.Namespace) -> int:
    current, staged = await _state(index)
    if staged is None:
        raise LayoutError(
            "nothing is staged; stage a change with 'holdfast cluster node add|remove' first"
        )
    if staged.base_version != current.version:
        raise LayoutError(
            f"the staged change was made on layout version {staged.base_version}, but the "
            f"layout is now at version {current.version} (someone applied meanwhile): check "
            "'holdfast cluster layout show', 'holdfast cluster layout revert', and stage again"
        )
    plan = await _plan(index, current, staged)
    changes = plan.changes
    if not changes:
        raise LayoutError("the staged layout is the current one; 'layout revert' drops it")
    blast = plan.blast_radius()
    refusals = rails.check(plan)
    out = {
        "version": current.version,
        "new_version": current.version + 1,
        "changes": changes,
        "blast_radius": blast,
        "refusals": [r.__dict__ for r in refusals],
        "dry_run": bool(args.dry_run),
    }
    if not args.json:
        print(f"layout version {current.version} -> {current.version + 1}:")
        for c in changes:
            print("  " + describe_change(c))
        print(
            f"blast radius: nodes {blast['nodes_before']} -> {blast['nodes_after']} "
            f"(removed: {', '.join(blast['nodes_removed']) or 'none'}), capacity "
            f"{blast['capacity_before']} -> {blast['capacity_after']} bytes, policies need "
            f"{blast['copies_needed']} nodes"
        )
        if blast["nodes_draining"]:
            print(
                f"  draining {', '.join(blast['nodes_draining'])}: "
                f"{(plan.drained or {}).get('objects_losing_copies', 0)} objects have a copy to "
                "move"
            )
        if blast["seconds_at_drain_rate"] is not None:
            print(
                f"  {blast['bytes_to_move']} bytes to move: about "
                f"{blast['seconds_at_drain_rate']:.0f} s at the drain rate of "
                f"{blast['drain_bytes_per_second']:.0f} bytes/s"
            )
        if blast["bytes_to_rebalance"] is not None:
            bound = "" if blast["rebalance_scan_complete"] else " at least (scan cut short)"
            seconds = blast["seconds_at_rebalance_rate"] or 0
            print(
                f"  rebalance: {blast['bytes_to_rebalance']} bytes must move{bound} so that "
                f"each node holds its share (within {plan.settings.rebalance_tolerance_percent:g}%"
                f"): about {seconds:.0f} s at the rebalance rate of "
                f"{blast['rebalance_bytes_per_second']:.0f} bytes/s"
            )
        if blast["free_after"] is not None:
            print(
                f"  headroom after: {blast['free_after']} of {blast['capacity_after']} bytes "
                f"free ({blast['used_bytes']} used)"
            )
        if blast["objects_losing_copies"] is not None:
            bound = "" if blast["scan_complete"] else " at least (scan cut short)"
            print(
                f"  on the removed nodes{bound}: {blast['objects_losing_copies']} objects "
                f"lose a copy, {blast['objects_without_copies']} would have none left, "
                f"{blast['bytes_to_move']} bytes must move"
            )
    for r in refusals:
        print(f"holdfast: {r.line()}", file=sys.stderr)
    if args.dry_run:
        if args.json:
            print(json.dumps(out))
        else:
            print("dry run: nothing changed")
        return EXIT_FAILED if refusals else EXIT_OK
    if refusals:
        name = await index.get_meta(CLUSTER_NAME_META) or DEFAULT_CLUSTER_NAME
        if not args.force:
            print(
                "holdfast: nothing changed; fix the staged change, or override with --force "
                "(you will be asked for the cluster's name)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if not _confirm(name):
            print("holdfast: the cluster's name was not typed; nothing changed", file=sys.stderr)
            return EXIT_FAILED
    record = LayoutRecord(
        version=current.version + 1,
        nodes=staged.nodes,
        applied_at=time.time(),
        applied_by=operator() + (" (forced)" if refusals else ""),
        diff=json.dumps(changes),
        blast=json.dumps(blast),
    )
    try:
        new = await index.apply_layout(current.version, record)
    except Conflict as e:
        raise LayoutError(
            f"not applied: {e}; check 'holdfast cluster layout show' and stage again"
        ) from None
    if current.version == 0 and args.cluster_name:
        await index.set_meta(CLUSTER_NAME_META, args.cluster_name)
    out["applied"] = new
    if plan.rebalances and current.version > 0:  # the first layout has nothing to move yet
        out["rebalance_request"] = await request_rebalance(
            index, "start", f"layout version {new}: {describe_rebalance_change(changes)}", new
        )
        if not args.json:
            print("rebalance requested: 'holdfast cluster rebalance status' shows its progress")
    print(json.dumps(out) if args.json else f"applied: layout version {new}")
    return EXIT_OK


async def _rebalance(index: Index) -> rbs.RebalanceState:
    return rbs.RebalanceState.from_text(await index.get_meta(rbs.STATE_KEY))


async def rebalance_status(index: Index, args: argparse.Namespace) -> int:
    state = await _rebalance(index)
    pending = rbs.read_request(await index.get_meta(rbs.REQUEST_KEY))
    if args.json:
        out = rbs.progress(state)
        out["pending_request"] = pending if int(pending.get("seq") or 0) > state.request else None
        print(json.dumps(out))
        return EXIT_OK
    print(rbs.describe(state))
    if int(pending.get("seq") or 0) > state.request:
        print(
            f"requested ({pending.get('action')}: {pending.get('reason')}) by "
            f"{pending.get('by')}; the leading node takes it up within seconds"
        )
    return EXIT_OK


async def rebalance_start(index: Index, args: argparse.Namespace) -> int:
    current = Layout.of(await index.get_layout())
    if len(current.active) < 2:
        raise LayoutError("a rebalance needs at least two active nodes in the layout")
    seq = await request_rebalance(index, "start", "requested by an operator", current.version)
    print(json.dumps({"request": seq}) if args.json else f"rebalance requested (request {seq})")
    return EXIT_OK


async def rebalance_stop(index: Index, args: argparse.Namespace) -> int:
    state = await _rebalance(index)
    if state.phase not in ("waiting", "counting", "objects", "versions", "retrying"):
        raise LayoutError(f"no rebalance under way (it is {state.phase}); nothing to stop")
    seq = await request_rebalance(index, "stop", "stopped by an operator")
    print(
        json.dumps({"request": seq}) if args.json else f"rebalance stop requested (request {seq})"
    )
    return EXIT_OK


async def layout_revert(index: Index, args: argparse.Namespace) -> int:
    staged = await index.get_staged_layout()
    await index.stage_layout(None)
    print("dropped the staged change" if staged else "nothing was staged")
    return EXIT_OK


async def layout_history(index: Index, args: argparse.Namespace) -> int:
    records = await index.layout_history(max(1, args.limit))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "version": r.version,
                        "applied_at": r.applied_at,
                        "applied_by": r.applied_by,
                        "changes": json.loads(r.diff),
                        "blast_radius": json.loads(r.blast),
                        "nodes": [n.to_json() for n in r.nodes],
                    }
                    for r in records
                ]
            )
        )
        return EXIT_OK
    if not records:
        print("no layout applied yet")
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(r.applied_at))
        print(f"version {r.version}  {when}  by {r.applied_by}")
        for c in json.loads(r.diff):
            print("    " + describe_change(c))
        blast = json.loads(r.blast)
        if blast:
            print(
                f"    blast radius: nodes {blast.get('nodes_before')} -> "
                f"{blast.get('nodes_after')}, removed: "
                f"{', '.join(blast.get('nodes_removed') or []) or 'none'}"
            )
    return EXIT_OK
