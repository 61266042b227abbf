"""Typing of line fields: decimals, dates, key casing, unknown keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tap_partner_billing.errors import BlobDataError, RecordValueError
from tap_partner_billing.records.decode import LineCodec
from tap_partner_billing.records.fields import USAGE, snake_case, to_datetime_text, to_decimal_text

# Field typing: a contract test on every Python the package claims (scripts/test-pythons).
pytestmark = pytest.mark.contract


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("123249.332438569024215"), "123249.332438569024215"),
        (Decimal("1E-10"), "0.0000000001"),
        (12, "12"),
        ("  -0.50 ", "-0.50"),
        (Decimal("1.500000000000000000000"), "1.500000000000000000"),
        ("0.000000000000000001", "0.000000000000000001"),
    ],
)
def test_decimals_are_exact(value: object, text: str) -> None:
    assert to_decimal_text(value) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "not a decimal"),
        (Decimal("0.0000000000000000001"), "more than 18 fraction digits"),
        (Decimal("1e25"), "integer digits"),
        ("NaN", "finite"),
        (True, "not a decimal"),
        (1.5, "not a decimal"),
    ],
)
def test_bad_decimals_are_refused(value: object, message: str) -> None:
    with pytest.raises(RecordValueError, match=message):
        to_decimal_text(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2023-03-09T08:12:53", "2023-03-09T08:12:53+00:00"),
        ("2023-03-09T08:37:48.5046691Z", "2023-03-09T08:37:48.504669+00:00"),
        ("2024-10-08T02:57:36+02:00", "2024-10-08T00:57:36+00:00"),
        ("2024-10-08", "2024-10-08T00:00:00+00:00"),
        ("10/8/2024", "2024-10-08T00:00:00+00:00"),
        ("10/8/2024 1:05:09 PM", "2024-10-08T13:05:09+00:00"),
        # Partner Center's documented invoiceDate: 7 fraction digits and Z (3.10's
        # datetime.fromisoformat reads neither; the tap must, on every claimed Python).
        ("2018-02-08T18:44:37.5381456Z", "2018-02-08T18:44:37.538145+00:00"),
        ("2018-02-08T18:44:37.5Z", "2018-02-08T18:44:37.500000+00:00"),
        ("2018-02-08 18:44:37,25+0100", "2018-02-08T17:44:37.250000+00:00"),
        ("2018-02-08T18:44-05", "2018-02-08T23:44:00+00:00"),
        ("2018-02-08t18:44:37z", "2018-02-08T18:44:37+00:00"),
    ],
)
def test_dates_parse_leniently(value: str, text: str) -> None:
    assert to_datetime_text(value) == text


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2018-02-08T18",
        "2018-02-08T18:44:37.Z",
        "2018-02-08Z",
        "20180208",
        "٢٠١٨-02-08",
    ],
)
def test_unparseable_date(value: str) -> None:
    with pytest.raises(RecordValueError, match="not a date"):
        to_datetime_text(value)


def test_an_impossible_date_is_refused() -> None:
    with pytest.raises(RecordValueError, match="not a date"):
        to_datetime_text("2018-02-30T18:44:37Z")


def test_snake_case_names() -> None:
    assert snake_case("PCToBCExchangeRate") == "pc_to_bc_exchange_rate"
    assert snake_case("ResourceURI") == "resource_uri"
    assert snake_case("BenefitOrderID") == "benefit_order_id"
    assert snake_case("Tier2MpnId") == "tier2_mpn_id"


def record(line: str) -> dict[str, Any]:
    codec = LineCodec(USAGE)
    values, extra = codec.values(line.encode())
    return {
        **{c: v for c, v in zip(codec.columns, values, strict=True) if v is not None},
        "_extra": extra,
    }


def test_numbers_are_exact_text() -> None:
    got = record(
        '{"UnitPrice": 0.100000000000000005, "Quantity": 12, "BillingPreTaxTotal": "3.50"}'
    )
    assert got["unit_price"] == "0.100000000000000005"  # 18 fraction digits, float would say 0.1
    assert got["quantity"] == "12"
    assert got["billing_pre_tax_total"] == "3.50"


def test_exponent_and_trailing_zeros_normalised() -> None:
    got = record('{"UnitPrice": 1e-12, "Quantity": 1.500000000000000000000}')
    assert got["unit_price"] == "0.000000000001"
    assert got["quantity"] == "1.500000000000000000"


def test_keys_case_insensitive_and_unknown_kept() -> None:
    codec = LineCodec(USAGE)
    lines = [
        '{"BenefitOrderID": "x", "billingpretaxtotal": 1.25, "NewField": 2.50, "Tags": {"k": 1}}',
        '{"BenefitOrderId": "y"}',
        '{"BenefitOrderID": "z", "BillingPreTaxTotal": 3}',
    ]
    out = []
    for line in lines:
        values, extra = codec.values(line.encode())
        out.append((dict(zip(codec.columns, values, strict=True)), extra))
    (a, a_extra), (b, _), (c, _) = out
    assert (a["benefit_order_id"], b["benefit_order_id"], c["benefit_order_id"]) == ("x", "y", "z")
    assert a["billing_pre_tax_total"] == "1.25"
    assert a_extra == {"NewField": "2.50"}
    assert a["tags"] == '{"k": 1}'
    assert c["billing_pre_tax_total"] == "3"


def test_a_number_in_a_string_column_becomes_its_text() -> None:
    assert record('{"MpnId": 1234567, "AdditionalInfo": "{\\"a\\": 1}"}')["mpn_id"] == "1234567"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"UnitPrice": "cheap"}', "field UnitPrice: 'cheap' is not a decimal"),
        (
            '{"UnitPrice": 0.1234567890123456789}',
            "field UnitPrice: 0.1234567890123456789 has more than 18",
        ),
        ('{"UsageDate": "yesterday"}', "field UsageDate: 'yesterday' is not a date"),
        ('{"Quantity": true}', "field Quantity"),
        ("[1, 2]", "a list, not a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_values_name_the_source_key(line: str, message: str) -> None:
    with pytest.raises((RecordValueError, BlobDataError), match=message):
        LineCodec(USAGE).values(line.encode())


def test_nulls_and_missing_keys_are_none() -> None:
    codec = LineCodec(USAGE)
    values, extra = codec.values(b'{"CustomerName": null}')
    assert values == [None] * len(codec.columns)
    assert extra is None


def test_schema_declares_decimals_for_sql_targets() -> None:
    properties = USAGE.schema_properties()
    assert properties["billing_pre_tax_total"] == {
        "type": ["string", "null"],
        "format": "x-singer.decimal",
        "precision": 38,
        "scale": 18,
    }
    assert properties["usage_date"]["format"] == "date-time"
    assert len([p for p in properties if p != "_extra_fields"]) == 55
