"""``holdfast serve`` as a cluster node: its flags, the start-up check against the layout,
and the entry point of the cluster agent process (holdfast/cluster/agent.py) that the
supervisor runs next to the S3 workers.

The node-to-node flags (``--cluster-listen``, ``--node-cert``, ``--node-key``,
``--cluster-ca``) are the net layer's (holdfast/net/flags.py); this module adds
``--heartbeat-rate`` and the rules that tie them to the index: a cluster node needs
``--index-dsn`` and a name that the layout has. It registers nothing by itself: an operator
adds it to the layout (docs/cluster.md).

The agent and the node-to-node transport (TLS, X.509) are imported where a cluster node
uses them, not at the top: every ``holdfast serve`` builds its flags from this module, and
most are no cluster node (docs/failure-testing.md, "Restart at scale")."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING

from holdfast.cluster.layout import Layout
from holdfast.cluster.liveness import DEFAULT_RATE, HeartbeatPlan
from holdfast.config import CONFIG_ENV, Config, parse_listen
from holdfast.index import open_index
from holdfast.index.errors import IndexError_
from holdfast.net.flags import add_cluster_flags, apply_cluster_flags

if TYPE_CHECKING:
    from holdfast.net.tls import NodeIdentity

log = logging.getLogger("holdfast.cluster")

HEARTBEAT_RATE_ENV = "HOLDFAST_HEARTBEAT_RATE"


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    add_cluster_flags(parser)
    parser.add_argument(
        "--heartbeat-rate",
        type=float,
        default=float(os.environ.get(HEARTBEAT_RATE_ENV, DEFAULT_RATE)),
        metavar="N",
        help="heartbeats this node sends per second in total, whatever the cluster's size "
        f"(env {HEARTBEAT_RATE_ENV}; default {DEFAULT_RATE:g})",
    )


def apply_serve_flags(args: argparse.Namespace, config: Config) -> NodeIdentity | None:
    """The node's TLS identity when it is a cluster node; SystemExit in one line when the
    flags do not make one."""
    identity = apply_cluster_flags(args, config)
    rate = getattr(args, "heartbeat_rate", DEFAULT_RATE)
    if not rate > 0:
        raise SystemExit("holdfast: --heartbeat-rate must be > 0 (messages per second)")
    config.heartbeat_rate = rate
    if identity is None:
        return None
    if not config.index_dsn:
        raise SystemExit(
            "holdfast: a cluster node (--cluster-listen) needs --index-dsn, the cluster's "
            "PostgreSQL, shared by every node (docs/cluster.md)"
        )
    if not config.node_name:
        config.node_name = identity.name
    return identity


async def check_layout(config: Config) -> Layout:
    """The layout at start; SystemExit in one line when this node is not in it (or the
    engine cannot be read)."""
    from holdfast.cluster.agent import not_in_layout

    index = open_index(config, role="tool")
    try:
        await index.start()
        layout = Layout.of(await index.get_layout())
    except IndexError_ as e:
        raise SystemExit(f"holdfast: cannot read the cluster layout: {e}") from None
    finally:
        await index.close()
    if not layout.name_allowed(config.node_name):
        raise SystemExit(f"holdfast: {not_in_layout(config.node_name, layout)}")
    return layout


def run_agent_process(config_json: str) -> None:
    """Entry point of the cluster agent process (the supervisor restarts it if it dies)."""
    os.environ[CONFIG_ENV] = config_json
    config = Config.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        import uvloop

        uvloop.run(_agent_main(config))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(_agent_main(config))


async def _agent_main(config: Config) -> None:
    from holdfast.cluster.agent import ClusterAgent
    from holdfast.net.tls import NodeIdentity
    from holdfast.stores.local import local_drives
    from holdfast.stores.registry import StoreMap

    identity = NodeIdentity.load(config.node_cert, config.node_key, config.cluster_ca)  # type: ignore[arg-type]
    stores = StoreMap(
        local_drives(
            config.node_name,
            config.data_dirs,
            config.reserve_percent,
            config.repair_reserve_percent,
        ),
        config.node_name,
    )
    index = open_index(config, role="tool")
    await index.start()
    agent = ClusterAgent(
        config.node_name,
        index,
        identity,
        stores,
        parse_listen(config.cluster_listen or ""),
        config.state_dir,
        HeartbeatPlan(config.heartbeat_rate),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    try:
        await stop.wait()
    finally:
        await agent.close()
        await index.close()
