"""No answer at all: the message names the origin tried, the cause, the attempts and the time.

Real sockets on 127.0.0.1 (a closed port, a server whose certificate is not trusted); only
the DNS answer is staged, by replacing ``socket.getaddrinfo`` for one host name.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.errors import AuthenticationError, TransientHTTPError
from tap_partner_billing.service.auth import ClientCredentials, TokenProvider
from tap_partner_billing.service.transport import RetryPolicy, send
from tap_partner_billing.service.url_policy import CheckedSession, UrlPolicy
from tests.hostile import HostileServer

if TYPE_CHECKING:
    from tap_partner_billing.sandbox.tls import TlsFiles
    from tests.helpers import FakeClock

CHECK = "check authority_url and this machine's network path to it (proxy, firewall)"
REFUSED = "connection refused (nothing accepts connections on that port)"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def token_error(authority: str, clock: FakeClock) -> str:
    tokens = TokenProvider(
        ClientCredentials("contoso.example", "client-1", client_secret="s3cret-value"),
        authority_url=authority,
        sleep=clock.sleep,
    )
    with pytest.raises(AuthenticationError) as raised:
        tokens.token()
    return re.sub(r"in \d+ s:", "in N s:", str(raised.value))


def test_a_refused_token_request_names_the_origin_cause_attempts_and_time(
    clock: FakeClock,
) -> None:
    origin = f"https://127.0.0.1:{closed_port()}"
    message = token_error(origin, clock)
    assert message == (
        f"no token: token request to {origin} failed 6 times in N s: {REFUSED}; {CHECK}"
    )
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]  # 31 s of backoff, then it gives up


def stage_dns(monkeypatch: pytest.MonkeyPatch, host: str, code: int, text: str) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(name: str, *args: Any, **kwargs: Any) -> object:
        if name == host:
            raise socket.gaierror(code, text)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_host_dns_does_not_know_fails_at_once(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_dns(monkeypatch, "login.invalid", socket.EAI_NONAME, "Name or service not known")
    message = token_error("https://login.invalid", clock)
    assert message == (
        f"no token: token request to https://login.invalid: DNS does not know this host name; "
        f"{CHECK}"
    )
    assert clock.sleeps == []


def test_a_dns_lookup_that_may_work_later_is_retried(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "Temporary failure in name resolution"
    stage_dns(monkeypatch, "login.example", socket.EAI_AGAIN, text)
    message = token_error("https://login.example", clock)
    assert message == (
        f"no token: token request to https://login.example failed 6 times in N s: DNS lookup "
        f"failed ({text}); {CHECK}"
    )
    assert len(clock.sleeps) == 5


def test_an_untrusted_certificate_fails_at_once_and_says_what_to_do(
    tls: TlsFiles, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    server = HostileServer("login", tls).start()  # its CA is in no bundle the client reads
    try:
        message = token_error(server.origin, clock)
    finally:
        server.stop()
    assert message == (
        f"no token: token request to {server.origin}: TLS certificate verification failed "
        "(unable to get local issuer certificate); behind a proxy that inspects TLS, point "
        f"REQUESTS_CA_BUNDLE at a bundle holding its CA; {CHECK}"
    )
    assert clock.sleeps == []
    assert server.seen == []  # the handshake failed: no request reached it


def test_graph_and_blob_requests_name_the_origin_never_the_path_or_query(
    clock: FakeClock,
) -> None:
    origin = f"https://127.0.0.1:{closed_port()}"
    session = CheckedSession(UrlPolicy.any_https("blob"))
    budget = RetryPolicy().budget("blob b.json.gz: download", sleep=clock.sleep, clock=clock.clock)
    with pytest.raises(TransientHTTPError) as raised:
        send(session, "GET", f"{origin}/container/b.json.gz?sv=1&sig=SIGNATURE", budget=budget)
    assert str(raised.value) == (
        f"blob b.json.gz: download failed 6 times in 31 s: {origin}: {REFUSED}"
    )
