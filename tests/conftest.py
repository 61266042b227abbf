"""Fixtures shared by the unit tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import responses

from tests.helpers import FakeClock, FakeGraph

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
