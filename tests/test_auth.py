"""Tokens through MSAL's confidential client: request, cache, refresh, retries, refusals."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import pytest
import responses

from tap_partner_billing.errors import AuthenticationError
from tap_partner_billing.service.auth import ClientCredentials, TokenProvider
from tests.helpers import LOGIN, FakeClock

TENANT = "contoso.test"
TOKEN_URL = f"{LOGIN}/{TENANT}/oauth2/v2.0/token"


@pytest.fixture
def login(rsps: responses.RequestsMock) -> responses.RequestsMock:
    rsps.add(
        responses.GET,
        f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration",
        json={
            "token_endpoint": TOKEN_URL,
            "issuer": f"{LOGIN}/{TENANT}/v2.0",
            "authorization_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/authorize",
        },
    )
    return rsps


def provider(clock: FakeClock, secret: str = "s3cret-value") -> TokenProvider:
    return TokenProvider(
        ClientCredentials(TENANT, "client-1", client_secret=secret),
        authority_url=LOGIN,
        sleep=clock.sleep,
    )


def token_body(n: int, expires_in: int = 3600) -> str:
    return json.dumps(
        {"token_type": "Bearer", "expires_in": expires_in, "access_token": f"token-{n}"}
    )


def test_token_request_and_cache(login: responses.RequestsMock, clock: FakeClock) -> None:
    login.add(responses.POST, TOKEN_URL, body=token_body(1))
    tokens = provider(clock)
    assert tokens.token() == "token-1"
    assert tokens.token() == "token-1"
    posts = [c for c in login.calls if c.request.method == "POST"]
    assert len(posts) == 1
    form = parse_qs(str(posts[0].request.body))
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == ["client-1"]
    assert form["scope"] == ["https://graph.microsoft.com/.default"]


def test_token_refreshed_before_it_expires(
    login: responses.RequestsMock, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    login.add(responses.POST, TOKEN_URL, body=token_body(1))
    login.add(responses.POST, TOKEN_URL, body=token_body(2))
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    tokens = provider(clock)
    assert tokens.token() == "token-1"
    now[0] += 3000  # 600 s left: still cached
    assert tokens.token() == "token-1"
    now[0] += 400  # 200 s left: MSAL treats it as expired and asks again
    assert tokens.token() == "token-2"


def test_server_error_is_retried(login: responses.RequestsMock, clock: FakeClock) -> None:
    login.add(responses.POST, TOKEN_URL, status=503, body="{}")
    login.add(responses.POST, TOKEN_URL, body=token_body(1))
    assert provider(clock).token() == "token-1"
    assert len(clock.sleeps) == 1


def test_refused_credentials_are_a_clear_error_without_the_secret(
    login: responses.RequestsMock, clock: FakeClock
) -> None:
    login.add(
        responses.POST,
        TOKEN_URL,
        status=401,
        json={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
        },
    )
    with pytest.raises(AuthenticationError, match="invalid_client") as raised:
        provider(clock).token()
    assert "s3cret-value" not in str(raised.value)
    assert clock.sleeps == []


def test_certificate_credential_reads_the_pem(tmp_path: object) -> None:
    from pathlib import Path

    pem = Path(str(tmp_path)) / "key.pem"
    pem.write_text(
        "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", encoding="utf-8"
    )
    credential = ClientCredentials(
        "t", "c", certificate_path=str(pem), certificate_thumbprint="AB12"
    ).msal_credential()
    assert credential == {"private_key": pem.read_text(encoding="utf-8"), "thumbprint": "AB12"}


def test_throttling_is_retried_after_retry_after(
    login: responses.RequestsMock, clock: FakeClock
) -> None:
    login.add(
        responses.POST,
        TOKEN_URL,
        status=429,
        json={"error": "invalid_request", "error_description": "AADSTS50196: throttled"},
        headers={"Retry-After": "7"},
    )
    login.add(responses.POST, TOKEN_URL, body=token_body(1))
    assert provider(clock).token() == "token-1"
    assert clock.sleeps == [7]
