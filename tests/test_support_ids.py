"""Error answers name the ids a support case asks for: Graph's and Partner Center's alike."""

from __future__ import annotations

import logging

import pytest
import responses

from tap_partner_billing.errors import ServiceError
from tap_partner_billing.redact import register_secret
from tap_partner_billing.service.export import ExportClient, ExportRequest
from tap_partner_billing.service.partner_center import InvoiceClient
from tests.helpers import GRAPH, PARTNER_CENTER, FakeClock

# As the tap registers them: the client secret from the config, each token as it is acquired.
CLIENT_SECRET = "pc-support-client-secret-0e3b"
TOKEN = "eyJ0eXAi.pc-support-token.c2lnbmF0dXJl"
CORRELATION_ID = "3a9b5c2e-7f41-4d8e-9b1a-2c6e0f8d4b71"
REQUEST_ID = "c1f3e5a7-2b4d-4e6f-8a0b-9d7c5e3a1f20"
LOGGER = logging.getLogger("tap_partner_billing.test_support_ids")


@pytest.fixture(autouse=True)
def _secrets_known() -> None:
    register_secret(CLIENT_SECRET)
    register_secret(TOKEN)


def _invoice_list_error(rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> str:
    """The invoice list's error, as the tap's error log line shows it."""
    client = InvoiceClient(base_url=PARTNER_CENTER, token=lambda: TOKEN, sleep=lambda _: None)
    with pytest.raises(ServiceError) as raised:
        client.list_invoices()
    LOGGER.error("%s", raised.value)
    assert caplog.records[-1].getMessage() == str(raised.value)
    return str(raised.value)


def test_a_partner_center_error_names_its_correlation_and_request_ids(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    # Partner Center's error body (code, description), here echoing the credentials back.
    rsps.get(
        f"{PARTNER_CENTER}/v1/invoices",
        status=400,
        json={
            "code": 600008,
            "description": f"Bearer {TOKEN} is not valid for secret {CLIENT_SECRET}",
            "data": [],
            "source": "PartnerFd",
        },
        headers={"MS-CorrelationId": CORRELATION_ID, "MS-RequestId": REQUEST_ID},
    )
    message = _invoice_list_error(rsps, caplog)
    assert message.startswith("Partner Center invoice list, page 1: HTTP 400, 600008: Bearer ")
    assert message.endswith(f"MS-CorrelationId {CORRELATION_ID}, MS-RequestId {REQUEST_ID}")
    assert TOKEN not in caplog.text
    assert CLIENT_SECRET not in caplog.text


def test_support_ids_are_redacted_too_and_the_throttling_body_shape_is_read(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    rsps.get(
        f"{PARTNER_CENTER}/v1/invoices",
        status=403,  # not retried: one answer is the whole story
        json={"statusCode": 403, "message": "Forbidden"},
        headers={"MS-CorrelationId": f"{TOKEN}", "MS-RequestId": REQUEST_ID},
    )
    message = _invoice_list_error(rsps, caplog)
    assert f"HTTP 403, Forbidden, MS-CorrelationId <redacted>, MS-RequestId {REQUEST_ID} (" in (
        message
    )
    assert TOKEN not in caplog.text


def test_graph_and_partner_center_errors_are_described_alike(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    export_url = f"{GRAPH}/reports/partners/billing/usage/billed/export"
    rsps.post(
        export_url,
        status=400,
        json={"error": {"code": "BadRequest", "message": "invoiceId malformed"}},
        headers={"request-id": REQUEST_ID},
    )
    rsps.get(
        f"{PARTNER_CENTER}/v1/invoices",
        status=400,
        json={"code": 2000, "description": "invalid size"},
        headers={"MS-CorrelationId": CORRELATION_ID, "MS-RequestId": REQUEST_ID},
    )
    clock = FakeClock()
    graph = ExportClient(
        graph_url=GRAPH,
        token=lambda: TOKEN,
        clock=clock.clock,
        sleep=clock.sleep,
    )
    request = ExportRequest("usage/billed", {"invoiceId": "G1"}, "billed_usage invoice G1")
    with pytest.raises(ServiceError) as raised:
        graph.post(request)
    assert str(raised.value) == (
        "billed_usage invoice G1: export request answered HTTP 400, "
        f"BadRequest: invoiceId malformed, request-id {REQUEST_ID}"
    )
    assert _invoice_list_error(rsps, caplog).endswith(
        f"HTTP 400, 2000: invalid size, MS-CorrelationId {CORRELATION_ID}, "
        f"MS-RequestId {REQUEST_ID}"
    )
