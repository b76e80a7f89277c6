"""Mutation fuzz over raw sockets against a real server: no 5xx, no hang, nothing changed.

Each case starts from a valid signed request of one of thirteen kinds (PUT, PUT with an
aws-chunked body and a signed trailer, GET, HEAD, range GET, ListObjectsV2, DeleteObjects,
the three multipart steps, presigned GET, the ops API's GETs with odd parameters, the admin
UI's sign-in with odd JSON). Some are made hostile before signing (odd
headers and queries from test_bad_input's pools, still validly signed); most are then
mutated as bytes: bits flipped, bytes inserted (CR, LF, NUL, non-ASCII) or deleted, header
lines duplicated or dropped, Content-Length made wrong, the body cut, non-ASCII put into the
signature, the credential or another header. The bytes go out on a fresh socket, the client
ends its side (shutdown; over TLS, which has none, the request asks Connection: close), and
every answer on the connection is read. 8% of the cases go to a TLS node, 22% to a degraded one.

Findings: any 5xx (but 501 NotImplemented); a connection closed without an answer (what
cannot be parsed gets 400, as from nginx and Go); a connection the server neither answers
nor closes within the socket timeout (a hang is a finding, never a hung test); a dead server; a traceback in its log; a
change to the sentinel bucket, which no case names. The fuzz bucket holds the objects the
cases read and is the only place they may write.

The seed is printed with every failure; rerun with ``HOLDFAST_FUZZ_SEED=<seed>``.
``HOLDFAST_FUZZ_CASES`` overrides the number of cases (the slow run does 10,000).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import os
import random
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.conftest import ROOT_AK, ROOT_SK, Server, start_server, unique
from tests.e2e.test_auth_modes import (
    STREAMING_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    Signed,
    sign,
)
from tests.e2e.test_auth_modes import aws_chunked as frame_chunks
from tests.e2e.test_bad_input import HEADER_POOL, QUERIES, healthy

SOCKET_TIMEOUT = 8.0  # a case with no answer and no close by then is a hang
TLS_QUIET = 1.0  # over TLS, a request cut short waits for more: not judged after this
DEFAULT_CASES = 600
SLOW_CASES = 10_000
SENTINELS = {
    "empty": b"",
    "small": b"sentinel-small",
    "block": bytes(range(256)) * 512,  # 128 KiB
    "multi/block": os.urandom(3 * 1024 * 1024 + 7),
    "unicode-\u00e9\u4e2d": b"unicode key",
}
READ_OBJECTS = {"obj-a": os.urandom(5000), "obj-b": b"b" * 70_000, "obj/c": b"c"}


# --- the state the cases work on -------------------------------------------------------------


@dataclass
class Target:
    server: Server
    bucket: str  # the fuzz bucket: cases read from it and may write to it
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (key, uploadId)
    presigner: object = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"


def setup_target(server: Server) -> Target:
    s3 = server.client()
    bucket = unique("fuzz")
    s3.create_bucket(Bucket=bucket)
    for key, body in READ_OBJECTS.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    target = Target(server, bucket)
    for i in range(12):
        key = f"mp-{i}"
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p" * 100)
        target.uploads.append((key, upload))
    target.presigner = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ROOT_AK,
        aws_secret_access_key=ROOT_SK,
        region_name="us-east-1",
        config=BotoConfig(signature_version="s3v4"),
        verify=server.ca_path if server.tls else None,
    )
    return target


def sentinel_state(s3, bucket: str) -> dict[str, str]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    state = {o["Key"]: f"{o['Size']}:{o['ETag']}" for o in listed}
    for key in state:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        state[key] += ":" + hashlib.sha256(body).hexdigest()
    return state


# --- valid requests, as bytes ----------------------------------------------------------------


def _wire(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def _signed(
    t: Target,
    rng: random.Random,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    content_sha256: str | None = None,
) -> bytes:
    hdrs = dict(headers or {})
    hostile = rng.random() < 0.3
    if hostile:  # still validly signed: odd values the signature covers
        for name, values in rng.sample(HEADER_POOL, rng.randint(1, 3)):
            if name.lower() not in ("host", "transfer-encoding", "authorization"):
                hdrs[name] = rng.choice(values)
        if rng.random() < 0.3:
            extra = rng.choice(QUERIES).lstrip("?")
            if extra:
                path += ("&" if "?" in path else "?") + extra
    if body or method in ("PUT", "POST"):
        hdrs.setdefault("Content-Length", str(len(body)))
    sha = content_sha256 or hdrs.pop("x-amz-content-sha256", None)
    hdrs.pop("x-amz-date", None)
    if sha is None:
        sha = hashlib.sha256(body).hexdigest() if rng.random() < 0.8 else "UNSIGNED-PAYLOAD"
    try:
        signed = sign(t.server, method, path, hdrs, content_sha256=sha)
    except Exception:  # botocore refuses some hostile values; send them unsigned then
        return _wire(method, path, {"Host": t.host, **hdrs}, body)
    return _wire(method, path, signed.headers, body)


def put_small(t: Target, rng: random.Random) -> bytes:
    body = rng.randbytes(rng.choice([0, 1, 100, 3000]))
    headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}
    if rng.random() < 0.5:
        crc = zlib.crc32(body).to_bytes(4, "big")
        headers["x-amz-checksum-crc32"] = base64.b64encode(crc).decode()
    return _signed(t, rng, "PUT", f"/{t.bucket}/fz-{rng.randrange(50)}", body, headers)


def put_chunked(t: Target, rng: random.Random) -> bytes:
    payload = rng.randbytes(rng.choice([0, 10, 9000, 70_000]))
    mode = rng.choice([STREAMING_TRAILER, STREAMING_UNSIGNED_TRAILER])
    path = f"/{t.bucket}/fz-chunked-{rng.randrange(20)}"
    trailers = {"x-amz-checksum-crc32": base64.b64encode(zlib.crc32(payload).to_bytes(4, "big"))}
    trailers = {k: v.decode() for k, v in trailers.items()}
    size = rng.choice([8192, 65536])
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
    signed_chunks = mode == STREAMING_TRAILER
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }

    def frame(signed) -> bytes:
        return b"".join(
            frame_chunks(
                chunks,
                signed if signed_chunks else None,
                trailers=trailers,
                sign_trailers=signed_chunks,
            )
        )

    placeholder = Signed({}, "0" * 64, "20260101T000000Z", "x", b"k")
    headers["Content-Length"] = str(len(frame(placeholder)))
    signed = sign(t.server, "PUT", path, headers, content_sha256=mode)
    return _wire("PUT", path, signed.headers, frame(signed))


def get_object(t: Target, rng: random.Random) -> bytes:
    return _signed(t, rng, "GET", f"/{t.bucket}/{rng.choice(list(READ_OBJECTS))}")


def head_object(t: Target, rng: random.Random) -> bytes:
    return _signed(t, rng, "HEAD", f"/{t.bucket}/{rng.choice(list(READ_OBJECTS))}")


def range_get(t: Target, rng: random.Random) -> bytes:
    first = rng.randrange(6000)
    rng_header = rng.choice([f"bytes={first}-{first + rng.randrange(70_000)}", f"bytes=-{first}"])
    key = rng.choice(list(READ_OBJECTS))
    return _signed(t, rng, "GET", f"/{t.bucket}/{key}", headers={"Range": rng_header})


def list_v2(t: Target, rng: random.Random) -> bytes:
    query = rng.choice(["list-type=2", "list-type=2&prefix=obj", "list-type=2&max-keys=2"])
    if rng.random() < 0.3:
        query += "&delimiter=%2F"
    return _signed(t, rng, "GET", f"/{t.bucket}?{query}")


def delete_objects(t: Target, rng: random.Random) -> bytes:
    keys = [f"fz-{rng.randrange(50)}" for _ in range(rng.randint(1, 4))]
    body = (
        "<Delete>"
        + "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
        + ("<Quiet>true</Quiet>" if rng.random() < 0.5 else "")
        + "</Delete>"
    ).encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    return _signed(t, rng, "POST", f"/{t.bucket}?delete", body, {"Content-MD5": md5})


def multipart_initiate(t: Target, rng: random.Random) -> bytes:
    return _signed(t, rng, "POST", f"/{t.bucket}/fz-mp-{rng.randrange(10)}?uploads")


def multipart_part(t: Target, rng: random.Random) -> bytes:
    key, upload = rng.choice(t.uploads)
    body = rng.randbytes(rng.choice([1, 500, 5000]))
    path = f"/{t.bucket}/{key}?partNumber={rng.randint(2, 4)}&uploadId={upload}"
    return _signed(t, rng, "PUT", path, body)


def multipart_complete(t: Target, rng: random.Random) -> bytes:
    key, upload = rng.choice(t.uploads)
    body = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f'<ETag>"{hashlib.md5(b"p" * 100).hexdigest()}"</ETag></Part>'
        "</CompleteMultipartUpload>"
    ).encode()
    return _signed(t, rng, "POST", f"/{t.bucket}/{key}?uploadId={upload}", body)


def presigned_get(t: Target, rng: random.Random) -> bytes:
    url = t.presigner.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object",
        Params={"Bucket": t.bucket, "Key": rng.choice(list(READ_OBJECTS))},
        ExpiresIn=rng.choice([60, 3600]),
    )
    path = url.split(t.host, 1)[1]
    return _wire("GET", path, {"Host": t.host})


ODD_VALUES = [
    "", "0", "-1", "abc", "\u00b2", "9" * 400, "1e999", "nan", "15m", "9" * 300 + "d",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00", "25:61", "\x00", "%ff", "\u4e2d",
    "5xx", "999", "1h", "day", "minute",
]  # fmt: skip


def ops_get(t: Target, rng: random.Random) -> bytes:
    """The ops API, signed with the root keys; GET only, so nothing is changed."""
    endpoint, params = rng.choice(
        [
            ("requests", ["limit", "since", "until", "status", "bucket", "key", "operation"]),
            ("alerts", ["limit"]),
            ("timeseries", ["range"]),
            ("users", []),
            ("users/" + rng.choice(["x", "%00", "%ff", "root"]), []),
        ]
    )
    chosen = rng.sample(params, min(len(params), rng.randint(0, 3)))
    query = "&".join(f"{name}={quote(rng.choice(ODD_VALUES), safe='')}" for name in chosen)
    path = f"/_holdfast/api/{endpoint}" + (f"?{query}" if query else "")
    return _signed(t, rng, "GET", path)


SIGN_IN_BODIES = [
    b'{"access_key": "AK", "secret_key": "x"}', b'{"access_key": 1, "secret_key": null}',
    b'{"access_key": "\\ud800", "secret_key": "\\udfff"}', b"[" * 3000, b"{" * 10, b"[]",
    b'{"access_key": {"a": []}, "secret_key": [1]}', b"\xff\xfe", b'"' + b"a" * 5000 + b'"',
]  # fmt: skip


def ui_sign_in(t: Target, rng: random.Random) -> bytes:
    """The admin UI's sign-in, which reads JSON before any signature is checked."""
    body = rng.choice(SIGN_IN_BODIES)
    headers = {
        "Host": t.host,
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
    }
    if rng.random() < 0.3:
        headers["Cookie"] = "holdfast_ui=" + rng.choice(["x.y", "\u00e9.\u00e9", "a" * 300, "."])
        headers["X-Holdfast-CSRF"] = rng.choice(["x", "\u00e9"])
    method = rng.choice(["POST", "POST", "GET", "DELETE"])
    return _wire(method, "/_holdfast/ui/api/session", headers, body if method == "POST" else b"")


KINDS: list[Callable[[Target, random.Random], bytes]] = [
    put_small, put_chunked, get_object, head_object, range_get, list_v2, delete_objects,
    multipart_initiate, multipart_part, multipart_complete, presigned_get, ops_get,
    ui_sign_in,
]  # fmt: skip


# --- mutations -------------------------------------------------------------------------------

ODD_BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b"\xe9", b"\xff", b"\xc3\xa9", b":", b" ", b"\t"]


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def _join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def flip_bit(raw: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(raw))
    return raw[:i] + bytes([raw[i] ^ (1 << rng.randrange(8))]) + raw[i + 1 :]


def flip_bit_in_head(raw: bytes, rng: random.Random) -> bytes:
    head_len = raw.find(b"\r\n\r\n")
    i = rng.randrange(max(1, head_len))
    return raw[:i] + bytes([raw[i] ^ (1 << rng.randrange(8))]) + raw[i + 1 :]


def insert_bytes(raw: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(raw) + 1)
    extra = rng.choice(ODD_BYTES) if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 4))
    return raw[:i] + extra + raw[i:]


def delete_bytes(raw: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(raw))
    return raw[:i] + raw[i + rng.randint(1, 8) :]


def duplicate_header(raw: bytes, rng: random.Random) -> bytes:
    lines, body = _split(raw)
    if len(lines) < 2:
        return raw
    i = rng.randrange(1, len(lines))
    lines.insert(rng.randrange(1, len(lines) + 1), lines[i])
    return _join(lines, body)


def drop_header(raw: bytes, rng: random.Random) -> bytes:
    lines, body = _split(raw)
    if len(lines) < 2:
        return raw
    del lines[rng.randrange(1, len(lines))]
    return _join(lines, body)


def wrong_content_length(raw: bytes, rng: random.Random) -> bytes:
    lines, body = _split(raw)
    value = rng.choice(
        [
            str(max(0, len(body) - rng.randint(1, 50))),
            str(len(body) + rng.randint(1, 50)),
            "0",
            "-1",
            "abc",
            "99999999999999999999",
            f"{len(body)}, {len(body)}",
            f" {len(body)} ",
        ]
    )
    lines = [ln for ln in lines if not ln.lower().startswith(b"content-length:")]
    lines.append(f"Content-Length: {value}".encode())
    return _join(lines, body)


def cut_body(raw: bytes, rng: random.Random) -> bytes:
    head_end = raw.find(b"\r\n\r\n") + 4
    if head_end >= len(raw):
        return raw[: rng.randrange(len(raw))]  # cut the head instead
    return raw[: rng.randrange(head_end, len(raw))]


def non_ascii_in_auth(raw: bytes, rng: random.Random) -> bytes:
    """Non-ASCII bytes in the signature, the credential, or another header's value."""
    for marker in (b"Signature=", b"X-Amz-Signature=", b"Credential=", b"X-Amz-Credential="):
        if marker in raw and rng.random() < 0.5:
            i = raw.index(marker) + len(marker) + rng.randrange(20)
            odd = rng.choice([b"\xe9", b"\xff", b"\xc3\xa9", b"%C3%A9", b"\x80"])
            return raw[:i] + odd + raw[i + 1 :]
    lines, body = _split(raw)
    if len(lines) < 2:
        return raw
    i = rng.randrange(1, len(lines))
    j = rng.randrange(len(lines[i]) + 1)
    lines[i] = lines[i][:j] + rng.choice([b"\xe9", b"\xff\xfe", b"\xc3\xa9"]) + lines[i][j:]
    return _join(lines, body)


def garbage_tail(raw: bytes, rng: random.Random) -> bytes:
    return raw + rng.choice([b"\r\n", rng.randbytes(rng.randint(1, 40)), b"GET / HTTP/1.1\r\n"])


MUTATIONS = [
    flip_bit, flip_bit_in_head, insert_bytes, delete_bytes, duplicate_header, drop_header,
    wrong_content_length, cut_body, non_ascii_in_auth, garbage_tail,
]  # fmt: skip


# --- one case --------------------------------------------------------------------------------


def exchange(server: Server, data: bytes) -> tuple[bytes, bool | None]:
    """Send ``data``, end our side, read until the server closes: (answer, closed).

    TLS has no half-close, so the server cannot tell a request cut short from a slow one:
    over TLS the request says ``Connection: close`` and a connection still open after
    TLS_QUIET seconds is ``closed=None`` (not judged), not a hang."""
    timeout = TLS_QUIET if server.tls else SOCKET_TIMEOUT
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    out = bytearray()
    try:
        try:
            sock.sendall(data)
            if not server.tls:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server answered and closed early; read what it said
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return bytes(out), True
            except TimeoutError:
                return bytes(out), None if server.tls else False
            if not piece:
                return bytes(out), True
            out += piece
        return bytes(out), None if server.tls else False
    finally:
        sock.close()


def statuses(raw: bytes) -> list[int]:
    """The status of every response in ``raw`` (bodies skipped by their Content-Length)."""
    found = []
    while raw.startswith(b"HTTP/1."):
        head, sep, rest = raw.partition(b"\r\n\r\n")
        found.append(int(head[9:12]))
        if not sep:
            break
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        raw = rest[length:]
    return found


@dataclass
class Tally:
    seed: int
    cases: int = 0
    by_status: dict[int | str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)

    def count(self, what: int | str) -> None:
        self.by_status[what] = self.by_status.get(what, 0) + 1


def fuzz_one(t: Target, rng: random.Random, tally: Tally, index: int) -> None:
    kind = rng.choice(KINDS)
    raw = kind(t, rng)
    if t.server.tls:  # unsigned, so the request stays valid; see exchange()
        line_end = raw.index(b"\r\n") + 2
        raw = raw[:line_end] + b"Connection: close\r\n" + raw[line_end:]
    applied = []
    if rng.random() < 0.85:  # some cases stay valid (but possibly hostile) requests
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutation = rng.choice(MUTATIONS)
            raw = mutation(raw, rng) or raw
            applied.append(mutation.__name__)
    answer, closed = exchange(t.server, raw)
    tally.cases += 1
    where = f"seed={tally.seed} case #{index} {kind.__name__} {applied}"
    if closed is None:  # TLS, still open: judge only what it answered
        tally.count("tls, open")
        closed = True
        if not answer:
            return
    if not closed:
        tally.count("hung")
        tally.findings.append(
            f"{where}: no answer and no close in {SOCKET_TIMEOUT}s: {raw[:300]!r}"
        )
        return
    found = _statuses_of(answer, raw)
    if not found:
        tally.count("no answer")
        if raw.strip(b"\r\n"):  # only an empty "request" may go unanswered
            tally.findings.append(f"{where}: closed without an answer: {raw[:300]!r}")
        return
    for status in found:
        tally.count(status)
        # 501 NotImplemented is S3's answer to a sub-resource Holdfast does not implement.
        # (an answer to HEAD has no body to show the code).
        not_implemented = b"<Code>NotImplemented</Code>" in answer or raw.startswith(b"HEAD ")
        if status >= 500 and not (status == 501 and not_implemented):
            tally.findings.append(f"{where}: {status}: {raw[:400]!r} -> {answer[:600]!r}")


def _statuses_of(answer: bytes, raw: bytes) -> list[int]:
    """Like :func:`statuses`, but an answer to HEAD carries no body whatever its length."""
    if raw.startswith(b"HEAD "):
        return [int(answer[9:12])] if answer.startswith(b"HTTP/1.1 ") else []
    return statuses(answer)


def run_fuzz(tmp_path: Path, tls_files, cases: int) -> None:
    seed = int(os.environ.get("HOLDFAST_FUZZ_SEED", random.randrange(1 << 30)))
    cases = int(os.environ.get("HOLDFAST_FUZZ_CASES", cases))
    rng = random.Random(seed)
    server = start_server(tmp_path / "plain")
    tls_server = start_server(tmp_path / "tls", tls=tls_files, workers=1)
    degraded = start_server(tmp_path / "degraded", drives=2, workers=1)
    try:
        # The second node has one drive gone (its identity marker removed), so the cases
        # also meet the degraded write and read paths.
        (degraded.data_dirs[1] / "drive" / ".holdfast-drive").unlink()
        status_file = degraded.data_dirs[0] / "index" / "integrity-status.json"
        deadline = time.monotonic() + 10
        while '"state": "down"' not in (status_file.read_text() if status_file.exists() else ""):
            assert time.monotonic() < deadline, "the drive without its marker was not marked down"
            time.sleep(0.2)
        tally = Tally(seed)
        for srv, share in ((server, 0.7), (tls_server, 0.08), (degraded, 0.22)):
            s3 = srv.client()
            sentinel = unique("keep")
            s3.create_bucket(Bucket=sentinel)
            for key, body in SENTINELS.items():
                s3.put_object(Bucket=sentinel, Key=key, Body=body)
            before = sentinel_state(s3, sentinel)
            buckets_before = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
            target = setup_target(srv)
            log_start = len(srv.log())
            for i in range(int(cases * share)):
                fuzz_one(target, rng, tally, i)
            assert not tally.findings, "\n".join(tally.findings[:20]) + f"\n{tally.by_status}"
            assert healthy(srv), f"seed={seed}: server not healthy after the fuzz"
            assert sentinel_state(s3, sentinel) == before, f"seed={seed}: sentinel changed"
            buckets_after = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
            assert buckets_after == sorted([*buckets_before, target.bucket]), f"seed={seed}"
            new_log = srv.log()[log_start:]
            assert "Traceback" not in new_log, f"seed={seed}\n{new_log[-6000:]}"
            s3.close()
        print(
            f"fuzz seed={seed} cases={tally.cases} statuses={sorted(tally.by_status.items(), key=str)}"
        )
        assert not tally.findings, "\n".join(tally.findings[:20])
        # Most cases must reach the S3 layer and be answered, or the fuzz tests nothing.
        answered = sum(v for k, v in tally.by_status.items() if isinstance(k, int))
        assert answered >= 0.8 * tally.cases, (seed, tally.by_status)
    finally:
        gc.collect()
        server.stop()
        tls_server.stop()
        degraded.stop()


def test_mutation_fuzz(tmp_path, tls_files):
    run_fuzz(tmp_path, tls_files, DEFAULT_CASES)


@pytest.mark.slow
def test_mutation_fuzz_long(tmp_path, tls_files):
    run_fuzz(tmp_path, tls_files, SLOW_CASES)
