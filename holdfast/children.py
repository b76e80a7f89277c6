"""Entry points of a node's helper processes: the index committer and the cluster agent.

The supervisor (holdfast/server.py) starts each as a ``spawn``ed interpreter, which imports
the module its entry point is defined in, and nothing else, before running it (the
supervisor hides its own ``__main__``, see ``server.only_target_imports``). Defined here, in
a module that imports nothing at its top, each process loads what its own job needs and not
the HTTP server (uvicorn, the S3 front) that the workers run (docs/failure-testing.md,
"Restart at scale"). The workers' entry point is ``holdfast.server.run_worker``: they need
that module anyway.
"""

from __future__ import annotations

import os


def run_index_committer(config_json: str) -> None:
    """The index committer process (holdfast/index/committer.py)."""
    from holdfast.config import CONFIG_ENV, Config
    from holdfast.index import run_committer_process

    os.environ[CONFIG_ENV] = config_json
    run_committer_process(Config.from_env())


def run_cluster_agent(config_json: str) -> None:
    """The cluster agent process (holdfast/cluster/agent.py): a cluster node runs one, next
    to its workers."""
    from holdfast.cluster.node import run_agent_process

    run_agent_process(config_json)
