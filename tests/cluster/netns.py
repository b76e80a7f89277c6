"""Real network partitions for the nemesis suite (issue #13): each node in its own network
namespace, joined to the test's bridge by a veth pair, with addresses of the suite's own
(``10.213.T.0/24``, T per test run), all on this machine.

::

    root namespace: bridge hfbrT  10.213.T.1 (the test's clients)  10.213.T.2 (PostgreSQL)
        │ veth hfTvI ─── eth0 in namespace hfT-nI: 10.213.T.(10+I), S3 :9000, cluster :7400

Faults, with nothing but iproute2 (``ip``), so the suite needs no nftables or iptables:

* **isolate** a node: its veth set down. Packets are silently dropped both ways; callers
  see timeouts, as with a pulled cable.
* **cut** between two nodes, or between a node and the index engine: a ``blackhole`` route
  inside the namespace to the other side's address. Sends fail at once. Cut on one side
  only it is asymmetric: ``i`` cannot send to ``j``, ``j``'s packets reach ``i`` but no
  answer gets back (for TCP both ways fail, as they would with a one-way packet filter).
* **heal**: every route removed, every link up.

Everything is torn down by :meth:`Net.down`, which tolerates a half-built net, so a
fixture's finalizer can always call it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done


def unavailable() -> str | None:
    """Why network namespaces cannot be used here (None: they can)."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"hfprobe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"`ip netns add` is not allowed here: {e}"
    try:
        link = f"hfp{uuid.uuid4().hex[:6]}"
        _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", probe)
        _ip("link", "del", link, check=False)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"veth pairs are not allowed here: {e}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


class Net:
    def __init__(self, count: int, tag: int | None = None) -> None:
        self.count = count
        self.tag = tag if tag is not None else 20 + os.getpid() % 200
        self.bridge = f"hfbr{self.tag}"
        self.client_addr = f"10.213.{self.tag}.1"
        self.index_addr = f"10.213.{self.tag}.2"
        self._routes: set[tuple[int, str]] = set()  # (node, blackholed address)

    def ns(self, i: int) -> str:
        return f"hf{self.tag}-n{i}"

    def veth(self, i: int) -> str:
        return f"hf{self.tag}v{i}"

    def addr(self, i: int) -> str:
        return f"10.213.{self.tag}.{10 + i}"

    # -- building and tearing down ------------------------------------------------------------

    def up(self) -> Net:
        self.down()  # whatever an earlier run with the same tag left behind
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.client_addr}/24", "dev", self.bridge)
        _ip("addr", "add", f"{self.index_addr}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(self.count):
            ns = self.ns(i)
            _ip("netns", "add", ns)
            _ip("link", "add", self.veth(i), "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", self.veth(i), "master", self.bridge)
            _ip("link", "set", self.veth(i), "up")
            _ip("link", "set", "lo", "up", ns=ns)
            _ip("addr", "add", f"{self.addr(i)}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
        return self

    def down(self) -> None:
        for i in range(self.count):
            _ip("link", "del", self.veth(i), check=False)
            _ip("netns", "del", self.ns(i), check=False)
        _ip("link", "del", self.bridge, check=False)
        self._routes.clear()

    def exec_prefix(self, i: int) -> list[str]:
        """Run a command inside node i's namespace."""
        return ["ip", "netns", "exec", self.ns(i)]

    # -- faults ---------------------------------------------------------------------------------

    def isolate(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "down")

    def rejoin(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "up")

    def _blackhole(self, i: int, address: str) -> None:
        if (i, address) not in self._routes:
            _ip("route", "add", "blackhole", f"{address}/32", ns=self.ns(i))
            self._routes.add((i, address))

    def cut(self, i: int, j: int, both: bool = True) -> None:
        """No packet from node i to node j (and, with ``both``, from j to i)."""
        self._blackhole(i, self.addr(j))
        if both:
            self._blackhole(j, self.addr(i))

    def cut_index(self, i: int) -> None:
        """Node i cannot reach the index engine; clients still reach it."""
        self._blackhole(i, self.index_addr)

    def heal(self) -> None:
        for i, address in list(self._routes):
            with contextlib.suppress(RuntimeError):
                _ip("route", "del", "blackhole", f"{address}/32", ns=self.ns(i))
        self._routes.clear()
        for i in range(self.count):
            self.rejoin(i)
