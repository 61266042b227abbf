"""Deterministic fake billing data, gzip JSON-lines blobs, and ground truth read back from them."""

from __future__ import annotations

import gzip
import json
import random
import uuid
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator

_ENCODER = msgspec.json.Encoder(decimal_format="number")
_METERS = (
    ("Virtual Machines", "Dv5/Dsv5 Series", "D4s v5", "1 Hour", "Microsoft.Compute"),
    ("Storage", "Premium SSD Managed Disks", "P10 LRS Disk", "1/Month", "Microsoft.Storage"),
    ("Bandwidth", "Rtn Preference: MGN", "Standard Data Transfer Out", "1 GB", "Microsoft.Network"),
    ("Azure App Service", "Premium v3 Plan", "P1 v3 App", "1 Hour", "Microsoft.Web"),
    ("SQL Database", "General Purpose - Compute Gen5", "vCore", "1 Hour", "Microsoft.Sql"),
    ("Azure Monitor", "Log Analytics", "Data Ingestion", "1 GB", "Microsoft.OperationalInsights"),
)
_REGIONS = ("westeurope", "eastus2", "northeurope", "uksouth", "australiaeast", "centralindia")


def stable_seed(*parts: object) -> int:
    """A seed that is the same in every process (Python's ``hash`` is salted)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def customer_pool(count: int) -> list[tuple[str, str, str, str]]:
    """The first ``count`` customers: (id, name, domain, Azure plan subscription).

    The same in every partition, so a customer's usage, licences, invoices and months line up.
    """
    rng = random.Random(stable_seed("customers"))
    return [
        (_guid(rng), f"Contoso Demo Customer {i + 1}", f"contoso-demo-{i + 1}.example", _guid(rng))
        for i in range(max(1, count))
    ]


@dataclass
class PartitionData:
    """The blobs of one export partition, as served."""

    billing_month: str
    etag: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    version: int = 1


@dataclass(frozen=True)
class Truth:
    """What a correct sync must deliver for one partition, read back from the served bytes."""

    line_count: int
    pretax_total: Decimal


@dataclass(frozen=True)
class LineSpec:
    """Which partition generated lines belong to, and the seed that makes them."""

    seed: int
    billing_month: str  # YYYYMM
    invoice: str | None  # None: unbilled
    currency: str
    attribute_set: str  # full or basic

    def start(
        self, customers: int
    ) -> tuple[random.Random, str, list[tuple[str, str, str, str]], tuple[int, int]]:
        """What a generator starts from: its random source, the partner, customers, month."""
        partner_id = _guid(random.Random(stable_seed("partner")))
        month = (int(self.billing_month[:4]), int(self.billing_month[4:]))
        return random.Random(self.seed), partner_id, customer_pool(customers), month


def iter_usage_lines(spec: LineSpec, count: int, *, customers: int = 4) -> Iterator[bytes]:
    """``count`` JSON lines of daily-rated usage, with the quirks real exports have.

    One line at a time (the benchmark makes data larger than memory); ``list()`` it for a blob.
    """
    rng, partner_id, people, (year, month) = spec.start(customers)
    invoice, currency, attribute_set = spec.invoice, spec.currency, spec.attribute_set
    produced = 0
    while produced < count:
        customer_id, customer_name, domain, subscription = people[rng.randrange(len(people))]
        category, sub_category, meter_name, unit, service = _METERS[rng.randrange(len(_METERS))]
        quantity = Decimal(rng.randrange(1, 10**11)) / Decimal(10**8)
        unit_price = Decimal(rng.randrange(1, 10**9)) / Decimal(10**9)
        total = (quantity * unit_price).quantize(Decimal("1e-10"))
        rate = Decimal(rng.randrange(9 * 10**7, 11 * 10**7)) / Decimal(10**8)
        day = rng.randrange(1, 29)
        zone = "Z" if rng.random() < 0.5 else ""
        line: dict[str, object] = {
            "PartnerId": partner_id,
            "PartnerName": "Contoso Demo Partner",
            "CustomerId": customer_id,
            "CustomerName": customer_name,
            "CustomerDomainName": domain,
            "CustomerCountry": "NL",
            "MpnId": "1234567",
            "Tier2MpnId": "7654321",
            "InvoiceNumber": invoice or "",
            "ProductId": "DZH318Z0BQ3Q",
            "SkuId": "0001",
            "AvailabilityId": "DZH318Z0BQ3R",
            "SkuName": meter_name,
            "ProductName": category,
            "PublisherName": "Microsoft",
            "PublisherId": "",
            "SubscriptionDescription": "Azure plan",
            "SubscriptionId": subscription,
            "ChargeStartDate": f"{year:04d}-{month:02d}-01T00:00:00{zone}",
            "ChargeEndDate": f"{year:04d}-{month:02d}-28T00:00:00{zone}",
            "UsageDate": f"{year:04d}-{month:02d}-{day:02d}T00:00:00{zone}",
            "MeterType": "1 Compute Hour",
            "MeterCategory": category,
            "MeterId": _guid(rng),
            "MeterSubCategory": sub_category,
            "MeterName": meter_name,
            "MeterRegion": _REGIONS[rng.randrange(len(_REGIONS))],
            "Unit": unit,
            "ResourceLocation": _REGIONS[rng.randrange(len(_REGIONS))],
            "ConsumedService": service,
            "ResourceGroup": f"rg-demo-{rng.randrange(20)}",
            "ResourceURI": (
                f"/subscriptions/{subscription}/resourceGroups/rg-demo/providers/{service}"
                f"/x{rng.randrange(999)}"
            ),
            "ChargeType": "new",
            "UnitPrice": unit_price,
            "Quantity": quantity,
            "UnitType": unit,
            "BillingPreTaxTotal": total,
            "BillingCurrency": currency,
            "PricingPreTaxTotal": (total / rate).quantize(Decimal("1e-10")),
            "PricingCurrency": "USD",
            "ServiceInfo1": "",
            "ServiceInfo2": "",
            "Tags": json.dumps({"env": "demo", "owner": customer_name}),
            "AdditionalInfo": {"ImageType": "Canonical", "VCPUs": 4},
            "EffectiveUnitPrice": unit_price,
            "PCToBCExchangeRate": rate,
            "PCToBCExchangeRateDate": f"{year:04d}-{month:02d}-01T00:00:00Z",
            "EntitlementId": subscription,
            "EntitlementDescription": "Contoso Demo Azure subscription",
            "PartnerEarnedCreditPercentage": Decimal("0.15"),
            "CreditPercentage": Decimal(0),
            "CreditType": "Credit Not Applied",
            "BenefitType": "Charge",
        }
        if attribute_set == "basic":
            for key in ("CustomerDomainName", "CustomerCountry", "MpnId", "MeterId", "Tags"):
                line.pop(key)
        roll = rng.random()
        if roll < 0.3:
            line["BenefitOrderID"] = _guid(rng)
        elif roll < 0.6:
            line["BenefitOrderId"] = _guid(rng)
        # (otherwise the key is omitted, as Spark's JSON writer does for nulls)
        if rng.random() < 0.2:
            line["Quantity"] = str(quantity)
        encoded = _ENCODER.encode(line)
        yield encoded
        produced += 1
        if rng.random() < 0.05 and produced < count:
            yield encoded
            produced += 1


_PRODUCTS = (
    ("CFQ7TTC0LH18", "0001", "Microsoft 365 Business Basic", "Office", "Monthly"),
    ("CFQ7TTC0LF8Q", "0002", "Microsoft 365 E3", "Office", "Annual"),
    (
        "DZH318Z0BQ4B",
        "006F",
        "Reserved VM Instance, Standard_D4s_v5, EU West, 1 Year",
        "Azure",
        "OneTime",
    ),
    ("DG7GMGF0G49X", "0003", "Dynamics 365 Sales Enterprise", "Dynamics", "Monthly"),
    ("DZH318Z0BXWD", "0001", "Contoso Demo Marketplace SaaS", "Marketplace", "Monthly"),
)
# Customers with licences; the first four (``iter_usage_lines``' default) also have Azure plans.
LICENCE_CUSTOMERS = 6
_CHARGE_TYPES = ("New", "Renew", "Cycle fee", "Cycle fee", "Cancel")
_CREDIT_REASONS = ("Service credit", "Customer billing dispute", "Incorrect quantity billed")


def charge_columns(
    charge: str, description: str, currency: str, prices: tuple[Decimal, Decimal, Decimal, Decimal]
) -> dict[str, object]:
    """The charge, price, tax and publisher columns of a reconciliation line, in export order.

    ``prices``: unit price, quantity, subtotal and tax.
    """
    unit_price, quantity, subtotal, tax = prices
    return {
        "ChargeType": charge,
        "UnitPrice": unit_price,
        "Quantity": quantity,
        "Subtotal": subtotal,
        "TaxTotal": tax,
        "Total": subtotal + tax,
        "Currency": currency,
        "PriceAdjustmentDescription": "[]",
        "PublisherName": "Microsoft Corporation",
        "PublisherId": "",
        "SubscriptionDescription": description,
    }


def reconciliation_lines(spec: LineSpec, count: int, *, credit_note: bool = False) -> list[bytes]:
    """``count`` JSON lines of invoice reconciliation (licences, reservations, SaaS).

    A credit note (an adjustment note amending an invoice) holds only credits: cancelled
    charges with a credit reason and negative amounts. The Azure plan lines that bill an
    invoice's usage come from :func:`~tap_partner_billing.sandbox.azure_plan.azure_plan_lines`.
    """
    rng, partner_id, people, (year, month) = spec.start(LICENCE_CUSTOMERS)
    invoice, currency, attribute_set = spec.invoice, spec.currency, spec.attribute_set
    lines: list[bytes] = []
    for index in range(count):
        customer_id, customer_name, _, _ = people[rng.randrange(len(people))]
        product, sku, name, category, frequency = _PRODUCTS[rng.randrange(len(_PRODUCTS))]
        charge = _CHARGE_TYPES[rng.randrange(len(_CHARGE_TYPES))]
        if credit_note:
            charge = "Cancel"
        quantity = Decimal(rng.randrange(1, 300))
        unit_price = Decimal(rng.randrange(100, 500_000)) / Decimal(100)
        sign = -1 if charge == "Cancel" else 1
        subtotal = (sign * quantity * unit_price).quantize(Decimal("0.01"))
        tax = (subtotal * Decimal("0.21")).quantize(Decimal("0.01"))
        line: dict[str, object] = {
            "PartnerId": partner_id,
            "CustomerId": customer_id,
            "CustomerName": customer_name,
            "CustomerDomainName": "contoso-demo.example",
            "CustomerCountry": "NL",
            "InvoiceNumber": invoice or "",
            "MpnId": "1234567",
            "Tier2MpnId": "7654321",
            "OrderId": f"{rng.getrandbits(48):012x}",
            "OrderDate": f"{year:04d}-{month:02d}-01T00:00:00Z",
            "ProductId": product,
            "SkuId": sku,
            "AvailabilityId": f"CFQ7TTC0{index % 97:04d}",
            "SkuName": name,
            "ProductName": name,
            **charge_columns(charge, name, currency, (unit_price, quantity, subtotal, tax)),
            "SubscriptionId": _guid(rng),
            "ChargeStartDate": f"{year:04d}-{month:02d}-01T00:00:00",
            "ChargeEndDate": f"{year:04d}-{month:02d}-28T00:00:00",
            "TermAndBillingCycle": f"1 {'Year' if frequency == 'Annual' else 'Month'} Subscription",
            "EffectiveUnitPrice": unit_price,
            "UnitType": "Licenses",
            "AlternateId": f"{rng.getrandbits(32):08x}",
            "BillableQuantity": quantity,
            "BillingFrequency": frequency,
            "PricingCurrency": "USD",
            "PCToBCExchangeRate": Decimal(rng.randrange(9 * 10**7, 11 * 10**7)) / Decimal(10**8),
            "PCToBCExchangeRateDate": f"{year:04d}-{month:02d}-01T00:00:00Z",
            "MeterDescription": "",
            "CreditReasonCode": _CREDIT_REASONS[index % len(_CREDIT_REASONS)]
            if credit_note
            else "",
            "SubscriptionStartDate": f"{year - 1:04d}-{month:02d}-01T00:00:00Z",
            "SubscriptionEndDate": f"{year:04d}-{month:02d}-01T00:00:00Z",
            "ProductQualifiers": ["Add-on"] if rng.random() < 0.2 else [],
            "ProductCategory": category,
        }
        if category == "Azure":
            line["ReservationOrderId"] = _guid(rng)
        if rng.random() < 0.3:
            line["PriceAdjustmentDescription"] = '["Promotion: 15% off the first term"]'
            line["PromotionId" if rng.random() < 0.5 else "PromotionID"] = f"39NFJQT1{index % 10}"
        if charge in {"Renew", "Cancel"}:
            line["ReferenceId"] = _guid(rng)
        if attribute_set == "basic":
            for key in ("CustomerDomainName", "MpnId", "PublisherId", "UnitType", "AlternateId"):
                line.pop(key, None)
        lines.append(_ENCODER.encode(line))
    return lines


def pack_blobs(lines: list[bytes], *, blob_count: int, seed: int) -> dict[str, bytes]:
    """Split lines over ``blob_count`` Spark-style part files (gzip JSON lines)."""
    rng = random.Random(seed)
    blob_count = max(1, blob_count)
    size = -(-len(lines) // blob_count) if lines else 0
    blobs: dict[str, bytes] = {}
    for index in range(blob_count):
        chunk = lines[index * size : (index + 1) * size]
        name = f"part-{index:05d}-{uuid.UUID(int=rng.getrandbits(128), version=4)}.c000.json.gz"
        body = b"".join(line + b"\n" for line in chunk)
        blobs[name] = gzip.compress(body, compresslevel=6, mtime=0)
    return blobs


MONEY_KEYS = {"usage": "billingpretaxtotal", "reconciliation": "subtotal"}


def truth_of(blobs: dict[str, bytes], money_key: str = "billingpretaxtotal") -> Truth:
    """Count lines and add up the pre-tax amount exactly, from the gzip bytes themselves."""
    count, total = 0, Decimal(0)
    for name in sorted(blobs):
        for raw in gzip.decompress(blobs[name]).splitlines():
            line = json.loads(raw, parse_float=Decimal)
            count += 1
            for key, value in line.items():
                if key.lower() == money_key and value is not None:
                    total += Decimal(str(value)) if isinstance(value, (int, str)) else value
    return Truth(count, total)
