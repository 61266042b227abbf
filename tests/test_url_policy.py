"""The URL policy against the parsers that really send: urllib3's, and requests' adapter.

For any string, the policy either refuses it, or the host and port that requests' adapter
would open a connection to (computed by the adapter's own code on the prepared request) are
exactly the configured origin.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter

from tap_partner_billing.errors import UrlPolicyError
from tap_partner_billing.service.url_policy import UrlPolicy

POLICY = UrlPolicy.for_base("https://graph.test/v1.0", "graph_url")
PIECES = [
    "https://",
    "http://",
    "HTTPS://",
    "//",
    "graph.test",
    "GRAPH.test",
    "evil.test",
    "graph.test.evil.test",
    "evil.test\\@graph.test",
    "@",
    ":",
    ":443",
    ":8443",
    ":0443",
    "%2e",
    "%40",
    "%00",
    "[::1]",
    "[",
    "]",
    "#",
    "?",
    "/",
    "\\",
    "/v1.0/x",
    "..",
    "\t",
    "\n",
    " ",
    "user:pw@",
    "ﬀ",
    "graph。test",
]


def _connects_to(url: str) -> tuple[str, int] | None:
    """(host, port) requests would connect to for ``url``; None if it would not send it."""
    try:
        prepared = requests.Request("GET", url).prepare()
        params, _ = HTTPAdapter().build_connection_pool_key_attributes(prepared, verify=True)
    except (requests.RequestException, ValueError):
        return None
    return str(params["host"]).lower(), int(params["port"] or 443)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join) | st.text())
def test_accepted_urls_connect_exactly_to_the_origin(url: str) -> None:
    try:
        POLICY.check(url, "fuzz")
    except UrlPolicyError:
        return
    assert _connects_to(url) == ("graph.test", 443)
    # The session checks the prepared URL too: it must pass the same policy.
    POLICY.check(str(requests.Request("GET", url).prepare().url), "fuzz")


@pytest.mark.parametrize(
    "url",
    [
        "https://graph.test/v1.0/x",
        "HTTPS://Graph.Test:443/v1.0/x",
        "https://graph.test:0443/v1.0/x",
        "https://graph.test/v1.0/x?a=1#f",
    ],
)
def test_the_origin_in_any_spelling_is_accepted(url: str) -> None:
    assert POLICY.check(url, "t") == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.test\\@graph.test/x", "backslash"),
        ("https://graph.test@evil.test/x", "userinfo"),
        ("https://u:p@graph.test/x", "userinfo"),
        ("http://graph.test/x", "not https"),
        ("https://graph.test:8443/x", "not on the origin"),
        ("https://graph.test./x", "not on the origin"),
        ("https://gr\u0430ph.test/x", "not ASCII"),
        ("https://graph.test\t/x", "whitespace"),
        ("//graph.test/x", "not https"),
        ("https://graph.test:99999/x", "cannot be parsed"),
        ("", "not a URL"),
    ],
)
def test_refusals_name_the_reason(url: str, why: str) -> None:
    with pytest.raises(UrlPolicyError, match=why) as raised:
        POLICY.check(url, "operation poll")
    assert str(raised.value).startswith("operation poll: refusing")


def test_a_folder_policy_keeps_blobs_under_their_root() -> None:
    root = UrlPolicy.for_base("https://acct.blob.test/c/Invoice=G1", "rootDirectory", folder=True)
    root.check("https://acct.blob.test/c/Invoice=G1/part-0.json.gz?sig=x", "t")
    for outside in (
        "https://acct.blob.test/c/Invoice=G2/part-0.json.gz",
        "https://acct.blob.test/c/Invoice=G1/../G2/x.json.gz",
        "https://acct.blob.test/c/Invoice=G1",
    ):
        with pytest.raises(UrlPolicyError, match="not under rootDirectory"):
            root.check(outside, "t")


@pytest.mark.parametrize(
    "base",
    ["http://graph.test", "https://graph.test/v1.0?x=1", "https://u@graph.test", "graph.test"],
)
def test_settings_that_are_no_plain_https_url_are_refused(base: str) -> None:
    with pytest.raises(UrlPolicyError, match="graph_url must be an https:// URL"):
        UrlPolicy.for_base(base, "graph_url")
