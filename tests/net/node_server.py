"""A real internal server in its own process, for the tests: ``python -m tests.net.node_server
--cert PEM --key PEM --ca PEM --allow n1,n2 --root DIR``. It serves drives under DIR/<drive>,
each made (and initialized) when first asked for, so one process serves every test of a
session. It prints its port, then serves until killed. Its metrics go to
PROMETHEUS_MULTIPROC_DIR, which the tests read (tests/net/support.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import uvloop

from holdfast.net.server import InternalServer
from holdfast.net.tls import NodeIdentity, StaticPeers
from holdfast.stores.base import Store
from holdfast.stores.local import LocalStore

RESERVE, REPAIR_RESERVE = 1.0, 5.0


class DrivesOnDemand(Mapping[str, Store]):
    """Store id ``<node>/<drive>`` -> a LocalStore at ROOT/<drive>, made on first use."""

    def __init__(self, node: str, root: Path) -> None:
        self.node = node
        self.root = root
        self._made: dict[str, LocalStore] = {}

    def __getitem__(self, store_id: str) -> Store:
        node, _, drive = store_id.partition("/")
        if node != self.node or not drive or "/" in drive or drive.startswith("."):
            raise KeyError(store_id)
        if store_id not in self._made:
            # The serve defaults: a 1 % write reserve, a 5 % repair reserve.
            store = LocalStore(store_id, self.root / drive, RESERVE, REPAIR_RESERVE)
            store.initialize(str(uuid.uuid4()))
            self._made[store_id] = store
        return self._made[store_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._made)

    def __len__(self) -> int:
        return len(self._made)


async def main(args: argparse.Namespace) -> None:
    if os.environ.get("NODE_SERVER_DEBUG"):
        logging.basicConfig(
            filename=os.environ["NODE_SERVER_DEBUG"], level=logging.DEBUG,
            format="%(asctime)s %(message)s",
        )  # fmt: skip
    identity = NodeIdentity.load(args.cert, args.key, args.ca)
    peers = StaticPeers({n: ("127.0.0.1", 0) for n in args.allow.split(",")})
    server = InternalServer(identity, DrivesOnDemand(identity.name, Path(args.root)), peers)
    await server.start("127.0.0.1", 0)
    print(server.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for flag in ("--cert", "--key", "--ca", "--allow", "--root"):
        p.add_argument(flag, required=True)
    (asyncio.run if os.environ.get("NODE_SERVER_LOOP") == "asyncio" else uvloop.run)(
        main(p.parse_args())
    )
