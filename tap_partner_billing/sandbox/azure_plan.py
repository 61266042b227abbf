"""Azure plan reconciliation lines: what bills an invoice's daily-rated usage."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from tap_partner_billing.sandbox.data import charge_columns

if TYPE_CHECKING:
    from collections.abc import Sequence

_ENCODER = msgspec.json.Encoder(decimal_format="number")
CENT = Decimal("0.01")
# Azure plan's product id: usage lines carry it, and so do the reconciliation lines that bill them.
AZURE_PLAN_PRODUCT_ID = "DZH318Z0BQ3Q"


def azure_plan_lines(usage: Sequence[bytes], *, currency: str, attribute_set: str) -> list[bytes]:
    """The reconciliation lines that bill an invoice's Azure plan usage.

    One line per customer, subscription and meter; its ``Subtotal`` is the exact sum of
    the usage lines' ``BillingPreTaxTotal`` rounded half-even to cents, so an invoice's
    Azure plan lines differ from its usage by at most half a cent per line.
    """
    groups: dict[tuple[str, ...], tuple[Decimal, dict[str, Any]]] = {}
    for raw in usage:
        item = json.loads(raw, parse_float=Decimal)
        key = tuple(
            str(item.get(name, ""))
            for name in ("CustomerId", "SubscriptionId", "MeterCategory", "MeterName")
        )
        total, first = groups.get(key, (Decimal(0), item))
        groups[key] = (total + Decimal(str(item["BillingPreTaxTotal"])), first)
    lines: list[bytes] = []
    for index, (key, (total, item)) in enumerate(sorted(groups.items())):
        subtotal = total.quantize(CENT, rounding=ROUND_HALF_EVEN)
        tax = (subtotal * Decimal("0.21")).quantize(CENT, rounding=ROUND_HALF_EVEN)
        line: dict[str, object] = {
            "PartnerId": item["PartnerId"],
            "CustomerId": item["CustomerId"],
            "CustomerName": item["CustomerName"],
            "CustomerDomainName": "contoso-demo.example",
            "CustomerCountry": "NL",
            "InvoiceNumber": item["InvoiceNumber"],
            "MpnId": "1234567",
            "Tier2MpnId": "7654321",
            "OrderId": f"azureplan{index:05d}",
            "OrderDate": item["ChargeStartDate"],
            "ProductId": item["ProductId"],
            "SkuId": item["SkuId"],
            "AvailabilityId": item["AvailabilityId"],
            "SkuName": "Azure plan",
            "ProductName": "Azure plan",
            **charge_columns("New", "Azure plan", currency, (subtotal, Decimal(1), subtotal, tax)),
            "SubscriptionId": key[1],
            "ChargeStartDate": item["ChargeStartDate"],
            "ChargeEndDate": item["ChargeEndDate"],
            "TermAndBillingCycle": "Azure plan consumption",
            "EffectiveUnitPrice": subtotal,
            "UnitType": "Usage",
            "AlternateId": f"{index:08x}",
            "BillableQuantity": Decimal(1),
            "BillingFrequency": "Monthly",
            "PricingCurrency": item.get("PricingCurrency", "USD"),
            "PCToBCExchangeRate": item["PCToBCExchangeRate"],
            "PCToBCExchangeRateDate": item["PCToBCExchangeRateDate"],
            "MeterDescription": f"{key[2]} - {key[3]}",
            "CreditReasonCode": "",
            "ProductQualifiers": [],
            "ProductCategory": "Azure",
        }
        if attribute_set == "basic":
            for name in ("CustomerDomainName", "MpnId", "PublisherId", "UnitType", "AlternateId"):
                line.pop(name, None)
        lines.append(_ENCODER.encode(line))
    return lines
