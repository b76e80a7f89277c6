"""Flow control toward an S3 back-end (holdfast/stores/s3.py ``Limits``): what is retried
(with backoff), what is not, what the breaker is told (an OSError with a telling errno), and
the concurrency cap."""

from __future__ import annotations

import errno
import threading
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from holdfast.stores.base import StoreMissing
from holdfast.stores.s3 import BackendError, Limits, LimitSettings


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


def failing(errors: list[BaseException], result: object = "ok"):
    calls = []

    def fn():
        calls.append(time.monotonic())
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


def limits(**kw) -> Limits:
    return Limits("@s3/t", LimitSettings(backoff_base=0.01, backoff_cap=0.05, **kw))


def test_5xx_and_connection_errors_are_retried_with_backoff() -> None:
    fn, calls = failing([client_error(503, "SlowDown"), client_error(500, "InternalError")])
    assert limits().call("put", fn) == "ok" and len(calls) == 3
    assert calls[1] - calls[0] >= 0.005, "a retry waits (jittered, never ~0)"
    fn, calls = failing([EndpointConnectionError(endpoint_url="http://x")] * 9)
    with pytest.raises(BackendError) as err:
        limits(attempts=3).call("put", fn)
    assert err.value.errno == errno.ECONNREFUSED and len(calls) == 3


def test_refused_credentials_and_client_mistakes_are_not_retried() -> None:
    fn, calls = failing([client_error(403, "InvalidAccessKeyId")])
    with pytest.raises(BackendError) as err:
        limits().call("put", fn)
    assert err.value.errno == errno.EACCES and len(calls) == 1
    assert "InvalidAccessKeyId" in str(err.value)
    fn, calls = failing([client_error(404, "NoSuchBucket")])
    with pytest.raises(StoreMissing):
        limits().call("put", fn)
    fn, calls = failing([client_error(404, "NoSuchKey")])
    with pytest.raises(ClientError):  # for the caller to read as "no such copy"
        limits().call("get", fn)
    assert len(calls) == 1


def test_the_concurrency_cap_holds() -> None:
    lim = limits(concurrency=2)
    peak = 0
    lock = threading.Lock()

    def slow():
        nonlocal peak
        with lock:
            peak = max(peak, lim.in_flight)
        time.sleep(0.05)

    threads = [threading.Thread(target=lim.call, args=("get", slow)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2


def test_the_ops_bucket_paces_requests() -> None:
    lim = limits(ops_per_second=20.0)
    start = time.monotonic()
    for _ in range(30):  # the burst (20) goes at once, the rest at 20/s
        lim.call("head", lambda: None)
    assert time.monotonic() - start >= 0.4
