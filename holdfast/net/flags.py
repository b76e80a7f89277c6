"""Flags of the node-to-node layer (docs/cluster.md), declared once: flag, Config field,
environment variable and help. The cluster wiring of ``holdfast serve`` adds them with
:func:`add_cluster_flags` and reads them with :func:`apply_cluster_flags`, which checks,
in one line each, that they come together and that the files make a TLS identity."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from holdfast.config import Config, parse_listen

if TYPE_CHECKING:
    from holdfast.net.tls import NodeIdentity

# (flag, Config field, environment variable, help)
FLAGS: list[tuple[str, str, str, str]] = [
    (
        "--cluster-listen",
        "cluster_listen",
        "HOLDFAST_CLUSTER_LISTEN",
        "HOST:PORT for node-to-node traffic (mutual TLS; not the S3 port)",
    ),
    ("--node-cert", "node_cert", "HOLDFAST_NODE_CERT", "this node's certificate (cluster init)"),
    ("--node-key", "node_key", "HOLDFAST_NODE_KEY", "its private key"),
    ("--cluster-ca", "cluster_ca", "HOLDFAST_CLUSTER_CA", "the cluster CA certificate (ca.pem)"),
]


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster: node-to-node traffic (docs/cluster.md)")
    for flag, field, env, text in FLAGS:
        group.add_argument(
            flag,
            dest=field,
            default=os.environ.get(env),
            metavar="HOST:PORT" if field == "cluster_listen" else "PEM",
            help=f"{text} (env {env})",
        )


def apply_cluster_flags(args: argparse.Namespace, config: Config) -> NodeIdentity | None:
    """Copy the flags into ``config``; the node's TLS identity when they are set. SystemExit
    with one line naming the problem otherwise."""
    for _flag, field, _env, _text in FLAGS:
        value = getattr(args, field, None)
        if value:
            setattr(config, field, value)
    given = [f for f, field, _e, _t in FLAGS if getattr(config, field)]
    if not given:
        return None
    missing = [f for f, field, _e, _t in FLAGS if not getattr(config, field)]
    if missing:
        raise SystemExit(
            f"holdfast: {', '.join(given)} also need{'s' if len(given) == 1 else ''} "
            f"{', '.join(missing)} (see 'holdfast cluster init')"
        )
    try:
        parse_listen(config.cluster_listen or "")
    except ValueError:
        raise SystemExit(
            f"holdfast: --cluster-listen wants HOST:PORT, got {config.cluster_listen!r}"
        ) from None
    try:
        from holdfast.net.tls import NodeIdentity  # X.509: only for a cluster node

        identity = NodeIdentity.load(config.node_cert, config.node_key, config.cluster_ca)  # type: ignore[arg-type]
    except ValueError as e:
        raise SystemExit(f"holdfast: {e}") from None
    if config.node_name and config.node_name != identity.name:
        raise SystemExit(
            f"holdfast: --node-cert is node {identity.name!r}'s certificate, but this node is "
            f"{config.node_name!r} (--node-name); use {config.node_name}'s certificate"
        )
    return identity
