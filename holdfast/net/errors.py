"""Errors that cross the wire: the server turns a store's exception into a small JSON
object, the client raises the same exception type again, so a drive on another node fails
exactly like a local one (verify.py, repair and the read path need no special cases)."""

from __future__ import annotations

import errno as errno_mod
from typing import Any

from holdfast.net.tls import Refused
from holdfast.stores.base import StoreFull, StoreMissing
from holdfast.stores.blocks import CorruptBlock


class NodeUnreachable(ConnectionError):
    """The peer could not be reached, or kept failing, after every retry."""


class PeerNotListening(NodeUnreachable):
    """No TCP connection could be made to the peer at all (refused: nothing listens there,
    or no answer within the connect timeout): not retried, see holdfast/net/client.py."""


class RemoteError(OSError):
    """The peer failed in a way this node has no local exception type for (an OSError:
    to its callers, a store that fails)."""


class SessionLost(RemoteError):
    """The peer no longer has the write session (it restarted, or it expired): the blob must
    be written again from its first byte."""


def encode_error(err: BaseException) -> dict[str, Any]:
    if isinstance(err, CorruptBlock):
        return {"type": "CorruptBlock", "blob_id": err.blob_id, "block": err.block,
                "message": str(err)}  # fmt: skip
    if isinstance(err, StoreFull):
        return {"type": "StoreFull", "message": str(err)}
    if isinstance(err, StoreMissing):
        return {"type": "StoreMissing", "errno": err.errno, "message": str(err)}
    if isinstance(err, FileNotFoundError):
        return {"type": "FileNotFoundError", "message": str(err)}
    if isinstance(err, Refused):
        return {"type": "Refused", "reason": err.reason, "message": str(err)}
    if isinstance(err, SessionLost):
        return {"type": "SessionLost", "message": str(err)}
    if isinstance(err, OSError):
        return {"type": "OSError", "errno": err.errno, "message": str(err)}
    if isinstance(err, (ValueError, KeyError, TypeError)):
        return {"type": "ValueError", "message": str(err)}
    return {"type": "RemoteError", "message": f"{type(err).__name__}: {err}"}


def decode_error(obj: dict[str, Any], peer: str) -> BaseException:
    kind = obj.get("type")
    message = f"node {peer}: {obj.get('message', '')}"
    if kind == "CorruptBlock":
        e = CorruptBlock(str(obj.get("blob_id")), int(obj.get("block", -1)), "")
        e.args = (message,)
        return e
    if kind == "StoreFull":
        return StoreFull(message)
    if kind == "StoreMissing":
        return StoreMissing(obj.get("errno") or errno_mod.ENODEV, message)
    if kind == "FileNotFoundError":
        return FileNotFoundError(errno_mod.ENOENT, message)
    if kind == "Refused":
        return Refused(str(obj.get("reason", "refused")), message)
    if kind == "SessionLost":
        return SessionLost(errno_mod.EIO, message)
    if kind == "OSError":
        return OSError(obj.get("errno") or errno_mod.EIO, message)
    if kind == "ValueError":
        return ValueError(message)
    return RemoteError(errno_mod.EIO, message)
