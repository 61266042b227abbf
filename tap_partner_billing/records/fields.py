"""The usage line-item fields (reference §6.2), their JSON schema, and how a line is typed.

One table drives both the Singer schema and the conversion of a line, so they cannot drift.
Source keys are matched case-insensitively: Microsoft's sources disagree on casing
(``BenefitOrderID`` / ``BenefitOrderId``, ``ResourceURI`` / ``ResourceUri``).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from tap_partner_billing.errors import RecordValueError

DECIMAL_PRECISION = 38
DECIMAL_SCALE = 18  # unit prices and exchange rates carry 8-12 fraction digits in practice
_MAX_INTEGER_DIGITS = DECIMAL_PRECISION - DECIMAL_SCALE
_SCALE_QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)
# Wide enough for any value DECIMAL(38, 18) holds, whatever the thread's default context says
# (its 28 digits made quantize() fail on valid 19-fraction-digit values).
_CONTEXT = Context(prec=2 * DECIMAL_PRECISION, Emax=999_999, Emin=-999_999)
MAX_NUMBER_CHARS = 100
EXTRA_FIELDS_COLUMN = "_extra_fields"


class Kind(enum.Enum):
    """How a source value is typed."""

    STRING = "string"
    DECIMAL = "decimal"
    DATETIME = "datetime"
    JSON_TEXT = "json_text"  # Tags, AdditionalInfo: JSON text in legacy APIs, maybe objects here


def snake_case(name: str) -> str:
    """``PCToBCExchangeRate`` → ``pc_to_bc_exchange_rate``; ``ResourceURI`` → ``resource_uri``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()


S, D, T, J = Kind.STRING, Kind.DECIMAL, Kind.DATETIME, Kind.JSON_TEXT

# Both datasets carry these, in this order, in the middle of their columns.
_PUBLISHER_AND_SUBSCRIPTION: tuple[tuple[str, Kind], ...] = (
    ("PublisherName", S),
    ("PublisherId", S),
    ("SubscriptionDescription", S),
    ("SubscriptionId", S),
    ("ChargeStartDate", T),
    ("ChargeEndDate", T),
)

USAGE_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("PartnerId", S),
    ("PartnerName", S),
    ("CustomerId", S),
    ("CustomerName", S),
    ("CustomerDomainName", S),
    ("CustomerCountry", S),
    ("MpnId", S),
    ("Tier2MpnId", S),
    ("InvoiceNumber", S),
    ("ProductId", S),
    ("SkuId", S),
    ("AvailabilityId", S),
    ("SkuName", S),
    ("ProductName", S),
    *_PUBLISHER_AND_SUBSCRIPTION,
    ("UsageDate", T),
    ("MeterType", S),
    ("MeterCategory", S),
    ("MeterId", S),
    ("MeterSubCategory", S),
    ("MeterName", S),
    ("MeterRegion", S),
    ("Unit", S),
    ("ResourceLocation", S),
    ("ConsumedService", S),
    ("ResourceGroup", S),
    ("ResourceURI", S),
    ("ChargeType", S),
    ("UnitPrice", D),
    ("Quantity", D),
    ("UnitType", S),
    ("BillingPreTaxTotal", D),
    ("BillingCurrency", S),
    ("PricingPreTaxTotal", D),
    ("PricingCurrency", S),
    ("ServiceInfo1", S),
    ("ServiceInfo2", S),
    ("Tags", J),
    ("AdditionalInfo", J),
    ("EffectiveUnitPrice", D),
    ("PCToBCExchangeRate", D),
    ("PCToBCExchangeRateDate", T),
    ("EntitlementId", S),
    ("EntitlementDescription", S),
    ("PartnerEarnedCreditPercentage", D),
    ("CreditPercentage", D),
    ("CreditType", S),
    ("BenefitOrderId", S),
    ("BenefitId", S),
    ("BenefitType", S),
)


# The JSON schema of a nullable column of each kind. An exact decimal is a string with
# ``x-singer.decimal``, as SQL targets load it; JSON text is a string.
_SCHEMAS: dict[Kind, dict[str, Any]] = {
    Kind.STRING: {"type": ["string", "null"]},
    Kind.JSON_TEXT: {"type": ["string", "null"]},
    Kind.DATETIME: {"type": ["string", "null"], "format": "date-time"},
    Kind.DECIMAL: {
        "type": ["string", "null"],
        "format": "x-singer.decimal",
        "precision": DECIMAL_PRECISION,
        "scale": DECIMAL_SCALE,
    },
}


def column_schema(kind: Kind) -> dict[str, Any]:
    """The JSON schema of a nullable column of ``kind`` (a new dict each call)."""
    return dict(_SCHEMAS[kind])


def to_decimal_text(value: object) -> str:
    """Return the exact plain-notation text of a decimal value, checked against the schema.

    Raises:
        RecordValueError: Not a number (or numeric string), or beyond precision/scale.
    """
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        # Decimal() also reads Arabic-Indic and other Unicode digits; a money field may not.
        if not text.isascii() or len(text) > MAX_NUMBER_CHARS:
            raise RecordValueError(f"{value[:40]!r} is not a decimal number")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise RecordValueError(f"{value[:40]!r} is not a decimal number") from None
    else:
        raise RecordValueError(
            f"{type(value).__name__} {str(value)[:40]!r} is not a decimal number"
        )
    if not number.is_finite():
        raise RecordValueError(f"{value!r} is not a finite decimal number")
    exponent = number.as_tuple().exponent
    if number.adjusted() >= _MAX_INTEGER_DIGITS:
        msg = f"{number:.6e} has more than {_MAX_INTEGER_DIGITS} integer digits"
        raise RecordValueError(msg)
    if isinstance(exponent, int) and exponent < -DECIMAL_SCALE:
        try:
            rounded = number.quantize(_SCALE_QUANTUM, context=_CONTEXT)
        except InvalidOperation:
            rounded = Decimal(0)  # far too many fraction digits: refused just below
        if rounded != number:
            msg = f"{number} has more than {DECIMAL_SCALE} fraction digits; refusing to round"
            raise RecordValueError(msg)
        number = rounded
    return format(number, "f")


_US_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP]M)?)?$"
)


# ISO 8601 as Microsoft writes it: a date, optionally a time (seconds optional, any number of
# fraction digits after them: Graph and Partner Center write 7) and ``Z`` or an offset.
_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](\d{2}:\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-]\d{2})(?::?(\d{2}))?)?)?",
    re.ASCII,  # digits are 0-9 only
)


def parse_iso_datetime(text: str) -> datetime:
    """An ISO 8601 date or timestamp (see ``_ISO``), alike on every Python the package claims.

    ``datetime.fromisoformat`` reads ``Z`` and 7 fraction digits only from 3.11 on: the text
    is rewritten into the form every version reads (6 digits, the 7th dropped; ``+00:00``).

    Raises:
        ValueError: The text is not such a date or timestamp, or not a valid one.
    """
    match = _ISO.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not an ISO 8601 date or timestamp")
    day, clock, second, fraction, zulu, offset_hours, offset_minutes = match.groups()
    if clock is None:
        return datetime.fromisoformat(day)
    iso = f"{day}T{clock}:{second or '00'}"
    if fraction:
        iso += "." + fraction[:6].ljust(6, "0")
    if zulu:
        iso += "+00:00"
    elif offset_hours:
        iso += f"{offset_hours}:{offset_minutes or '00'}"
    return datetime.fromisoformat(iso)


@functools.lru_cache(maxsize=8192)
def to_datetime_text(value: str) -> str:
    """Normalise a date or timestamp to ISO 8601 in UTC; naive values are taken as UTC.

    Accepts ISO 8601 with or without ``Z`` or an offset (up to 7 fraction digits, as Graph
    writes them; the 7th is dropped) and the portal's ``M/d/yyyy [h:mm[:ss] AM]`` form.

    Raises:
        RecordValueError: The text is not a date.
    """
    text = value.strip()
    try:
        parsed = parse_iso_datetime(text)
    except ValueError:
        match = _US_DATE.match(text)
        if not match:
            raise RecordValueError(f"{value[:40]!r} is not a date or timestamp") from None
        month, day, year, hour, minute, second, half = match.groups()
        hours = int(hour or 0) % 12 + (12 if half == "PM" else 0) if half else int(hour or 0)
        try:
            parsed = datetime(
                int(year),
                int(month),
                int(day),
                hours,
                int(minute or 0),
                int(second or 0),
                tzinfo=timezone.utc,
            )
        except ValueError:
            raise RecordValueError(f"{value[:40]!r} is not a valid date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc).isoformat()
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise RecordValueError(f"{value[:40]!r} is out of range once converted to UTC") from None


@dataclass(frozen=True)
class Field:
    """One schema column and the source key it comes from."""

    source: str
    column: str
    kind: Kind


_KIND_ORDER = (Kind.DECIMAL, Kind.DATETIME, Kind.JSON_TEXT, Kind.STRING)


class FieldSet:
    """A dataset's fields, grouped by kind: money, dates, JSON text, then plain strings.

    The grouping lets the codec type each group of a line with one slice operation.
    """

    def __init__(self, table: tuple[tuple[str, Kind], ...]) -> None:
        fields = [Field(source, snake_case(source), kind) for source, kind in table]
        self.fields = tuple(sorted(fields, key=lambda f: _KIND_ORDER.index(f.kind)))

    def schema_properties(self) -> dict[str, dict[str, Any]]:
        """The JSON schema of the data columns, plus the column for unknown keys."""
        properties = {f.column: column_schema(f.kind) for f in self.fields}
        properties[EXTRA_FIELDS_COLUMN] = {"type": ["object", "null"], "additionalProperties": True}
        return properties


# Invoice reconciliation line items (reference §6.3), billed and unbilled exports alike.
RECONCILIATION_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("PartnerId", S),
    ("CustomerId", S),
    ("CustomerName", S),
    ("CustomerDomainName", S),
    ("CustomerCountry", S),
    ("InvoiceNumber", S),
    ("MpnId", S),
    ("Tier2MpnId", S),
    ("OrderId", S),
    ("OrderDate", T),
    ("ProductId", S),
    ("SkuId", S),
    ("AvailabilityId", S),
    ("SkuName", S),
    ("ProductName", S),
    ("ChargeType", S),
    ("UnitPrice", D),
    ("Quantity", D),
    ("Subtotal", D),
    ("TaxTotal", D),
    ("Total", D),
    ("Currency", S),
    ("PriceAdjustmentDescription", J),
    *_PUBLISHER_AND_SUBSCRIPTION,
    ("TermAndBillingCycle", S),
    ("EffectiveUnitPrice", D),
    ("UnitType", S),
    ("AlternateId", S),
    ("BillableQuantity", D),
    ("BillingFrequency", S),
    ("PricingCurrency", S),
    ("PCToBCExchangeRate", D),
    ("PCToBCExchangeRateDate", T),
    ("MeterDescription", S),
    ("ReservationOrderId", S),
    ("CreditReasonCode", S),
    ("SubscriptionStartDate", T),
    ("SubscriptionEndDate", T),
    ("ReferenceId", S),
    ("ProductQualifiers", J),
    ("PromotionId", S),
    ("ProductCategory", S),
)

USAGE = FieldSet(USAGE_FIELDS)
RECONCILIATION = FieldSet(RECONCILIATION_FIELDS)
