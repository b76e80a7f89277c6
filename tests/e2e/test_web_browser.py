"""Static websites and form uploads in a real browser (Debian's chromium through Playwright,
with the fixtures of tests/e2e/test_cors_browser.py): the browser opens
``http://<bucket>.s3-website.localhost:<port>/`` (chromium resolves ``*.localhost`` to the
loopback address itself), follows the folder redirect and gets the error document; a page on
another origin uploads a file with a FormData POST to a bucket whose policy lets everyone
write a prefix, and reads the answer only where the bucket's CORS rule allows it."""

from __future__ import annotations

import json

from tests.conftest import unique
from tests.e2e.test_cors_browser import browser as browser  # noqa: F401 - fixtures
from tests.e2e.test_cors_browser import cors_server as cors_server  # noqa: F401
from tests.e2e.test_cors_browser import page_origin as page_origin  # noqa: F401

FORM_UPLOAD = """async ([url, key]) => {
  const form = new FormData();
  form.append('key', key);
  form.append('file', new Blob(['typed in a browser']), 'note.txt');
  try {
    const r = await fetch(url, {method: 'POST', body: form});
    return 'status ' + r.status;
  } catch (e) {
    return 'blocked: ' + e.name;
  }
}"""


def _policy(bucket: str) -> str:
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
                },
                {
                    "Sid": "Drop",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/drop/*",
                },
            ],
        }
    )


def test_site_in_a_browser(browser, cors_server):  # noqa: F811
    s3 = cors_server.client()
    bucket = unique("site")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket))
    site = {"IndexDocument": {"Suffix": "index.html"}, "ErrorDocument": {"Key": "404.html"}}
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=site)
    html = "<!doctype html><title>{}</title><p id=t>{}</p>"
    for key, title in (("index.html", "Home"), ("docs/index.html", "Docs"), ("404.html", "Lost")):
        body = html.format(title, title).encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/html")
    root = f"http://{bucket}.s3-website.localhost:{cors_server.port}"
    page = browser.new_page()
    try:
        assert page.goto(root + "/").status == 200
        assert page.title() == "Home"
        page.goto(root + "/docs")  # redirected to the folder, then its index document
        assert page.url == root + "/docs/" and page.title() == "Docs"
        assert page.goto(root + "/nope.html").status == 404
        assert page.title() == "Lost"
        s3.delete_bucket_website(Bucket=bucket)
        response = page.goto(root + "/")
        assert response.status == 404 and "NoSuchWebsiteConfiguration" in page.content()
    finally:
        page.close()


def test_form_upload_from_another_origin(browser, cors_server, page_origin):  # noqa: F811
    s3 = cors_server.client()
    bucket = unique("drop")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket))
    url = f"{cors_server.endpoint}/{bucket}"
    page = browser.new_page()
    try:
        page.goto(page_origin + "/")
        # The upload is allowed by the policy, but without a CORS rule the page may not read
        # the answer: the browser reports a network error.
        assert page.evaluate(FORM_UPLOAD, [url, "drop/one.txt"]) == "blocked: TypeError"
        rule = {"AllowedOrigins": [page_origin], "AllowedMethods": ["POST"]}
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
        assert page.evaluate(FORM_UPLOAD, [url, "drop/two.txt"]) == "status 204"
        got = s3.get_object(Bucket=bucket, Key="drop/two.txt")["Body"].read()
        assert got == b"typed in a browser"
        # Outside the prefix the policy allows: the page reads the refusal.
        assert page.evaluate(FORM_UPLOAD, [url, "elsewhere.txt"]) == "status 403"
        assert "elsewhere.txt" not in [
            o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        ]
    finally:
        page.close()
