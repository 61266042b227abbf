"""What --test and the start of a run check: the token's roles, the invoice-list warnings."""

from __future__ import annotations

import base64
import json

from tap_partner_billing.service.checks import token_roles
from tap_partner_billing.service.partner_center import parse_invoice
from tap_partner_billing.sync.invoice_index import invoice_list_warnings


def jwt(claims: object) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_roles_are_read_from_the_token_payload() -> None:
    assert token_roles(jwt({"roles": ["PartnerBilling.Read.All", "X"]})) == [
        "PartnerBilling.Read.All",
        "X",
    ]
    assert token_roles(jwt({"aud": "https://graph.microsoft.com"})) == []
    assert token_roles("opaque-token") is None
    assert token_roles("a.!!!.c") is None
    assert token_roles(jwt(["not", "an", "object"])) is None


def test_invoice_list_warnings_name_the_id_and_the_currencies() -> None:
    invoices = [parse_invoice({"id": "G1", "currencyCode": "USD"}, "t")]
    warnings = invoice_list_warnings(invoices, invoice_ids=["G1", "G9"], currency_codes=["EUR"])
    assert len(warnings) == 3
    assert warnings[0].startswith("invoice_ids: G9 is not in the Partner Center invoice list")
    assert warnings[1].startswith("currency_codes: no listed invoice is in EUR")
    assert warnings[2].startswith("currency_codes does not list USD")
    assert invoice_list_warnings(invoices, invoice_ids=["G1"], currency_codes=["USD"]) == []


def test_no_currency_warning_for_an_empty_list() -> None:
    assert invoice_list_warnings([], invoice_ids=[], currency_codes=["EUR"]) == []
