"""Fixtures shared by the unit tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import responses

from tap_partner_billing.sandbox.tls import TlsFiles, make_tls_files
from tests.helpers import FakeClock, FakeGraph
from tests.hostile import HostileServer, play_billing

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """HTTP mocked; an unexpected URL fails the test (no network)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def graph(rsps: responses.RequestsMock) -> FakeGraph:
    return FakeGraph(rsps)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1 and localhost."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def origin(tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    """The hostile service every setting points at, playing one good export by default."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    server = HostileServer("origin", tls).start()
    play_billing(server)
    yield server
    server.stop()


@pytest.fixture
def attacker(tls: TlsFiles) -> Iterator[HostileServer]:
    """Another origin (``localhost``), which must never see a credential."""
    server = HostileServer("attacker", tls, host="localhost").start()
    yield server
    server.stop()
