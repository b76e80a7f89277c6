"""Mutual TLS between nodes, under the cluster CA (holdfast/net/pki.py).

Both ends present a certificate, and each verifies the other's against the cluster CA
(OpenSSL does that: a certificate from another CA, an expired one, or none at all fails the
handshake). Then each checks the *name* in the peer's certificate:

* the server: the name must be in the layout (``Peers.name_allowed``), so a node removed
  from the cluster, or a certificate issued for a name the layout never had, is refused even
  though the CA signed it;
* the client: the peer must be the node it meant to reach (``expected``), so a stale address
  that now belongs to another node is not mistaken for it; and that node must be in the
  layout too.

Node addresses are IPs and ports from the layout, not host names, so OpenSSL's host name
check is off and the node-name check above replaces it.

Every refusal is counted in ``holdfast_internal_tls_refused_total{reason}`` and logged, at
most once per peer (address or name) and reason per minute: a node with a wrong certificate
retrying every second must not flood the log, but must show in it.

This TLS is for nodes only: S3 clients' TLS (``--tls-cert``/``--tls-key``) is a different
certificate on a different port, and the cluster CA never signs it.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from prometheus_client import Counter

log = logging.getLogger("holdfast.net")

ALPN = "holdfast-internal/1"

TLS_REFUSED = Counter(
    "holdfast_internal_tls_refused",
    "Node-to-node TLS connections refused, by reason (unknown-ca, expired, not-in-layout, "
    "wrong-node, no-certificate, bad-certificate, handshake)",
    ["reason"],
)

# OpenSSL X509_V_ERR_* codes (x509_vfy.h) that name a reason people act on differently.
_VERIFY_REASONS = {
    9: "expired",  # not yet valid: a clock or a certificate from the future, same remedy
    10: "expired",
    18: "unknown-ca",  # self-signed leaf
    19: "unknown-ca",  # self-signed CA in the chain that we do not trust
    20: "unknown-ca",  # issuer not found among our CAs
    21: "unknown-ca",
    2: "unknown-ca",
}
REASONS = (
    "unknown-ca",
    "expired",
    "not-in-layout",
    "wrong-node",
    "no-certificate",
    "bad-certificate",
    "handshake",
)


class Peers(Protocol):
    """What the net layer needs of the cluster layout: the layout (holdfast/cluster/, in the
    index engine) implements it; :class:`StaticPeers` is a fixed one."""

    def name_allowed(self, name: str) -> bool:
        """Whether ``name`` is a node of the current layout (a removed node is not)."""
        ...

    def address(self, name: str) -> tuple[str, int] | None:
        """The internal (``--cluster-listen``) address of node ``name``, None if unknown."""
        ...


class StaticPeers:
    """A fixed set of nodes and their internal addresses."""

    def __init__(self, nodes: dict[str, tuple[str, int]]) -> None:
        self.nodes = dict(nodes)

    def name_allowed(self, name: str) -> bool:
        return name in self.nodes

    def address(self, name: str) -> tuple[str, int] | None:
        return self.nodes.get(name)


class Refused(ConnectionError):
    """A TLS peer was refused (by us, ``reason`` set) or refused us."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OncePerMinute:
    """Says yes to a key at most once per ``interval`` seconds (log rate limiting)."""

    def __init__(self, interval: float = 60.0, max_keys: int = 10_000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[object, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: object) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            if len(self._last) >= self.max_keys:  # a flood of distinct peers: forget the old
                cutoff = now - self.interval
                self._last = {k: t for k, t in self._last.items() if t >= cutoff}
            self._last[key] = now
            return True


_refusal_log = OncePerMinute()


def refuse(reason: str, peer: str, message: str) -> Refused:
    """Count and (rate-limited) log a refusal; returns the exception to raise."""
    TLS_REFUSED.labels(reason).inc()
    if _refusal_log.allow((peer, reason)):
        log.warning("internal TLS: refused %s: %s (%s)", peer, message, reason)
    return Refused(reason, message)


@dataclass(frozen=True)
class NodeIdentity:
    """This node's certificate, key and the cluster CA, and the name its certificate
    carries (what :func:`cert_node_name` reads from it)."""

    name: str
    cluster_id: str
    cert: Path
    key: Path
    ca: Path

    @classmethod
    def load(cls, cert: str | Path, key: str | Path, ca: str | Path) -> NodeIdentity:
        """Read the node's name and cluster id from its certificate. ValueError, in one
        line, when a file is missing or is not what it should be."""
        cert, key, ca = Path(cert), Path(key), Path(ca)
        for what, path in (("certificate", cert), ("key", key), ("CA certificate", ca)):
            if not path.is_file():
                raise ValueError(f"node {what} {path} not found")
        try:
            parsed = x509.load_pem_x509_certificate(cert.read_bytes())
        except ValueError as e:
            raise ValueError(f"{cert} is not a PEM certificate: {e}") from None
        try:
            ca_cert = x509.load_pem_x509_certificate(ca.read_bytes())
        except ValueError as e:
            raise ValueError(f"{ca} is not a PEM certificate: {e}") from None
        try:
            parsed.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise ValueError(
                f"{cert} was not issued by the cluster CA {ca} (wrong CA, or another cluster's)"
            ) from None
        now = datetime.now(UTC)
        if not parsed.not_valid_before_utc <= now <= parsed.not_valid_after_utc:
            raise ValueError(
                f"{cert} is valid only from {parsed.not_valid_before_utc:%Y-%m-%d} to "
                f"{parsed.not_valid_after_utc:%Y-%m-%d}; issue a new one with "
                "'holdfast cluster cert'"
            )
        names = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        units = parsed.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        if not names:
            raise ValueError(f"{cert} names no node (no subject CN)")
        identity = cls(str(names[0].value), str(units[0].value) if units else "", cert, key, ca)
        try:
            server_context(identity)  # key matches, CA loads: fail at start, not at first use
        except (ssl.SSLError, OSError) as e:
            raise ValueError(f"{cert} / {key} / {ca} do not make a TLS identity: {e}") from None
        return identity


def _base_context(identity: NodeIdentity, purpose: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(identity.ca))
    ctx.load_cert_chain(str(identity.cert), str(identity.key))
    ctx.set_alpn_protocols([ALPN])
    return ctx


def server_context(identity: NodeIdentity) -> ssl.SSLContext:
    """Accepts only peers that present a certificate from the cluster CA."""
    return _base_context(identity, ssl.PROTOCOL_TLS_SERVER)


def client_context(identity: NodeIdentity) -> ssl.SSLContext:
    """Presents this node's certificate; accepts only servers certified by the cluster CA.
    Host names are not checked (peers are addressed by IP): :func:`check_server` checks the
    node name instead."""
    ctx = _base_context(identity, ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def cert_node_name(cert: dict | None) -> str | None:
    """The node name a verified peer certificate (``getpeercert()``) carries: its subject
    CN, which must also be one of its DNS names when it has any."""
    if not cert:
        return None
    cn = next(
        (v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"),
        None,
    )
    dns = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    if cn is None or (dns and cn not in dns):
        return None
    return cn


def classify_handshake_error(err: BaseException) -> str:
    """The refusal reason for an exception raised by a TLS handshake."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return _VERIFY_REASONS.get(err.verify_code, "bad-certificate")
    text = str(err).upper()
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in text or "CERTIFICATE REQUIRED" in text:
        return "no-certificate"
    if "CERTIFICATE_VERIFY_FAILED" in text or "UNKNOWN_CA" in text:
        return "unknown-ca"
    if "EXPIRED" in text:
        return "expired"
    return "handshake"


def check_client(ssl_object: ssl.SSLObject | ssl.SSLSocket, peers: Peers, address: str) -> str:
    """Server side, after the handshake: the connecting node's name, if the layout has it;
    otherwise :class:`Refused` (counted and logged)."""
    name = cert_node_name(ssl_object.getpeercert())
    if name is None:
        raise refuse("bad-certificate", address, "certificate names no node")
    if not peers.name_allowed(name):
        raise refuse("not-in-layout", f"{name}@{address}", f"node {name!r} is not in the layout")
    return name


def check_server(
    ssl_object: ssl.SSLObject | ssl.SSLSocket, peers: Peers, expected: str, address: str
) -> str:
    """Client side, after the handshake: the server must be ``expected`` and in the layout."""
    name = cert_node_name(ssl_object.getpeercert())
    if name is None:
        raise refuse("bad-certificate", address, "certificate names no node")
    if name != expected:
        raise refuse(
            "wrong-node",
            f"{expected}@{address}",
            f"{address} answered as node {name!r}, expected {expected!r} (stale address?)",
        )
    if not peers.name_allowed(name):
        raise refuse("not-in-layout", f"{name}@{address}", f"node {name!r} is not in the layout")
    return name
