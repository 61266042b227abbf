"""The Singer SDK's standard tap tests, with every HTTP call answered by a fake Graph.

The suite runs once, here (every claimed Python runs it: a contract test); the end-to-end
tests sync the sandbox over real HTTPS through the same streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import responses
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines, reconciliation_lines
from tap_partner_billing.tap import TapPartnerBilling
from tests.helpers import Export, FakeGraph, base_config, gz_lines

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk.testing.runners import TapTestRunner

LINES = [
    line.decode()
    for line in iter_usage_lines(
        LineSpec(1, "202609", "G000000001", "USD", "full"),
        3,
    )
]
LINE = LINES[0][:-1] + ', "SomeNewField": 1.25}'  # a key the schema does not know yet

# The suite warns about schema columns no sample record fills (the unknown-key bag of some
# streams). Its attribute tests only warn "No records were available to test" and pass when
# a column has no value (an error for the first such test a process runs at most, which
# depends on pytest-xdist's distribution), so that warning is ignored here, and the state
# below makes every export stream retire lines: the tombstone column (_sdc_deleted_at) has
# values, which TestTapPartnerBilling.test_every_export_stream_retires_the_older_lines
# asserts. A stream with no records at all still fails its own test.
pytestmark = [
    pytest.mark.contract,  # the SDK's standard tests run on every claimed Python
    pytest.mark.filterwarnings(
        "ignore:Fields in transformed catalog but not in records:UserWarning"
    ),
    pytest.mark.filterwarnings("ignore:No records were available to test:UserWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def fake_graph() -> Iterator[FakeGraph]:
    """Active before the test class syncs (its fixtures are class-scoped); unknown URLs fail."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        graph = FakeGraph(rsps)
        graph.retry_after = "0"
        done = ["succeeded"]  # at the first poll: the suite's syncs wait for nothing
        graph.add(
            "G000000001",
            Export(
                {"a.json.gz": gz_lines(LINE, LINES[1]), "b.json.gz": gz_lines(LINES[2])},
                statuses=done,
            ),
        )
        graph.add(
            "current/USD", Export({"u.json.gz": gz_lines(LINE)}, month="202611", statuses=done)
        )
        recon = [
            line.decode()
            for line in reconciliation_lines(
                LineSpec(2, "202609", "G000000001", "USD", "full"),
                3,
            )
        ]
        recon[0] = recon[0][:-1] + ', "AnotherNewField": 2.50}'
        graph.add("recon:G000000001", Export({"r.json.gz": gz_lines(*recon)}, statuses=done))
        graph.add(
            "recon:current/USD",
            Export({"r.json.gz": gz_lines(*recon)}, month="202611", statuses=done),
        )
        graph.add_invoice("G000000001", "202609")  # discovered: invoice_ids stays empty
        graph.add_invoice("D02005YFHI", "202609", invoiceType="Recurring")
        yield graph


# Lines the fake Graph serves per export stream. The state the suite's taps start from says
# each partition held more (OLDER_LINES) of an older data version: the sync retires the
# rest with tombstones, so the suite's _sdc_deleted_at checks see values.
SERVED = {
    "billed_usage": 3,
    "billed_reconciliation": 3,
    "unbilled_usage": 1,
    "unbilled_reconciliation": 3,
}
OLDER_LINES = 5


def _older(**partition: object) -> dict[str, Any]:
    return {**partition, "etag": "etag-0", "line_count": OLDER_LINES, "high_water": OLDER_LINES}


def _state() -> dict[str, Any]:
    """Each partition its own dicts: the tap updates the state it is given in place."""
    billed = {"invoice_id": "G000000001", "attribute_set": "full"}
    unbilled = {"currency": "USD", "attribute_set": "full"}
    return {
        "bookmarks": {
            stream: {
                "partitions": [
                    _older(context=billed)
                    if stream.startswith("billed")
                    else {"context": unbilled, "months": {"202611": _older()}}
                ]
            }
            for stream in SERVED
        }
    }


RECHECK_MONTHS = 120
_StandardTests = get_tap_test_class(
    TapPartnerBilling,
    # The invoice's month is re-checked whatever today's date: it has bookmarks.
    config=base_config(discover_invoices=True, recheck_months=RECHECK_MONTHS),
    suite_config=SuiteConfig(max_records_limit=100),
    state=_state(),
)


class TestTapPartnerBilling(_StandardTests):  # type: ignore[misc,valid-type]
    """The standard tests, and that their tombstone column checks have values to check."""

    def test_every_export_stream_retires_the_older_lines(self, runner: TapTestRunner) -> None:
        """The suite's ``_sdc_deleted_at`` checks pass with no values too: here are some."""
        tombstones = {
            stream: [r["line_ordinal"] for r in runner.records[stream] if r["_sdc_deleted_at"]]
            for stream in SERVED
        }
        assert tombstones == {
            stream: list(range(served, OLDER_LINES)) for stream, served in SERVED.items()
        }

    def test_primary_keys_are_unique(self, runner: TapTestRunner) -> None:
        """What the suite's primary-key test means to check (its set holds generators)."""
        streams = runner.new_tap().streams
        for name, records in runner.records.items():
            keys = [tuple(r[k] for k in streams[name].primary_keys or ()) for r in records]
            assert len(set(keys)) == len(keys), name
