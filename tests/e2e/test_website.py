"""Static websites, end to end over HTTP and HTTPS: PutBucketWebsite/Get/Delete with boto3
(and bad XML that changes nothing), then the website endpoint ``<bucket>.s3-website.localhost``
on the S3 port, driven by plain ``requests`` with no signature: index documents (also in
folders), the error document with the error's status, HTML errors (never XML), routing
rules, RedirectAllRequestsTo, the object redirect header, and public by policy only (the
public access block applies)."""

from __future__ import annotations

import json

import pytest
import requests
from botocore.exceptions import ClientError

from tests.e2e.test_access import public_read
from tests.e2e.test_auth_modes import assert_s3_error, signed_request

SITE = {
    "IndexDocument": {"Suffix": "index.html"},
    "ErrorDocument": {"Key": "error.html"},
    "RoutingRules": [
        {
            "Condition": {"KeyPrefixEquals": "old/"},
            "Redirect": {"ReplaceKeyPrefixWith": "new/"},
        },
        {
            "Condition": {"HttpErrorCodeReturnedEquals": "404", "KeyPrefixEquals": "gone/"},
            "Redirect": {"HostName": "example.com", "Protocol": "https", "HttpRedirectCode": "302"},
        },
    ],
}


def web(server, bucket: str, path: str, method: str = "GET", **kw) -> requests.Response:
    """A request to the website endpoint: the S3 port, with the website host name."""
    headers = {"Host": f"{bucket}.s3-website.localhost:{server.port}", **kw.pop("headers", {})}
    return requests.request(
        method,
        f"{server.endpoint}{path}",
        headers=headers,
        allow_redirects=False,
        verify=server.ca_path if server.tls else None,
        timeout=10,
        **kw,
    )


def assert_html_error(reply: requests.Response, status: int, code: str) -> None:
    assert reply.status_code == status, (reply.status_code, reply.text[:300])
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "<?xml" not in reply.text
    assert f"<li>Code: {code}</li>" in reply.text, reply.text


def put(s3, bucket: str, key: str, body: bytes, **kw) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/html", **kw)


def read_and_list(bucket: str) -> str:
    """Everyone may read every object and list the bucket (so a missing page is a 404)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Site",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*", f"arn:aws:s3:::{bucket}"],
                }
            ],
        }
    )


@pytest.fixture
def site(s3, bucket) -> str:
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=SITE)
    s3.put_bucket_policy(Bucket=bucket, Policy=read_and_list(bucket))
    put(s3, bucket, "index.html", b"<h1>home</h1>")
    put(s3, bucket, "docs/index.html", b"<h1>docs</h1>")
    put(s3, bucket, "page.html", b"<h1>page</h1>")
    put(s3, bucket, "error.html", b"<h1>oops</h1>")
    return bucket


def test_website_put_get_delete(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_website(Bucket=bucket)
    assert exc.value.response["Error"]["Code"] == "NoSuchWebsiteConfiguration"
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=SITE)
    got = s3.get_bucket_website(Bucket=bucket)
    assert got["IndexDocument"] == {"Suffix": "index.html"}
    assert got["ErrorDocument"] == {"Key": "error.html"}
    assert got["RoutingRules"] == SITE["RoutingRules"]
    every = {"RedirectAllRequestsTo": {"HostName": "example.org", "Protocol": "https"}}
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=every)
    got = s3.get_bucket_website(Bucket=bucket)
    assert got["RedirectAllRequestsTo"] == every["RedirectAllRequestsTo"]
    assert "IndexDocument" not in got
    s3.delete_bucket_website(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_website(Bucket=bucket)
    assert exc.value.response["Error"]["Code"] == "NoSuchWebsiteConfiguration"


NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
BAD_WEBSITES = [
    (b"<WebsiteConfiguration", "MalformedXML"),
    (f"<WebsiteConfiguration {NS}></WebsiteConfiguration>".encode(), "InvalidArgument"),
    (
        f"<WebsiteConfiguration {NS}><IndexDocument><Suffix>a/b.html</Suffix></IndexDocument>"
        "</WebsiteConfiguration>".encode(),
        "InvalidArgument",
    ),
    (
        f"<WebsiteConfiguration {NS}><IndexDocument><Suffix>i.html</Suffix></IndexDocument>"
        "<RedirectAllRequestsTo><HostName>x</HostName></RedirectAllRequestsTo>"
        "</WebsiteConfiguration>".encode(),
        "InvalidRequest",
    ),
    (
        f"<WebsiteConfiguration {NS}><IndexDocument><Suffix>i.html</Suffix></IndexDocument>"
        "<RoutingRules><RoutingRule><Redirect><ReplaceKeyWith>a</ReplaceKeyWith>"
        "<ReplaceKeyPrefixWith>b</ReplaceKeyPrefixWith></Redirect></RoutingRule></RoutingRules>"
        "</WebsiteConfiguration>".encode(),
        "InvalidRequest",
    ),
    (
        f"<WebsiteConfiguration {NS}><IndexDocument><Suffix>i.html</Suffix></IndexDocument>"
        "<RoutingRules><RoutingRule><Redirect><HttpRedirectCode>200</HttpRedirectCode>"
        "</Redirect></RoutingRule></RoutingRules></WebsiteConfiguration>".encode(),
        "InvalidRequest",
    ),
    (
        f"<WebsiteConfiguration {NS}><RedirectAllRequestsTo><HostName>x</HostName>"
        "<Protocol>ftp</Protocol></RedirectAllRequestsTo></WebsiteConfiguration>".encode(),
        "InvalidRequest",
    ),
    (
        f"<WebsiteConfiguration {NS}><IndexDocument><Suffix>i.html</Suffix></IndexDocument>"
        "<Unknown/></WebsiteConfiguration>".encode(),
        "MalformedXML",
    ),
]


@pytest.mark.parametrize("body,code", BAD_WEBSITES)
def test_bad_website_changes_nothing(server, s3, bucket, body, code):
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=SITE)
    reply = signed_request(server, "PUT", f"/{bucket}?website", body)
    assert_s3_error(reply, 400, code)
    assert s3.get_bucket_website(Bucket=bucket)["IndexDocument"] == {"Suffix": "index.html"}


def test_index_documents_and_folders(server, site):
    reply = web(server, site, "/")
    assert reply.status_code == 200 and reply.content == b"<h1>home</h1>"
    assert reply.headers["Content-Type"] == "text/html"
    assert web(server, site, "/docs/").content == b"<h1>docs</h1>"
    assert web(server, site, "/page.html").content == b"<h1>page</h1>"
    # A folder asked for without its slash: a redirect to it, as S3 does.
    reply = web(server, site, "/docs")
    assert reply.status_code == 302 and reply.headers["Location"] == "/docs/"
    reply = web(server, site, "/", "HEAD")
    assert reply.status_code == 200 and reply.headers["Content-Length"] == "13"
    reply = web(server, site, "/page.html", headers={"Range": "bytes=4-7"})
    assert reply.status_code == 206 and reply.content == b"page"
    # The website ignores query strings that would be S3 sub-resources.
    assert web(server, site, "/?acl").content == b"<h1>home</h1>"


def test_error_document_and_html_errors(server, s3, site):
    reply = web(server, site, "/missing.html")
    assert reply.status_code == 404 and reply.content == b"<h1>oops</h1>"
    # Without an error document: S3's HTML page, never XML.
    s3.put_bucket_website(
        Bucket=site, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}
    )
    assert_html_error(web(server, site, "/missing.html"), 404, "NoSuchKey")
    assert_html_error(web(server, site, "/", "POST", data=b"x"), 405, "MethodNotAllowed")
    assert_html_error(web(server, site, "/", "PUT", data=b"x"), 405, "MethodNotAllowed")
    assert s3.get_object(Bucket=site, Key="index.html")["Body"].read() == b"<h1>home</h1>"
    assert_html_error(web(server, "no-such-bucket-here", "/"), 404, "NoSuchBucket")


def test_error_document_that_cannot_be_read(server, s3, site):
    s3.delete_object(Bucket=site, Key="error.html")
    reply = web(server, site, "/missing.html")
    assert_html_error(reply, 404, "NoSuchKey")
    assert "Custom Error Document" in reply.text


def test_public_by_policy_only(server, s3, bucket):
    s3.put_bucket_website(
        Bucket=bucket, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}
    )
    put(s3, bucket, "index.html", b"home")
    put(s3, bucket, "private/index.html", b"secret")
    assert_html_error(web(server, bucket, "/"), 403, "AccessDenied")
    # A signature does not make a website request the owner's: the site is anonymous.
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket, "index"))
    assert web(server, bucket, "/").content == b"home"
    assert_html_error(web(server, bucket, "/private/"), 403, "AccessDenied")
    # A missing key that everyone may not list is a 403, as on S3 (no probing for keys).
    assert_html_error(web(server, bucket, "/indexnot"), 403, "AccessDenied")
    # The error document is served for a 403 too, with that status.
    put(s3, bucket, "index-error.html", b"no")
    website = {
        "IndexDocument": {"Suffix": "index.html"},
        "ErrorDocument": {"Key": "index-error.html"},
    }
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=website)
    reply = web(server, bucket, "/private/")
    assert reply.status_code == 403 and reply.content == b"no"
    block = {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True,
    }
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    assert_html_error(web(server, bucket, "/"), 403, "AccessDenied")
    s3.delete_public_access_block(Bucket=bucket)
    assert web(server, bucket, "/").content == b"home"
    s3.delete_bucket_website(Bucket=bucket)
    assert_html_error(web(server, bucket, "/"), 404, "NoSuchWebsiteConfiguration")


def test_public_by_object_acl(server, s3, bucket):
    s3.put_bucket_website(
        Bucket=bucket, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}
    )
    put(s3, bucket, "index.html", b"home", ACL="public-read")
    put(s3, bucket, "other.html", b"other")
    assert web(server, bucket, "/").content == b"home"
    assert_html_error(web(server, bucket, "/other.html"), 403, "AccessDenied")


def test_routing_rules_and_redirects(server, s3, site):
    reply = web(server, site, "/old/a/b.html")
    assert reply.status_code == 301
    host = f"{site}.s3-website.localhost:{server.port}"
    scheme = "https" if server.tls else "http"
    assert reply.headers["Location"] == f"{scheme}://{host}/new/a/b.html"
    reply = web(server, site, "/gone/x.html")  # only once the key is found missing
    assert reply.status_code == 302
    assert reply.headers["Location"] == "https://example.com/gone/x.html"
    put(s3, site, "gone/here.html", b"here")
    assert web(server, site, "/gone/here.html").content == b"here"
    # An object's own redirect.
    s3.put_object(Bucket=site, Key="moved.html", Body=b"", WebsiteRedirectLocation="/page.html")
    assert s3.head_object(Bucket=site, Key="moved.html")["WebsiteRedirectLocation"] == "/page.html"
    reply = web(server, site, "/moved.html")
    assert reply.status_code == 301 and reply.headers["Location"] == "/page.html"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=site, Key="bad", Body=b"", WebsiteRedirectLocation="ftp://x")
    assert exc.value.response["Error"]["Code"] == "InvalidRedirectLocation"
    # Everything elsewhere.
    every = {"RedirectAllRequestsTo": {"HostName": "example.org", "Protocol": "https"}}
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration=every)
    reply = web(server, site, "/a/b?c=d")
    assert reply.status_code == 301 and reply.headers["Location"] == "https://example.org/a/b"
