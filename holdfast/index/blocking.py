"""Synchronous calls into the asynchronous index, for code that runs in a worker thread.

Some background work is blocking by nature (it reads and writes blob files in a pool thread)
and needs a few index calls in the middle: :class:`BlockingIndex` hands each call to the
event loop the index belongs to and waits for its answer. It must never be used on that
loop's own thread (it would wait on itself): it refuses with RuntimeError instead.

CLI tools that have no event loop get one of their own in a daemon thread
(:func:`open_blocking`).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from holdfast.config import Config
    from holdfast.index.base import Index


class BlockingIndex:
    """``blocking.method(*args)`` is ``await index.method(*args)``, from another thread."""

    def __init__(self, index: Index, loop: asyncio.AbstractEventLoop) -> None:
        self.index = index
        self.loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.index, name)
        if not inspect.iscoroutinefunction(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.run(method(*args, **kwargs))

        call.__name__ = name
        return call

    def run(self, coro: Any) -> Any:
        if _running_loop() is self.loop:
            coro.close()
            raise RuntimeError("BlockingIndex called on its own event loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        """Close the index (and stop the loop, if it is this object's own)."""
        self.run(self.index.close())
        if getattr(self, "_own_loop", False):
            self.loop.call_soon_threadsafe(self.loop.stop)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def open_blocking(config: Config, role: str = "tool") -> BlockingIndex:
    """The configured index, started, on an event loop of its own (for CLI tools)."""
    from holdfast.index import open_index

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="holdfast-index-loop", daemon=True).start()
    index = open_index(config, role=role)
    blocking = BlockingIndex(index, loop)
    blocking._own_loop = True  # type: ignore[attr-defined]
    blocking.run(index.start())
    return blocking
