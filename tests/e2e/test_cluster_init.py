"""``holdfast cluster init`` and ``holdfast cluster cert``: what they write, with which
permissions, and the one-line refusals for bad input (which change nothing)."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from holdfast.net import pki
from holdfast.net.flags import apply_cluster_flags
from holdfast.net.tls import NodeIdentity


def holdfast(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "holdfast.cli", *args], capture_output=True, text=True, timeout=60
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_init_writes_a_ca_a_cluster_id_and_node_certificates(tmp_path):
    d = tmp_path / "cluster"
    r = holdfast("cluster", "init", "--dir", str(d), "--name", "prod", "--nodes", "n1,n2,n3")
    assert r.returncode == 0, r.stderr
    ident = json.loads((d / "cluster-id.json").read_text())
    assert ident["name"] == "prod" and len(ident["id"]) == 36
    assert mode(d) == 0o700 and mode(d / "ca.key") == 0o600 and mode(d / "nodes") == 0o700
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in ("n1", "n2", "n3"):
        f = pki.node_files(d, name)
        assert mode(f.cert.parent) == 0o700 and mode(f.key) == 0o600
        cert = x509.load_pem_x509_certificate(f.cert.read_bytes())
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert (
            cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
            == (ident["id"])
        )
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [name]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        cert.verify_directly_issued_by(ca)
        assert f.ca.read_bytes() == (d / "ca.pem").read_bytes()
        assert NodeIdentity.load(f.cert, f.key, f.ca).cluster_id == ident["id"]
    assert str(d / "ca.key") in r.stdout


def test_cert_issues_one_more_node_later(tmp_path):
    d = tmp_path / "c"
    assert (
        holdfast("cluster", "init", "--dir", str(d), "--name", "x", "--nodes", "n1").returncode == 0
    )
    r = holdfast("cluster", "cert", "n4", "--dir", str(d), "--ip", "10.0.0.4", "--ip", "::1")
    assert r.returncode == 0, r.stderr
    f = pki.node_files(d, "n4")
    cert = x509.load_pem_x509_certificate(f.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.4", "::1"]
    assert NodeIdentity.load(f.cert, f.key, f.ca).name == "n4"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nodes", "n1,n1"], "node name given twice: n1"),
        (["--nodes", "n1,bad/name"], "not a node name: 'bad/name'"),
        (["--nodes", " , "], "--nodes wants at least one node name"),
        (["--nodes", "n1", "--ip", "1.2.3"], "--ip wants an IP address, got '1.2.3'"),
    ],
)
def test_init_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, args, message):
    d = tmp_path / "c"
    r = holdfast("cluster", "init", "--dir", str(d), "--name", "prod", *args)
    assert r.returncode == 2
    assert r.stderr.strip() == f"holdfast: {message}" or message in r.stderr.strip()
    assert len(r.stderr.strip().splitlines()) == 1
    assert not d.exists()


def test_existing_ca_and_node_are_never_overwritten(tmp_path):
    d = tmp_path / "c"
    assert (
        holdfast("cluster", "init", "--dir", str(d), "--name", "a", "--nodes", "n1").returncode == 0
    )
    before = snapshot(d)
    r = holdfast("cluster", "init", "--dir", str(d), "--name", "b", "--nodes", "n2")
    assert r.returncode == 2 and "already holds a cluster CA" in r.stderr
    r = holdfast("cluster", "cert", "n1", "--dir", str(d))
    assert r.returncode == 2 and "already has a certificate" in r.stderr
    assert snapshot(d) == before
    r = holdfast("cluster", "cert", "n2", "--dir", str(tmp_path / "none"))
    assert r.returncode == 2 and "no cluster CA in" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cluster_flags_come_together_and_must_make_an_identity(tmp_path):
    """holdfast/net/flags.py: what ``serve`` will say for a missing or wrong certificate."""
    d = tmp_path / "c"
    other = tmp_path / "other"
    pki.init_cluster(d, "a", ["n1"])
    pki.init_cluster(other, "b", ["n1"])
    f = pki.node_files(d, "n1")

    def apply(**kw):
        from holdfast.config import Config

        ns = argparse.Namespace(cluster_listen=None, node_cert=None, node_key=None, cluster_ca=None)
        for k, v in kw.items():
            setattr(ns, k, v)
        config = Config(node_name=kw.pop("node_name", ""))
        return apply_cluster_flags(ns, config)

    assert apply() is None
    with pytest.raises(SystemExit, match="--cluster-listen also needs --node-cert, --node-key"):
        apply(cluster_listen="127.0.0.1:7000")
    full = {"cluster_listen": "127.0.0.1:7000", "node_cert": str(f.cert), "node_key": str(f.key)}
    with pytest.raises(SystemExit, match="not issued by the cluster CA"):
        apply(**full, cluster_ca=str(other / "ca.pem"))
    with pytest.raises(SystemExit, match="certificate .* not found"):
        apply(**{**full, "node_cert": str(d / "missing.pem")}, cluster_ca=str(f.ca))
    with pytest.raises(SystemExit, match="wants HOST:PORT"):
        apply(**{**full, "cluster_listen": "nowhere"}, cluster_ca=str(f.ca))
    with pytest.raises(SystemExit, match="node 'n1''s certificate, but this node is 'n2'"):
        apply(**full, cluster_ca=str(f.ca), node_name="n2")
    assert apply(**full, cluster_ca=str(f.ca)).name == "n1"
    assert os.environ.get("HOLDFAST_NODE_CERT") is None
