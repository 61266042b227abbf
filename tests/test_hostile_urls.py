"""A hostile service aims the tap's credentials elsewhere: every form, every way in, refused.

Whole tap runs against the hostile HTTPS server (``tests/hostile.py``). The attacker is a
second server on ``localhost``; the configured origin is ``127.0.0.1``. A URL form that two
parsers read differently must be refused before any request, so the attacker must see no
request at all — not only none with a token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.errors import AuthenticationError, ServiceError, StateError
from tests.helpers import run_tap
from tests.hostile import (
    BLOB_ROOT,
    CLIENT_SECRET,
    EXPORT_PATH,
    INVOICE,
    OPERATION_PATH,
    TENANT,
    TOKEN,
    HostileServer,
    json_reply,
    manifest,
    succeeded,
    tap_config,
)

if TYPE_CHECKING:
    from collections.abc import Callable

FORMS: dict[str, Callable[[int, int], str]] = {
    "another host": lambda o, a: f"https://localhost:{a}{OPERATION_PATH}",
    "backslash before @": lambda o, a: f"https://localhost:{a}\\@127.0.0.1:{o}{OPERATION_PATH}",
    "userinfo": lambda o, a: f"https://127.0.0.1:{o}@localhost:{a}{OPERATION_PATH}",
    "percent-encoded host": lambda o, a: f"https://%6cocalhost:{a}{OPERATION_PATH}",
    "IPv6 literal": lambda o, a: f"https://[::1]:{a}{OPERATION_PATH}",
    "same host, other port": lambda o, a: f"https://127.0.0.1:{a}{OPERATION_PATH}",
    "port with a leading zero elsewhere": lambda o, a: f"https://localhost:0{a}{OPERATION_PATH}",
    "mixed-case other host": lambda o, a: f"https://LocalHost:{a}{OPERATION_PATH}",
    "fragment before @": lambda o, a: f"https://localhost:{a}#@127.0.0.1:{o}{OPERATION_PATH}",
    "query before @": lambda o, a: f"https://localhost:{a}?@127.0.0.1:{o}{OPERATION_PATH}",
    "tab in the host": lambda o, a: f"https://local\thost:{a}{OPERATION_PATH}",
    "plain http, same origin": lambda o, a: f"http://127.0.0.1:{o}{OPERATION_PATH}",
    "scheme-relative": lambda o, a: f"//localhost:{a}{OPERATION_PATH}",
}


def _attack(vector: str, url: str, origin: HostileServer) -> tuple[dict[str, Any], Any]:
    """Plant ``url`` where ``vector`` says; return the config and state to run with."""
    config, state = tap_config(origin), None
    if vector == "operation Location":
        origin.routes["POST", EXPORT_PATH] = (202, {"Location": url}, b"")
    elif vector == "manifest link":
        body = succeeded(origin.origin, **{"resourceLocation@odata.navigationLink": url})
        del body["resourceLocation"]
        origin.routes["GET", OPERATION_PATH] = json_reply(200, body)
    elif vector == "saved state":
        context = {"invoice_id": INVOICE, "attribute_set": "full"}
        pending = {"export": {"operation_url": url, "started_at": "2026-11-01T00:00:00+00:00"}}
        state = {
            "bookmarks": {
                "billed_usage": {
                    "partitions": [{"context": context, "pending_operations": pending}]
                }
            }
        }
    else:  # Partner Center's next link
        config["discover_invoices"] = True
        page = {"items": [], "links": {"next": {"uri": url}}}
        origin.routes["GET", "/v1/invoices"] = json_reply(200, page)
    return config, state


VECTORS = ("operation Location", "manifest link", "saved state", "invoice list next link")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("vector", VECTORS)
def test_no_credential_leaves_its_origin(
    vector: str, form: str, origin: HostileServer, attacker: HostileServer
) -> None:
    url = FORMS[form](origin.port, attacker.port)
    config, state = _attack(vector, url, origin)
    stream = "invoices" if vector == "invoice list next link" else "billed_usage"
    expected = StateError if vector == "saved state" else ServiceError
    with pytest.raises(expected, match="refusing") as raised:
        run_tap(config, state=state, streams=(stream,))
    assert attacker.seen == []
    message = str(raised.value)
    assert TOKEN not in message
    assert "sig=" not in message
    if vector == "saved state":
        assert "next run starts a new export" in message


def test_a_refused_saved_url_is_dropped_from_the_state(
    origin: HostileServer, attacker: HostileServer
) -> None:
    config, state = _attack("saved state", f"https://localhost:{attacker.port}/x", origin)
    written: list[str] = []
    with pytest.raises(StateError):
        run_tap(config, state=state, streams=("billed_usage",), raw=written)
    assert f"localhost:{attacker.port}" not in written[-1]  # the last STATE the tap wrote
    # The next run, from that state, starts a new export and completes.
    last = [line for line in written if '"STATE"' in line][-1]
    import json

    result = run_tap(config, state=json.loads(last)["value"], streams=("billed_usage",))
    assert len(result.records()) == 2
    assert attacker.seen == []


def test_the_same_origin_in_other_spellings_is_followed(origin: HostileServer) -> None:
    spelled = f"HTTPS://127.0.0.1:{origin.port}{OPERATION_PATH}"
    origin.routes["POST", EXPORT_PATH] = (202, {"Location": spelled}, b"")
    assert len(run_tap(tap_config(origin), streams=("billed_usage",)).records()) == 2


def test_tokens_go_only_to_graph_and_never_to_blob_storage(origin: HostileServer) -> None:
    result = run_tap(tap_config(origin), streams=("billed_usage",))
    assert [r["customer_id"] for r in result.records()] == ["c1", "c2"]
    blob_requests = [s for s in origin.seen if s.path.startswith(BLOB_ROOT)]
    assert blob_requests
    assert all("authorization" not in {k.lower() for k in s.headers} for s in blob_requests)
    graph_requests = [s for s in origin.seen if s.path.startswith("/v1.0/")]
    assert all(s.headers.get("Authorization") == f"Bearer {TOKEN}" for s in graph_requests)


@pytest.mark.parametrize(
    ("step", "method", "path"),
    [
        ("export request", "POST", EXPORT_PATH),
        ("operation poll", "GET", OPERATION_PATH),
        ("download", "GET", f"{BLOB_ROOT}/part-0.json.gz"),
    ],
)
def test_redirects_are_never_followed(
    step: str, method: str, path: str, origin: HostileServer, attacker: HostileServer
) -> None:
    target = f"https://localhost:{attacker.port}/steal?sig=abc"
    origin.routes[method, path] = (302, {"Location": target}, b"")
    with pytest.raises(ServiceError, match=f"{step}: answered HTTP 302, a redirect to") as raised:
        run_tap(tap_config(origin), streams=("billed_usage",))
    assert f"https://localhost:{attacker.port}/steal'" in str(raised.value)
    assert "sig=abc" not in str(raised.value)
    assert attacker.seen == []


def test_the_token_endpoint_redirect_is_not_followed(
    origin: HostileServer, attacker: HostileServer
) -> None:
    token_path = f"/{TENANT}/oauth2/v2.0/token"
    origin.routes["POST", token_path] = (
        307,
        {"Location": f"https://localhost:{attacker.port}/t"},
        b"",
    )
    with pytest.raises(AuthenticationError, match="redirect"):
        run_tap(tap_config(origin), streams=("billed_usage",))
    assert attacker.seen == []


def test_a_token_endpoint_on_another_origin_never_gets_the_secret(
    origin: HostileServer, attacker: HostileServer
) -> None:
    evil = f"https://localhost:{attacker.port}/{TENANT}/oauth2/v2.0/token"
    origin.routes["GET", f"/{TENANT}/v2.0/.well-known/openid-configuration"] = json_reply(
        200,
        {
            "token_endpoint": evil,
            "issuer": f"{origin.origin}/{TENANT}/v2.0",
            "authorization_endpoint": f"{origin.origin}/{TENANT}/oauth2/v2.0/authorize",
        },
    )
    with pytest.raises(AuthenticationError, match="refusing") as raised:
        run_tap(tap_config(origin), streams=("billed_usage",))
    assert attacker.seen == []
    assert CLIENT_SECRET not in str(raised.value)


@pytest.mark.parametrize(
    "name",
    [
        "../../../v1.0/reports/partners/billing/operations/op-1",
        "part/../../escape.json.gz",
        "/absolute.json.gz",
        "a/./b.json.gz",
        "a\\..\\b.json.gz",
        "https://localhost:1/x.json.gz",
        "a//b.json.gz",
    ],
)
def test_blob_names_outside_the_root_directory_are_refused(
    name: str, origin: HostileServer
) -> None:
    origin.routes["GET", OPERATION_PATH] = json_reply(
        200, {**succeeded(origin.origin), "resourceLocation": manifest(origin.origin, (name,))}
    )
    with pytest.raises(ServiceError, match=r"manifest blob name .* refused"):
        run_tap(tap_config(origin), streams=("billed_usage",))
    assert not [s for s in origin.seen if not s.path.startswith(("/v1.0/", f"/{TENANT}/"))]
