"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import responses

from tap_partner_billing.sandbox.tls import TlsFiles, make_tls_files
from tests.helpers import FakeClock, FakeGraph, assert_registrations_used
from tests.hostile import HostileServer, play_billing

if TYPE_CHECKING:
    from collections.abc import Iterator


ROOT = Path(__file__).resolve().parents[1]
# The modules with the longest tests, longest first (docs/testing.md has their times).
# pytest-xdist hands tests to its workers in collection order: a long test collected last
# would run alone at the end while the other workers wait. The rest keep their order.
LONGEST_FIRST = (
    "tests/e2e/test_kill_resume.py",
    "tests/e2e/test_snowflake.py",
    "tests/e2e/test_ledger.py",
    "tests/e2e/test_warehouse.py",
    "tests/e2e/test_failures.py",
    "tests/e2e/test_first_hour.py",
    "tests/e2e/test_meltano.py",
    "tests/test_fuzz.py",
    "tests/e2e/test_dbt_package.py",
    "tests/e2e/test_own_project.py",
    "tests/e2e/test_sandbox.py",
    "tests/e2e/test_faults.py",
    "tests/e2e/test_secrets.py",
    "tests/e2e/test_sandbox_environment.py",
    "tests/e2e/test_resume_exports.py",
    "tests/e2e/test_cookbook.py",
    "tests/e2e/test_pipelinewise.py",
    "tests/e2e/test_exports_ahead.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest modules' tests first (a stable sort: the others keep their order)."""
    if missing := [path for path in LONGEST_FIRST if not (ROOT / path).is_file()]:
        msg = f"tests/conftest.py LONGEST_FIRST names modules that do not exist: {missing}"
        raise pytest.UsageError(msg)
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """HTTP mocked; an unexpected URL fails the test (no network).

    So does a response the test registered that no request used (FakeGraph's routes aside:
    a whole service, of which a test uses what its scenario needs).
    """
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        assert_registrations_used(mock)


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
