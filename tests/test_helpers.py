"""The test helpers' own checks: they must be able to fail."""

from __future__ import annotations

import pytest
import requests
import responses

from tests.helpers import FakeGraph, assert_registrations_used

ELSEWHERE = "https://elsewhere.test"  # no FakeGraph route answers here


def test_rsps_fails_a_test_whose_own_registration_was_never_requested() -> None:
    """What the ``rsps`` fixture checks when a test ends: FakeGraph's unused routes pass."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeGraph(mock)  # a whole service: none of its routes is requested here
        mock.add(responses.GET, f"{ELSEWHERE}/fired", json={})
        mock.add(responses.GET, f"{ELSEWHERE}/never", json={})
        assert requests.get(f"{ELSEWHERE}/fired", timeout=5).json() == {}

        with pytest.raises(AssertionError) as failed:
            assert_registrations_used(mock)
        assert f"['GET {ELSEWHERE}/never']" in str(failed.value)

        requests.get(f"{ELSEWHERE}/never", timeout=5)
        assert_registrations_used(mock)  # every own registration used: no failure
