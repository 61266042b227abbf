"""The Singer SDK's standard tap tests, with every HTTP call answered by a fake Graph.

The suite runs once, here (every claimed Python runs it: a contract test); the end-to-end
tests sync the sandbox over real HTTPS through the same streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import responses
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines, reconciliation_lines
from tap_partner_billing.tap import TapPartnerBilling
from tests.helpers import Export, FakeGraph, base_config, gz_lines

if TYPE_CHECKING:
    from collections.abc import Iterator

LINES = [
    line.decode()
    for line in iter_usage_lines(
        LineSpec(1, "202609", "G000000001", "USD", "full"),
        3,
    )
]
LINE = LINES[0][:-1] + ', "SomeNewField": 1.25}'  # a key the schema does not know yet

# The suite warns about schema columns no sample record fills; here that is the tombstone
# column (_sdc_deleted_at), which only appears when data shrinks. Its attribute tests warn
# "No records were available to test" for that column too: raised as an error only for the
# first such test a process runs (which one depends on pytest-xdist's distribution), so
# ignored here; a stream with no records at all still fails its own test.
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


TestTapPartnerBilling = get_tap_test_class(
    TapPartnerBilling,
    config=base_config(discover_invoices=True),
    suite_config=SuiteConfig(max_records_limit=100),
)
