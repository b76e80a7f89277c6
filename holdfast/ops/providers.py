"""How other parts of Holdfast report their health to the ops layer, without ops depending
on them.

The status page, metrics and alerts must keep working whatever else is broken or missing,
so ops never calls into the data path. Parts with something to report (drives, repair,
scrub: issue 4) instead provide an :class:`OpsProvider`, found at start-up by importing
``PROVIDER_HOOKS``; when a hook module is absent, or its provider raises, status shows the
section as unavailable and goes on.

A provider may answer three questions (each method is optional):

* ``from_index(view)``: its durable state, from the view of the index the status refresher
  read within its deadline (:meth:`holdfast.index.base.Index.status_counts`: totals,
  ``repair_queue`` per drive, ``damaged`` objects). Called on the event loop: it must not
  block.
* ``live()``: this process's in-memory view (for example the drive circuit breakers, which
  every process keeps for itself). Called on the event loop: it must not block.
* ``background(workers)``: in-memory state of the background loops (repair, scrub). Only the
  process running the background workers has it; that process publishes it to a file every
  worker reads, so every worker's status shows the same thing. ``workers`` is that
  process's ``BackgroundWorkers``.

The hook module's ``ops_provider(app)`` receives the worker's ``S3App`` (``app.service``,
``app.workers``) and returns the provider. Each method returns a plain JSON-able dict; keys
the ops layer understands (all optional)::

    {"drives": {"d0": {"state": "up" | "ok" | "down" | "read-only" | "missing",
                       "reason": str}},
     "write_quorum": 1,                      # drives that must be writable to be ready
     "repair": {"queued": int, "in_flight": int, "failed": int, "done_total": int,
                "bytes_per_second": float, "backoff_seconds": float, "oldest_queued": float},
     "scrub": {"progress": 0..1, "pass_started": epoch, "last_pass_completed": epoch,
               "blobs_verified": int, "bytes_verified": int, "rate_bytes_per_second": float,
               "corruptions_found": int, "corruptions_fixed": int},
     "corruption": {"quarantined_copies": int}}

Counters that several processes add to (repairs done, bytes scrubbed, corruptions found and
fixed, block checksum failures, retries) belong in ``holdfast/ops/metrics.py``, which any
layer may import: increment them where the work happens.

Anything else is shown verbatim in the status JSON under the provider's name.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

log = logging.getLogger("holdfast.ops")

# Modules that may define ``ops_provider(app) -> OpsProvider``; absent ones are skipped.
PROVIDER_HOOKS = ("holdfast.workers.health", "holdfast.workers.notify", "holdfast.workers.reseal")


HEALTHY = frozenset({"ok", "up"})


class OpsProvider(Protocol):
    name: str


def call(provider: OpsProvider, method: str, *args: Any) -> dict:
    """One provider method, if it has it; a failure becomes an ``error`` entry."""
    fn = getattr(provider, method, None)
    if fn is None:
        return {}
    try:
        return fn(*args) or {}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def load_providers(app: Any) -> list[OpsProvider]:
    providers: list[OpsProvider] = []
    for module_name in PROVIDER_HOOKS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:  # the module exists but one of its imports failed
                log.warning("ops provider %s could not be imported: %s", module_name, e)
            continue
        except Exception:
            log.exception("ops provider %s could not be imported", module_name)
            continue
        factory = getattr(module, "ops_provider", None)
        if factory is None:
            continue
        try:
            providers.append(factory(app))
        except Exception:
            log.exception("ops provider %s failed to start", module_name)
    return providers
