"""The service layer: bucket and object operations on top of index, placement and stores."""

from __future__ import annotations

from holdfast.config import Config
from holdfast.masterkey import load_keyring
from holdfast.service.buckets import Buckets
from holdfast.service.listing import Listing
from holdfast.service.multipart import Multipart
from holdfast.service.node import Node
from holdfast.service.objects import Objects
from holdfast.service.users import Users, load_root_credentials
from holdfast.service.versions import Versions


class Service:
    """Everything one worker process needs to answer requests."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.node = Node(config)
        self.users = Users(
            self.node.index,
            load_root_credentials(config.primary_dir),
            # `holdfast serve` makes (or checks) it before the workers start; a process
            # started some other way (tests, tools) makes it here if it is missing.
            load_keyring(config.primary_dir, create=True),
        )
        self.buckets = Buckets(self.node)
        self.objects = Objects(self.node)
        self.listing = Listing(self.node)
        self.versions = Versions(self.node)
        self.multipart = Multipart(self.node, self.objects)

    async def start(self) -> None:
        """Open the index and the drives, on the loop that will serve (see Node.start)."""
        await self.node.start()

    def start_blocking(self) -> None:
        """For callers without an event loop (tools, tests): see Node.start_blocking."""
        self.node.start_blocking()

    async def aclose(self) -> None:
        await self.node.aclose()

    def close(self) -> None:
        self.node.close()
