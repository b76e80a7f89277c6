#!/usr/bin/env python3
"""Cost per request of the access decision (holdfast/s3/access.py) on SQLite, in-process:
the one index read of the bucket and its access documents, plus the decision, against a
plain read of the bucket row. Run from the repository root:

    .venv/bin/python bench/access_decision.py
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from holdfast.index.records import BucketRecord
from holdfast.index.sqlite import SqliteIndex
from holdfast.s3 import access
from holdfast.s3.http import Request
from holdfast.s3.router import Operation

core = SqliteIndex(Path(tempfile.mkdtemp()) / "index.db")
core.create_bucket(BucketRecord("b", "alice", 0.0, "us-east-1"))
req = Request("GET", "/b/k", "", {}, {"host": "x"}, None, "r1", "127.0.0.1:5")
req.user, req.access_key = "alice", "AK"
N = 20000


def run(label, fn):
    fn()
    t = time.perf_counter()
    for _ in range(N):
        fn()
    print(f"{label}: {(time.perf_counter() - t) / N * 1e6:.1f} us")


def decision():
    record, docs = core.get_bucket_access("b", access.DOCUMENTS)
    state = access.BucketAccess(record, docs)
    access.decide(
        access.request_of(req, access.action_of(Operation.GET_OBJECT, {}), "b", "k", state), state
    )


for _ in range(3):
    run("get_bucket (one indexed read)", lambda: core.get_bucket("b"))
    run("get_bucket_access + decide, no documents", decision)
core.set_bucket_config(
    "b",
    "policy",
    '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}',
)
core.set_bucket_config("b", "cors", '[[null,["GET"],["*"],[],[],null]]')
for _ in range(2):
    run("get_bucket_access + decide, policy + CORS", decision)
