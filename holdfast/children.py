"""Entry points of a node's helper processes (the index committer and the cluster agent), and
the first step of every child of the supervisor.

The supervisor (holdfast/server.py) forks each child from its forkserver, which has imported
the workers' and the committer's code before it forks anything; a child imports whatever else
its job needs when it runs (the cluster agent's code, for instance, on a node that is not in
a cluster: nothing). This module imports nothing at its top beyond the standard library, so
that it costs nothing where it is imported. The workers' entry point is
``holdfast.server.run_worker``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class ParentState:
    """What a child takes from the supervisor at the moment it is started. The forkserver it
    is forked from was started earlier, before the supervisor had prepared the node (the
    configuration, the metrics directory, the committer's switch, all passed through the
    environment) and with SIGTERM ignored (holdfast/server.py, ``_forkserver_launch``)."""

    env: dict[str, str]
    umask: int

    @classmethod
    def now(cls) -> ParentState:
        umask = os.umask(0)
        os.umask(umask)
        return cls(dict(os.environ), umask)


def inherit(parent: ParentState) -> None:
    """The first thing every child does: the supervisor's environment and umask as they
    were when it started the child, and SIGTERM's default action (the committer relies on
    it; the workers and the agent install their own handlers)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.umask(parent.umask)
    os.environ.clear()
    os.environ.update(parent.env)


def run_index_committer(config_json: str, parent: ParentState) -> None:
    """The index committer process (holdfast/index/committer.py)."""
    inherit(parent)
    from holdfast.config import CONFIG_ENV, Config
    from holdfast.index import run_committer_process

    os.environ[CONFIG_ENV] = config_json
    run_committer_process(Config.from_env())


def run_cluster_agent(config_json: str, parent: ParentState) -> None:
    """The cluster agent process (holdfast/cluster/agent.py): a cluster node runs one, next
    to its workers."""
    inherit(parent)
    from holdfast.cluster.node import run_agent_process

    run_agent_process(config_json)
