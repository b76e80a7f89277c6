"""Mutual TLS between nodes (holdfast/net/tls.py): each refusal the issue lists is refused,
counted in holdfast_internal_tls_refused_total{reason} and answered with a clear error, on
both ends. The server is a real internal server process; certificates come from
``holdfast cluster init`` / ``cluster cert``, and the bad ones are minted with cryptography
the way an attacker or a stale deployment would have them."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from holdfast.net import pki
from holdfast.net.errors import PeerNotListening
from holdfast.net.tls import NodeIdentity, Refused
from tests.net import support

REFUSED = "holdfast_internal_tls_refused_total"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("mtls")
    ours = support.cluster_init(work / "ours")
    other = support.cluster_init(work / "other")  # another cluster: same names, another CA
    ca_cert, ca_key = pki.load_ca(ours)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    for name in ("n1", "n2"):
        cert, key = pki.make_node_cert(
            ca_cert, ca_key, name, not_before=past, not_after=past + dt.timedelta(days=1)
        )
        pki.write_pair(cert, key, work / f"expired-{name}.pem", work / f"expired-{name}.key")
    pki.issue_node(ours, "n9")  # signed by our CA, but not in the layout
    return {"work": work, "ours": ours, "other": other}


@pytest.fixture(scope="module")
def n2(certs) -> Iterator[support.ServerProcess]:
    server = support.start_node(certs["work"] / "n2", certs["ours"], "n2", ("n1", "n2", "n3"))
    yield server
    server.stop()


def ident(name: str, cert: Path, key: Path, ca: Path) -> NodeIdentity:
    return NodeIdentity(name, "", cert, key, ca)  # unchecked: load() refuses bad ones itself


def node_files(cluster: Path, name: str) -> tuple[Path, Path]:
    f = pki.node_files(cluster, name)
    return f.cert, f.key


def server_counts(server: support.ServerProcess, reason: str, before: float, n: int = 1) -> bool:
    return support.wait_for(lambda: server.sample(REFUSED, {"reason": reason}) >= before + n)


def test_a_cluster_node_is_served(certs, n2):
    client = support.client_for(certs["ours"], "n1", {"n2": n2.port})
    assert client.call("n2", "ping") == {"node": "n2"}
    client.close()


@pytest.mark.parametrize(
    "case, reason",
    [("other-ca", "unknown-ca"), ("expired", "expired"), ("no-cert", "no-certificate")],
)
def test_the_server_refuses_a_bad_client_certificate(certs, n2, case, reason):
    ca = certs["ours"] / pki.CA_CERT
    if case == "other-ca":
        identity = ident("n1", *node_files(certs["other"], "n1"), ca)
    elif case == "expired":
        identity = ident(
            "n1", certs["work"] / "expired-n1.pem", certs["work"] / "expired-n1.key", ca
        )
    else:
        identity = ident("n1", *node_files(certs["ours"], "n1"), ca)
    context = None
    if case == "no-cert":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(str(ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    before = n2.sample(REFUSED, {"reason": reason})
    client = support.client_for(identity, "n1", {"n2": n2.port}, attempts=1, context=context)
    with pytest.raises(OSError):
        client.call("n2", "ping")
    assert server_counts(n2, reason, before), f"server did not count {reason}"
    assert n2.sample(REFUSED, {"reason": reason}) == before + 1


def test_the_server_refuses_a_node_not_in_its_layout(certs, n2):
    before = n2.sample(REFUSED, {"reason": "not-in-layout"})
    client = support.client_for(certs["ours"], "n9", {"n2": n2.port}, attempts=1)
    with pytest.raises(Refused, match="'n9' is not in the layout") as err:
        client.call("n2", "ping")
    assert err.value.reason == "not-in-layout"
    assert server_counts(n2, "not-in-layout", before)


class BadServer:
    """A TLS server presenting a given certificate (a node that is not what it claims)."""

    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.ctx.load_verify_locations(str(ca))
        self.ctx.verify_mode = ssl.CERT_OPTIONAL
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as s:
                    s.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("case, reason", [("other-ca", "unknown-ca"), ("expired", "expired")])
def test_the_client_refuses_a_bad_server_certificate(certs, case, reason):
    ca = certs["ours"] / pki.CA_CERT
    if case == "other-ca":
        server = BadServer(*node_files(certs["other"], "n2"), ca)
    else:
        server = BadServer(certs["work"] / "expired-n2.pem", certs["work"] / "expired-n2.key", ca)
    try:
        before = support.local_sample(REFUSED, {"reason": reason})
        client = support.client_for(certs["ours"], "n1", {"n2": server.port})
        with pytest.raises(Refused) as err:
            client.call("n2", "ping")
        assert err.value.reason == reason
        assert support.local_sample(REFUSED, {"reason": reason}) == before + 1, "retried?"
    finally:
        server.close()


def test_the_client_refuses_the_wrong_node_and_unknown_names(certs, n2):
    before = support.local_sample(REFUSED, {"reason": "wrong-node"})
    client = support.client_for(certs["ours"], "n1", {"n3": n2.port})  # a stale address
    with pytest.raises(Refused, match="answered as node 'n2', expected 'n3'"):
        client.call("n3", "ping")
    assert support.local_sample(REFUSED, {"reason": "wrong-node"}) == before + 1
    before = support.local_sample(REFUSED, {"reason": "not-in-layout"})
    with pytest.raises(Refused, match="not in the layout"):
        client.call("n7", "ping")
    assert support.local_sample(REFUSED, {"reason": "not-in-layout"}) == before + 1


def test_loading_a_bad_identity_says_what_is_wrong(certs):
    ours, other = certs["ours"], certs["other"]
    cert, key = node_files(ours, "n1")
    with pytest.raises(ValueError, match="not issued by the cluster CA"):
        NodeIdentity.load(cert, key, other / pki.CA_CERT)
    with pytest.raises(ValueError, match="valid only from"):
        NodeIdentity.load(certs["work"] / "expired-n1.pem", certs["work"] / "expired-n1.key",
                          ours / pki.CA_CERT)  # fmt: skip
    with pytest.raises(ValueError, match="not found"):
        NodeIdentity.load(ours / "nope.pem", key, ours / pki.CA_CERT)
    assert NodeIdentity.load(cert, key, ours / pki.CA_CERT).name == "n1"


def test_no_unreachable_retry_storm(certs):
    """A node where nothing listens costs one attempt and no backoff, then a clear error
    (the caller has another copy to read, or a handoff log to write), and the client says
    so until a connection to it succeeds."""
    sleeps: list[float] = []
    client = support.client_for(certs["ours"], "n1", {"n2": 1}, attempts=4, sleep=sleeps.append)
    assert not client.unreachable("n2")
    with pytest.raises(PeerNotListening, match="node n2 at 127.0.0.1:1"):
        client.call("n2", "ping")
    assert sleeps == []
    assert client.unreachable("n2")
