"""Placement: which stores receive a new blob, and how many must hold it before a write is
acknowledged.

Kept apart from the index (which records where blobs are) and from the stores (which hold
bytes), as in DESIGN.md. It checks free capacity before choosing, and fails fast with a clear
error when nothing fits: it never waits or retries. The same code places copies on local
drives, other nodes' drives and external S3 back-ends (store kinds ``local``, ``node``,
``s3``).

**Spread by kind (iwhd).** A bug is in every copy of the same code, so copies kept only by
one kind of store share its failure modes (the EBS lesson). A policy can therefore ask for
copies on several kinds of store: ``kinds=2`` (the copies span at least two kinds) and
``s3>=1`` (at least one copy on an ``s3`` store), written together as a *spread*:
``kinds=2,s3>=1``. The language, with examples, is in docs/stores.md.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("holdfast.placement")

POLICY_REFRESH_SECONDS = 2.0
DOMAINS = ("drive", "node", "zone")  # failure domains a policy spreads copies over


def node_of(store_id: str) -> str:
    """The node part of a cluster-unique store id (``n2/d0`` -> ``n2``)."""
    return store_id.rpartition("/")[0]


def default_domain(zones: int) -> str:
    """A cluster's default: distinct zones when the layout sets at least two, else nodes."""
    return "zone" if zones >= 2 else "node"


class NoCapacity(Exception):
    """No set of stores can take the blob now.

    ``full`` is True when drives are up but lack space (the front end answers
    InsufficientStorage, 507); False when too few drives are up at all (503)."""

    def __init__(self, message: str, full: bool) -> None:
        super().__init__(message)
        self.full = full


class CapacityStore(Protocol):
    store_id: str
    kind: str

    def free_bytes(self) -> int: ...


KINDS = ("local", "node", "s3")
_KIND_RULE = re.compile(r"([a-z][a-z0-9-]*)>=([0-9]+)")


class Unmeetable(ValueError):
    """The stores there are cannot satisfy the policy, whatever their state (set-time)."""


@dataclass(frozen=True)
class Policy:
    """``copies`` on distinct stores; a write is acknowledged once ``min_copies`` of them
    are durable (the write quorum), the rest being queued for repair. ``kinds``: the copies
    span at least that many kinds of store; ``at_least``: (kind, n) pairs, at least n copies
    on stores of that kind."""

    copies: int = 1
    min_copies: int = 1
    kinds: int = 1
    at_least: tuple[tuple[str, int], ...] = ()
    # Copies go to distinct drives ("drive"), nodes ("node") or zones ("zone"). A cluster
    # node's default is "zone", which is "node" where no zones are set: see default_domain.
    domain: str = "drive"

    def __post_init__(self) -> None:
        if self.copies < 1 or not 1 <= self.min_copies <= self.copies:
            raise ValueError(f"need 1 <= min_copies <= copies, got {self}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")
        if not 1 <= self.kinds <= self.copies:
            raise ValueError(f"kinds={self.kinds} needs 1 <= kinds <= copies ({self.copies})")
        for kind, n in self.at_least:
            if kind not in KINDS:
                raise ValueError(f"unknown store kind {kind!r} (kinds: {', '.join(KINDS)})")
            if n < 1:
                raise ValueError(f"{kind}>={n}: at least 1")
        named = sum(n for _, n in self.at_least)
        if named > self.copies:
            raise ValueError(
                f"{self.spread()} asks for {named} copies, the policy has {self.copies}"
            )

    def spread(self) -> str:
        """The spread in the policy language ("" when there is none)."""
        parts = [f"kinds={self.kinds}"] if self.kinds > 1 else []
        parts += [f"{k}>={n}" for k, n in self.at_least]
        return ",".join(parts)

    def describe(self) -> str:
        text = f"{self.copies} copies, write quorum {self.min_copies}"
        return text + (f", spread {self.spread()}" if self.spread() else "")

    def as_dict(self) -> dict:
        out = {"copies": self.copies, "min_copies": self.min_copies, "spread": self.spread()}
        if self.domain != "drive":  # a cluster's policy names its failure domain
            out["domain"] = self.domain
        return out

    def fit(self, stores: int) -> Policy:
        """The policy as this node can honour it: no more copies than stores."""
        copies = max(1, min(self.copies, stores))
        if copies == self.copies:
            return self
        return Policy(
            copies,
            min(self.min_copies, copies),
            min(self.kinds, copies),
            self.at_least,
            self.domain,
        )

    def with_spread(self, spread: str) -> Policy:
        kinds, at_least = parse_spread(spread)
        return Policy(self.copies, self.min_copies, kinds, at_least, self.domain)

    # -- what a set of copies lacks --------------------------------------------------------

    def shortfall(self, copy_kinds: Iterable[str]) -> list[str]:
        """Why copies on stores of these kinds (one entry per copy) do not meet the policy;
        [] when they do."""
        kinds = list(copy_kinds)
        count = Counter(kinds)
        out = []
        if len(kinds) < self.copies:
            out.append(f"{len(kinds)} of {self.copies} copies")
        if len(count) < self.kinds:
            out.append(f"copies on {len(count)} kind(s) of store, the policy wants {self.kinds}")
        for kind, n in self.at_least:
            if count[kind] < n:
                out.append(f"{count[kind]} copies on {kind} stores, the policy wants {n}")
        return out

    def unmeetable(self, store_kinds: Iterable[str]) -> str | None:
        """Why stores of these kinds (one entry per store) can never hold the policy's
        copies, or None when they can (when all are up and have room)."""
        kinds = list(store_kinds)
        try:
            picked = _pick(self, [(k, k) for k in kinds])
        except ValueError as e:
            return str(e)
        lack = self.shortfall(picked)
        if not lack:
            return None
        have = ", ".join(f"{n} {k}" for k, n in sorted(Counter(kinds).items())) or "none"
        return f"{'; '.join(lack)} (stores: {have})"


def parse_spread(text: str) -> tuple[int, tuple[tuple[str, int], ...]]:
    """``kinds=N`` and ``KIND>=N`` terms, comma separated ("" for none)."""
    kinds = 1
    at_least: dict[str, int] = {}
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        if term.startswith("kinds="):
            value = term[len("kinds=") :]
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"kinds=N needs a whole number >= 1, got {term!r}")
            kinds = int(value)
            continue
        m = _KIND_RULE.fullmatch(term)
        if not m:
            raise ValueError(
                f"not a spread term: {term!r} (use kinds=N or KIND>=N, e.g. kinds=2,s3>=1)"
            )
        at_least[m.group(1)] = int(m.group(2))
    return kinds, tuple(sorted(at_least.items()))


def default_policy(drives: int, copies: int = 0, min_copies: int = 1, spread: str = "") -> Policy:
    """The server's policy: ``copies`` 0 means 2 with two or more stores, else 1."""
    copies = copies or (2 if drives >= 2 else 1)
    policy = Policy(copies, min(min_copies, copies)).fit(drives)
    return policy.with_spread(spread) if spread else policy


def _pick(
    policy: Policy,
    ordered: Sequence[tuple[object, str]],
    domain: Callable[[object], object] | None = None,
) -> list:
    """Up to ``policy.copies`` items from ``ordered`` ((item, kind) pairs, best first),
    chosen to satisfy the spread: first the ``KIND>=N`` terms, then one of each further
    kind until ``kinds`` kinds are in, then the best of the rest. Returns the items."""
    chosen: list[int] = []
    taken: set[int] = set()
    domains: set = set()  # at most one copy per failure domain (drive, node or zone)

    def take(i: int) -> None:
        chosen.append(i)
        taken.add(i)
        if domain is not None:
            domains.add(domain(ordered[i][0]))

    def free(i: int) -> bool:
        if i in taken:
            return False
        return domain is None or domain(ordered[i][0]) not in domains

    for kind, n in policy.at_least:
        for i, (_, k) in enumerate(ordered):
            if n <= 0:
                break
            if k == kind and free(i):
                take(i)
                n -= 1
    while len({ordered[i][1] for i in chosen}) < policy.kinds and len(chosen) < policy.copies:
        have = {ordered[i][1] for i in chosen}
        nxt = next((i for i, (_, k) in enumerate(ordered) if free(i) and k not in have), None)
        if nxt is None:
            break
        take(nxt)
    for i in range(len(ordered)):
        if len(chosen) >= policy.copies:
            break
        if free(i):
            take(i)
    return [ordered[i][0] for i in chosen]


@dataclass(frozen=True)
class Choice:
    """Where a new blob goes: ``targets`` are written now; ``deferred`` are owed a copy
    (down, read-only or full right now) and get a repair queued with the commit."""

    targets: list
    deferred: tuple[str, ...]


def choose_stores(
    stores: Sequence[CapacityStore],
    policy: Policy,
    size_hint: int,
    writable: Callable[[str], bool] = lambda _sid: True,
    zone_of: Callable[[str], str] | None = None,
    prefer: Callable[[str], bool] | None = None,
) -> Choice:
    """The writable stores with the most free space that can each hold ``size_hint`` more
    bytes, at most ``policy.copies`` and at most one per failure domain of
    ``policy.domain`` (a drive, a node, or a zone: ``zone_of`` maps a node's name to its
    zone), spread over kinds as the policy says; raises
    NoCapacity when fewer than ``policy.min_copies`` qualify. The stores the policy wants
    that cannot be written now (down, full) go to ``deferred``: the write is acknowledged at
    the quorum and repair makes those copies (a down S3 back-end of a ``kinds=2`` policy
    gets its copy when it is back, not a second local one in its place).

    ``prefer`` marks the stores of the node that received the write: the emptiest of them
    that has room takes one copy, ahead of emptier stores elsewhere, since writing it costs
    no network hop; the other copies still go to other domains, emptiest first."""
    up = [s for s in stores if writable(s.store_id)]
    fitting = []
    for s in up:
        try:
            free = s.free_bytes()
        except OSError:
            continue
        if free > size_hint:
            fitting.append((free, s))
    fitting.sort(key=lambda fs: fs[0], reverse=True)
    if prefer is not None:
        near = next((i for i, (_, s) in enumerate(fitting) if prefer(s.store_id)), None)
        if near is not None:
            fitting.insert(0, fitting.pop(near))
    usable = {id(s) for _, s in fitting}
    ordered = [(s, _kind(s)) for _, s in fitting]
    ordered += [(s, _kind(s)) for s in stores if id(s) not in usable]
    of = _domain(policy.domain, zone_of)
    picked = _pick(policy, ordered, lambda s: of(s.store_id))  # type: ignore[attr-defined]
    targets = [s for s in picked if id(s) in usable]
    if len(targets) < policy.min_copies:
        domains = {of(s.store_id) for s in up}
        raise NoCapacity(
            f"need {policy.min_copies} store(s) on distinct {policy.domain}s with "
            f"{size_hint} bytes free: {len(up)} of {len(stores)} store(s) up "
            f"({len(domains)} {policy.domain}s), {len(fitting)} with room",
            full=len(domains) >= policy.min_copies,
        )
    return Choice(targets, tuple(s.store_id for s in picked if id(s) not in usable))


def more_copies(
    policy: Policy,
    have: Sequence[object],
    candidates: Sequence[object],
    zone_of: Callable[[str], str] | None = None,
) -> list:
    """The stores (from ``candidates``, best first) to add to a blob's copies on ``have`` so
    that together they meet ``policy``: what ``holdfast object push`` owes an object written
    before its policy asked for more (a copy on another kind of store, say). The copies it
    has count first; none is given up. [] when they already meet it, or nothing can help."""
    held = {s.store_id for s in have}  # type: ignore[attr-defined]
    ordered = [(s, _kind(s)) for s in have]
    ordered += [(s, _kind(s)) for s in candidates if s.store_id not in held]  # type: ignore[attr-defined]
    of = _domain(policy.domain, zone_of)
    picked = _pick(policy, ordered, lambda s: of(s.store_id))  # type: ignore[attr-defined]
    return [s for s in picked if s.store_id not in held]  # type: ignore[attr-defined]


def _domain(domain: str, zone_of: Callable[[str], str] | None) -> Callable[[str], str]:
    if domain == "drive":
        return lambda sid: sid
    if domain == "zone" and zone_of is not None:
        return lambda sid: zone_of(node_of(sid)) or node_of(sid)
    return node_of


def _kind(store: object) -> str:
    return getattr(store, "kind", "local")


class Policies:
    """The server's policy and the per-bucket overrides, held in memory so a PUT never
    reads the index for them; ``refresh`` reloads the overrides (the background monitor
    calls it every couple of seconds, so ``holdfast bucket policy`` takes effect that fast)."""

    def __init__(self, default: Policy, drives: int) -> None:
        self.default = default
        self.drives = drives  # the most copies a policy can have (0: no limit)
        self._buckets: dict[str, Policy] = {}

    def policy_for(self, bucket: str | None) -> Policy:
        if bucket is None or not self._buckets:
            return self.default
        return self._buckets.get(bucket, self.default)

    def refresh(self, load: Callable[[], Mapping[str, tuple]]) -> None:
        """``load`` gives bucket -> (copies, min_copies[, spread])."""
        buckets = {}
        for name, row in load().items():
            copies, min_copies = row[0], row[1]
            spread = row[2] if len(row) > 2 and row[2] else ""
            try:
                policy = Policy(copies, min_copies, domain=self.default.domain)
                policy = policy.fit(self.drives) if self.drives else policy
                buckets[name] = policy.with_spread(spread) if spread else policy
            except ValueError as e:
                log.error("ignoring the placement policy of bucket %s: %s", name, e)
        self._buckets = buckets

    def as_dict(self) -> dict:
        return {
            "default": self.default.as_dict(),
            "buckets": {b: p.as_dict() for b, p in sorted(self._buckets.items())},
        }
