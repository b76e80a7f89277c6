"""``holdfast cluster init`` and ``holdfast cluster cert``: the cluster CA and node
certificates (holdfast/net/pki.py does the work). Other ``cluster`` verbs (layout, node,
dev) register on the same ``cluster`` parser next to these."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 2

VERBS = ("init", "cert")


def register(cluster_sub: argparse._SubParsersAction) -> None:
    init = cluster_sub.add_parser(
        "init",
        help="create a cluster CA, a cluster id and a certificate for each node",
        description="Creates DIR/ca.pem, DIR/ca.key (keep it off the nodes), "
        "DIR/cluster-id.json and DIR/nodes/NAME/{node.pem,node.key,ca.pem} per node "
        "(docs/cluster.md).",
    )
    init.add_argument("--dir", required=True, metavar="DIR", help="where to write (new or empty)")
    init.add_argument("--name", required=True, metavar="CLUSTER", help="the cluster's name")
    init.add_argument(
        "--nodes", required=True, metavar="N1,N2,...", help="comma-separated node names"
    )
    init.add_argument(
        "--ip",
        action="append",
        metavar="ADDR",
        help="IP address to put in every node certificate's SAN; may repeat (default 127.0.0.1)",
    )
    cert = cluster_sub.add_parser(
        "cert",
        help="issue a certificate for one more node, from the CA in DIR",
        description="Writes DIR/nodes/NAME/{node.pem,node.key,ca.pem}; refuses to overwrite.",
    )
    cert.add_argument("name", metavar="NAME", help="the node's name")
    cert.add_argument("--dir", required=True, metavar="DIR", help="the directory of 'cluster init'")
    cert.add_argument(
        "--ip", action="append", metavar="ADDR", help="IP SAN; may repeat (default 127.0.0.1)"
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: cryptography's X.509 is for these two verbs, not for every start of
    # the command line (holdfast serve's supervisor builds this parser too).
    from holdfast.net import pki

    directory = Path(args.dir)
    try:
        ips = pki.check_ips(args.ip or ["127.0.0.1"])
        if args.cluster_command == "init":
            nodes = pki.parse_nodes(args.nodes)
            cluster = pki.init_cluster(directory, args.name, nodes, ips)
            print(f"cluster {cluster.name} ({cluster.id}): CA in {directory / pki.CA_CERT}")
            for n in nodes:
                print(f"  node {n}: {pki.node_files(directory, n).cert.parent}/")
            print(f"  keep {directory / pki.CA_KEY} off the nodes; it signs new node certificates")
            return EXIT_OK
        files = pki.issue_node(directory, args.name, ips)
        print(f"node {args.name}: {files.cert.parent}/")
        return EXIT_OK
    except pki.PkiError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"holdfast: cannot write in {directory}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
