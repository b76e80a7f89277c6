"""The cluster CA and the node certificates it signs (``holdfast cluster init`` / ``cert``).

A cluster directory made by :func:`init_cluster`::

    DIR/                        0700
      ca.pem                    the cluster CA's certificate (every node gets a copy)
      ca.key                    its private key, 0600: only ``holdfast cluster cert`` needs it;
                                keep it off the nodes
      cluster-id.json           {"name": CLUSTER, "id": "<uuid4>"}
      nodes/<name>/             0700, what node <name> needs and nothing else:
        node.pem                its certificate (CN and DNS SAN: the node's name)
        node.key                its private key, 0600
        ca.pem                  a copy of the CA certificate

Keys are EC P-256: every OpenSSL that Python's ``ssl`` links verifies them, and their
handshakes are cheap. A node certificate says "this is node <name> of cluster <id>": the
name is in the subject CN and in a DNS SAN (tools that check host names find it), the
cluster id in the subject OU, and its extended key usage allows both TLS ends, since every
node is both a server and a client of the others. Which names belong to the cluster is not
the certificate's business but the layout's (holdfast/net/tls.py checks both).

Everything here is pure: it reads and writes files and raises :class:`PkiError` with a
one-line message for bad input; the CLI (holdfast/net/commands.py) prints it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from holdfast.stores.registry import check_node_name

CA_DAYS = 3650
NODE_DAYS = 825
CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CLUSTER_ID_FILE = "cluster-id.json"
NODES_DIR = "nodes"
NODE_CERT = "node.pem"
NODE_KEY = "node.key"


class PkiError(ValueError):
    """Bad input for the cluster CA: the message is the one line a user sees."""


@dataclass(frozen=True)
class ClusterId:
    name: str
    id: str


@dataclass(frozen=True)
class NodeFiles:
    """Where one node's certificate, key and CA certificate are."""

    cert: Path
    key: Path
    ca: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    cluster: ClusterId, days: int = CA_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"holdfast cluster {cluster.name}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, cluster.id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"holdfast CA {cluster.name}"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_node_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    name: str,
    ips: list[str] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for node ``name``, signed by the CA. ``not_before``/``not_after``
    default to now and NODE_DAYS from now (tests pass past dates to mint expired ones)."""
    check_name(name)
    key = ec.generate_private_key(ec.SECP256R1())
    org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    unit = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    attrs = [*org, *unit, x509.NameAttribute(NameOID.COMMON_NAME, name)]
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    for ip in ips or []:
        sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
    now = _now()
    start = not_before or now - dt.timedelta(minutes=5)
    end = not_after or now + dt.timedelta(days=NODE_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def check_name(name: str) -> str:
    try:
        return check_node_name(name)
    except ValueError as e:
        raise PkiError(str(e)) from None


def parse_nodes(text: str) -> list[str]:
    """``n1,n2,n3`` -> the names, each checked, no duplicates."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise PkiError("--nodes wants at least one node name, e.g. --nodes n1,n2,n3")
    for n in names:
        check_name(n)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PkiError(f"node name given twice: {', '.join(dupes)}")
    return names


def check_ips(ips: list[str]) -> list[str]:
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise PkiError(f"--ip wants an IP address, got {ip!r}") from None
    return ips


def node_files(directory: Path, name: str) -> NodeFiles:
    d = directory / NODES_DIR / name
    return NodeFiles(d / NODE_CERT, d / NODE_KEY, d / CA_CERT)


def init_cluster(
    directory: Path, cluster_name: str, nodes: list[str], ips: list[str] | None = None
) -> ClusterId:
    """Create the CA, the cluster id and one certificate per node in ``directory``."""
    check_name(cluster_name)
    for n in nodes:
        check_name(n)
    if (directory / CA_CERT).exists() or (directory / CA_KEY).exists():
        raise PkiError(
            f"{directory} already holds a cluster CA; add nodes with "
            f"'holdfast cluster cert NAME --dir {directory}', or pick an empty --dir"
        )
    if directory.exists() and not directory.is_dir():
        raise PkiError(f"{directory} exists and is not a directory")
    cluster = ClusterId(cluster_name, str(uuid.uuid4()))
    _mkdir_private(directory)
    ca_cert, ca_key = make_ca(cluster)
    _write_private(directory / CA_KEY, _key_pem(ca_key))
    _write_public(directory / CA_CERT, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_public(
        directory / CLUSTER_ID_FILE, json.dumps({"name": cluster.name, "id": cluster.id}).encode()
    )
    for n in nodes:
        issue_node(directory, n, ips)
    return cluster


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key_bytes = (directory / CA_KEY).read_bytes()
    except FileNotFoundError as e:
        raise PkiError(
            f"no cluster CA in {directory} ({Path(e.filename).name} missing); "
            f"create one with 'holdfast cluster init --dir {directory} ...'"
        ) from None
    except ValueError as e:
        raise PkiError(f"{directory / CA_CERT} is not a PEM certificate: {e}") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except (ValueError, TypeError) as e:
        raise PkiError(f"{directory / CA_KEY} is not an unencrypted PEM key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{directory / CA_KEY} is not an EC key")
    return cert, key


def issue_node(directory: Path, name: str, ips: list[str] | None = None) -> NodeFiles:
    """Write ``nodes/<name>/`` (certificate, key, CA copy); refuses to overwrite one."""
    check_name(name)
    ca_cert, ca_key = load_ca(directory)
    files = node_files(directory, name)
    if files.cert.exists() or files.key.exists():
        raise PkiError(
            f"node {name!r} already has a certificate in {files.cert.parent}; "
            "remove that directory first to issue a new one"
        )
    _mkdir_private(directory / NODES_DIR)
    _mkdir_private(files.cert.parent)
    cert, key = make_node_cert(ca_cert, ca_key, name, ips)
    _write_private(files.key, _key_pem(key))
    _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    _write_public(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def write_pair(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
) -> None:
    """Write a certificate and its key (the key 0600); for tests that mint their own."""
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def read_cluster_id(directory: Path) -> ClusterId:
    raw = json.loads((directory / CLUSTER_ID_FILE).read_text())
    return ClusterId(raw["name"], raw["id"])
