"""Listing with prefix, delimiter and pagination (the page logic is holdfast/index/listing.py;
which queries it takes and where they run is the index engine's business)."""

from __future__ import annotations

from holdfast.index.listing import BATCH, ListPage, common_prefix
from holdfast.service.node import Node

__all__ = ["BATCH", "ListPage", "Listing", "common_prefix"]


class Listing:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def page(
        self, bucket: str, prefix: str, delimiter: str, after: str | None, max_keys: int
    ) -> ListPage:
        return await self.node.index.list_page(bucket, prefix, delimiter, after, max_keys)
