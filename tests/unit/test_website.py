"""The website configuration (holdfast/s3/website.py): validation, the round trip through
storage, which routing rule applies, and where it redirects. Pure logic."""

from __future__ import annotations

import pytest

from holdfast.errors import S3Error
from holdfast.s3 import website

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def doc(inner: str) -> bytes:
    return f"<WebsiteConfiguration {NS}>{inner}</WebsiteConfiguration>".encode()


INDEX = "<IndexDocument><Suffix>index.html</Suffix></IndexDocument>"
RULES = (
    "<RoutingRules>"
    "<RoutingRule><Condition><KeyPrefixEquals>docs/</KeyPrefixEquals></Condition>"
    "<Redirect><ReplaceKeyPrefixWith>documents/</ReplaceKeyPrefixWith></Redirect></RoutingRule>"
    "<RoutingRule><Condition><HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>"
    "</Condition><Redirect><HostName>h.example</HostName><ReplaceKeyWith>404.html"
    "</ReplaceKeyWith><HttpRedirectCode>302</HttpRedirectCode></Redirect></RoutingRule>"
    "</RoutingRules>"
)


def test_round_trip_and_rules():
    site = website.parse_xml(
        doc(INDEX + "<ErrorDocument><Key>e.html</Key></ErrorDocument>" + RULES)
    )
    assert website.from_json(website.to_json(site)) == site
    assert website.parse_xml(website.render(site)) == site
    rule = site.rule_for("docs/a.html", None)
    assert rule is not None
    assert website.location(rule.redirect, "docs/a.html", rule.prefix, "s:1", "http") == (
        "http://s:1/documents/a.html"
    )
    assert site.rule_for("other", None) is None
    rule = site.rule_for("other", 404)
    assert rule is not None and rule.redirect.code == 302
    assert website.location(rule.redirect, "other", None, "s:1", "https") == (
        "https://h.example/404.html"
    )
    assert site.rule_for("other", 403) is None


@pytest.mark.parametrize(
    ("inner", "code"),
    [
        ("", "InvalidArgument"),
        ("<IndexDocument><Suffix></Suffix></IndexDocument>", "InvalidArgument"),
        ("<IndexDocument><Suffix>a/b</Suffix></IndexDocument>", "InvalidArgument"),
        (INDEX + "<ErrorDocument><Key></Key></ErrorDocument>", "InvalidArgument"),
        (INDEX + INDEX, "MalformedXML"),
        (INDEX + "<RoutingRules></RoutingRules>", "MalformedXML"),
        (INDEX + "<RoutingRules>" + "<RoutingRule><Redirect><HostName>x</HostName></Redirect>"
         "</RoutingRule>" * 51 + "</RoutingRules>", "MalformedXML"),
        (INDEX + "<RoutingRules><RoutingRule><Condition></Condition><Redirect><HostName>x"
         "</HostName></Redirect></RoutingRule></RoutingRules>", "InvalidRequest"),
        (INDEX + "<RoutingRules><RoutingRule><Condition><HttpErrorCodeReturnedEquals>200"
         "</HttpErrorCodeReturnedEquals></Condition><Redirect><HostName>x</HostName></Redirect>"
         "</RoutingRule></RoutingRules>", "InvalidRequest"),
        (INDEX + "<RoutingRules><RoutingRule><Redirect></Redirect></RoutingRule></RoutingRules>",
         "InvalidRequest"),
        (INDEX + "<RoutingRules><RoutingRule><Redirect><HttpRedirectCode>300</HttpRedirectCode>"
         "</Redirect></RoutingRule></RoutingRules>", "InvalidRequest"),
        ("<RedirectAllRequestsTo><Protocol>http</Protocol></RedirectAllRequestsTo>", "MalformedXML"),
    ],
)  # fmt: skip
def test_invalid_configurations(inner, code):
    with pytest.raises(S3Error) as e:
        website.parse_xml(doc(inner))
    assert e.value.code == code


def test_error_page_is_html_and_escaped():
    page = website.error_page(404, "NoSuchKey", "x", "RID", [("Key", "<script>")]).decode()
    assert page.startswith("<html>") and "<title>404 Not Found</title>" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
