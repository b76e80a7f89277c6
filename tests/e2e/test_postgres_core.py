"""The core of the e2e suite, always on PostgreSQL (whatever HOLDFAST_TEST_INDEX says):
objects, listing, multipart, buckets, conditional writes, tags and versions, through boto3 against a real
``holdfast serve --index-dsn``. The tests are the SQLite suite's own, imported here and
given a server on PostgreSQL through this module's ``server`` fixture; the whole suite runs
on PostgreSQL with HOLDFAST_TEST_INDEX=postgres.

Then what only a network engine can do: stop PostgreSQL under a serving node, which answers
503 ServiceUnavailable quickly (never hangs), keeps its status page, and recovers by itself.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from holdfast.index.postgres.devserver import DevPostgres
from tests.conftest import Server, start_server, unique
from tests.e2e.ops_helpers import status as ops_status
from tests.e2e.ops_helpers import wait_for
from tests.e2e.test_access import (  # noqa: F401
    other_user,
    test_anonymous_read_exactly_where_the_policy_allows,
    test_bad_policies_change_nothing,
    test_bucket_acl_canned_and_grants,
    test_ownership_controls,
    test_policy_put_get_status_delete,
    test_public_access_block,
    test_second_user_by_policy_prefix_and_explicit_deny,
)
from tests.e2e.test_buckets import (  # noqa: F401 - collected here, on PostgreSQL
    test_create_bucket_returns_location,
    test_delete_bucket_aborts_unfinished_uploads,
    test_delete_bucket_not_empty_then_empty,
    test_delete_missing_bucket,
)
from tests.e2e.test_conditional_range import (  # noqa: F401
    test_put_if_match,
    test_put_if_none_match_star,
)
from tests.e2e.test_cors import (  # noqa: F401
    test_bad_cors_changes_nothing,
    test_cors_put_get_delete,
    test_preflight_and_actual_headers,
)
from tests.e2e.test_lifecycle import (  # noqa: F401
    test_bad_lifecycle_configurations_change_nothing,
    test_lifecycle_configuration_put_get_delete,
)
from tests.e2e.test_listing import (  # noqa: F401
    test_keys_come_back_in_binary_utf8_order,
    test_marker_that_is_a_common_prefix_does_not_repeat_it,
    test_pagination_while_another_client_writes,
    test_prefix_and_delimiter,
    test_start_after_and_continuation_token_v2,
    test_unicode_prefix_and_delimiter,
)
from tests.e2e.test_multipart import (  # noqa: F401
    test_complete_with_a_subset_of_parts,
    test_create_upload_complete_get,
    test_list_multipart_uploads,
    test_reuploading_a_part_replaces_it_and_entity_too_small,
)
from tests.e2e.test_object_acl import (  # noqa: F401
    reader,
    test_acl_on_copy_and_multipart,
    test_canned_acl_on_put_and_anonymous_read,
    test_object_acl_of_a_version,
    test_put_object_acl_canned_grants_and_xml,
)
from tests.e2e.test_objectlock import (  # noqa: F401
    locked,
    other,
    test_create_bucket_with_lock_enables_versioning_and_lock,
    test_default_retention_applies_to_new_versions,
    test_governance_bypass_by_the_owner_only,
    test_legal_hold,
    test_lock_headers_on_multipart_upload,
    test_put_object_lock_configuration,
    test_retention_on_put_protects_the_version,
)
from tests.e2e.test_objects import (  # noqa: F401
    test_delete_objects_quiet,
    test_overwrite_replaces_body_and_attributes,
    test_put_get_head_delete,
    test_similar_keys_are_distinct,
)
from tests.e2e.test_post_object import (  # noqa: F401
    signer,
    test_presigned_post_by_curl,
    test_violations_store_nothing,
)
from tests.e2e.test_sse import (  # noqa: F401
    test_bucket_default_encryption,
    test_sse_s3_multipart,
    test_sse_s3_put_get_range_and_blob_holds_no_plaintext,
)
from tests.e2e.test_tagging import (  # noqa: F401
    test_bucket_tags,
    test_copy_tagging_directive,
    test_multipart_create_with_tags,
    test_object_tags_put_get_delete,
    test_put_with_tagging_header_and_overwrite,
)
from tests.e2e.test_versioning import (  # noqa: F401
    test_copy_multipart_and_tags_make_versions,
    test_delete_objects_with_versions_and_delete_bucket,
    test_list_versions_pagination_while_writing,
    test_many_writers_on_one_key,
    test_suspended_bucket_and_the_null_version,
    test_versions_reads_and_deletes,
)
from tests.e2e.test_website import (  # noqa: F401
    site,
    test_index_documents_and_folders,
    test_public_by_policy_only,
    test_routing_rules_and_redirects,
    test_website_put_get_delete,
)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """One node on PostgreSQL for this module (HTTP; the SQLite suite covers HTTPS bodies)."""
    node = start_server(tmp_path_factory.mktemp("pg-core"), index="postgres")
    yield node
    node.stop()


@pytest.fixture
def version(request):
    return getattr(request, "param", 2)


def test_the_core_server_is_on_postgres(server: Server):
    assert server.index_dsn
    wait_for(lambda: ops_status(server, timeout=5)["index"].get("state") == "ok", 10, "status")


# -- the engine goes away --------------------------------------------------------------------


@pytest.fixture
def own_postgres(postgres):
    pg = DevPostgres(Path(tempfile.mkdtemp(prefix="holdfast-test-pg-own-"))).start()
    yield pg
    pg.stop()


def _timed(call):
    started = time.monotonic()
    with pytest.raises(ClientError) as e:
        call()
    return time.monotonic() - started, e.value.response


def test_engine_stopped_means_503_fast_then_recovery(tmp_path, own_postgres):
    dsn = own_postgres.create_database("node")
    node = start_server(tmp_path, index_dsn=dsn)
    try:
        # No retries: each call is measured on its own.
        s3 = node.client(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30)
        s3.create_bucket(Bucket="engine")
        s3.put_object(Bucket="engine", Key="k", Body=b"before")
        wait_for(lambda: ops_status(node, timeout=5)["index"].get("state") == "ok", 10, "status")
        own_postgres.stop()
        for call in (
            lambda: s3.get_object(Bucket="engine", Key="k"),
            lambda: s3.put_object(Bucket="engine", Key="k2", Body=b"x"),
            lambda: s3.list_objects_v2(Bucket="engine"),
        ):
            took, response = _timed(call)
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 503, response
            assert response["Error"]["Code"] == "ServiceUnavailable"
            assert took < 2.2, (took, response["ResponseMetadata"])
        # The status page answers, from the node's memory, and says why.
        deadline = time.monotonic() + 10
        while True:
            index = ops_status(node, timeout=5)["index"]
            if index.get("state") != "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert index.get("state") != "ok", index
        assert index.get("error"), index
        own_postgres.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                body = s3.get_object(Bucket="engine", Key="k")["Body"].read()
                break
            except ClientError:
                assert time.monotonic() < deadline, "the node did not recover"
                time.sleep(0.3)
        assert body == b"before"
        s3.put_object(Bucket="engine", Key="k3", Body=b"after")
        assert s3.get_object(Bucket="engine", Key="k3")["Body"].read() == b"after"
    finally:
        node.stop()


def test_boto3_with_default_retries_rides_out_a_short_outage(tmp_path, own_postgres):
    """An engine restart is a few seconds of 503s: boto3's default retries carry a client
    through it."""
    dsn = own_postgres.create_database("node")
    node = start_server(tmp_path, index_dsn=dsn)
    try:
        s3 = node.client(retries={"max_attempts": 10, "mode": "standard"})
        s3.create_bucket(Bucket="restart")
        own_postgres.stop()
        own_postgres.start()
        key = unique()
        s3.put_object(Bucket="restart", Key=key, Body=b"through")
        assert s3.get_object(Bucket="restart", Key=key)["Body"].read() == b"through"
    finally:
        node.stop()
