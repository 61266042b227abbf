"""Property-based tests: whatever a line or blob holds, the result is typed or a declared error."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.profiles import PROFILES
from tap_partner_billing.blobs.lines import iter_line_blocks
from tap_partner_billing.errors import BlobDataError, RecordValueError, ResourceLimitError
from tap_partner_billing.records.decode import LineCodec
from tap_partner_billing.records.fields import Kind
from tap_partner_billing.records.rows import (
    ENCODER,
    FIELD_SETS,
    LineBlock,
    RowLayout,
    encode_block,
    rows_of,
)
from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines
from tap_partner_billing.streams.export_stream import ExportStream
from tap_partner_billing.streams.usage import BilledReconciliationStream, BilledUsageStream

if TYPE_CHECKING:
    from pathlib import Path

DECLARED = (BlobDataError, RecordValueError)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["12.50", "1e5", "-0.000001", "2026-09-01T00:00:00Z", "9/14/2026", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def _layout(stream: type[ExportStream]) -> RowLayout:
    return RowLayout.build(stream.dataset, tuple(stream.declared_schema()["properties"]))


LAYOUTS = {
    "usage": _layout(BilledUsageStream),
    "reconciliation": _layout(BilledReconciliationStream),
}


def _lines(dataset: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects whose keys are known fields (any casing) or unknown, with any JSON values."""
    names = [f.source for f in FIELD_SETS[dataset].fields]
    key = st.sampled_from(names) | st.sampled_from(names).map(str.upper) | st.text(max_size=10)
    return st.dictionaries(key, json_values, max_size=12)


def _check_row(dataset: str, row: list[Any]) -> None:
    """A typed row: decimals are exact decimal text, dates ISO text, every key present."""
    layout = LAYOUTS[dataset]
    assert len(row) == len(layout.keys)
    for field in FIELD_SETS[dataset].fields:
        value = layout.value(row, field.column)
        if value is None:
            continue
        assert isinstance(value, str), (field.column, value)
        if field.kind is Kind.DECIMAL:
            assert Decimal(value).is_finite()
        elif field.kind is Kind.DATETIME:
            assert value[4] == "-"
            assert "T" in value


def _rows_or_declared_error(dataset: str, line: bytes) -> list[list[Any]] | None:
    layout = LAYOUTS[dataset]
    block = LineBlock("fuzz, blob b", layout, layout.template({}), [line], 1, 0)
    refused: Exception | None = None
    try:
        rows = list(rows_of(block))
        encode_block(block, b"", b"\n")
    except DECLARED as err:
        refused = err
    if refused is not None:
        assert "fuzz, blob b, line 1" in str(refused)  # names the blob and the line
        return None
    return rows


@FUZZ
@given(dataset=st.sampled_from(["usage", "reconciliation"]), data=st.data())
def test_any_object_is_typed_or_refused_with_the_declared_error(
    dataset: str, data: st.DataObject
) -> None:
    line = json.dumps(data.draw(_lines(dataset))).encode()
    rows = _rows_or_declared_error(dataset, line)
    if rows is not None:
        assert len(rows) == 1  # one line, one record
        _check_row(dataset, rows[0])


@FUZZ
@given(value=json_values)
def test_any_json_value_as_a_line(value: Any) -> None:
    rows = _rows_or_declared_error("usage", json.dumps(value).encode())
    if rows is not None:
        assert isinstance(value, dict)
        _check_row("usage", rows[0])


@FUZZ
@given(line=st.binary(max_size=200))
def test_any_bytes_as_a_line(line: bytes) -> None:
    rows = _rows_or_declared_error("usage", line)
    if rows is not None:
        _check_row("usage", rows[0])


@FUZZ
@given(payload=st.binary(max_size=300), compress=st.booleans(), cut=st.integers(0, 400))
def test_any_blob_bytes_give_lines_or_a_blob_error(
    tmp_path_factory: Any,
    payload: bytes,
    compress: bool,
    cut: int,
) -> None:
    whole = gzip.compress(payload, mtime=0)
    data = whole[:cut] if compress else payload
    path: Path = tmp_path_factory.mktemp("blob") / "b.json.gz"
    path.write_bytes(data)
    refused: BlobDataError | None = None
    try:
        lines = [line for block in iter_line_blocks(path, "fuzz, blob b") for line in block]
    except BlobDataError as err:
        refused = err
    if refused is not None:
        assert "fuzz, blob b" in str(refused)
        return
    if not data:
        assert lines == []  # a zero-byte blob is an empty one
        return
    assert data == whole, "only complete gzip data may give lines"
    *expected, tail = payload.split(b"\n")
    assert lines == expected + ([tail] if tail.strip() else [])


# Route equivalence of the codec: a codec that has learned from earlier lines (other
# spellings, unknown keys, key order) gives each line exactly what a fresh codec's dict path
# gives it — the values, the unknown keys (sorted), or the same declared error.
UNKNOWN_POOL = ["ProductOrderId", "RoundedUsageQuantity", "NewFlag", "Extra Key", 'Quo"te']
money_texts = st.sampled_from(["12.50", "-0.000001", "1e5", "123456789012.345678", "x"])
line_values = json_values | money_texts | st.decimals(allow_nan=False, places=8).map(str)


def _real_lines(dataset: str) -> st.SearchStrategy[list[bytes]]:
    """Runs of lines like real exports, and odder.

    Known keys in any casing, a few recurring unknown keys, keys omitted, numbers as strings,
    compact or spaced JSON.
    """
    names = [f.source for f in FIELD_SETS[dataset].fields]
    key = (
        st.sampled_from(names)
        | st.sampled_from(names).map(str.upper)
        | st.sampled_from(names).map(str.lower)
        | st.sampled_from(UNKNOWN_POOL)
    )
    line = st.tuples(st.dictionaries(key, line_values, max_size=14), st.booleans()).map(
        lambda pair: json.dumps(pair[0], separators=(",", ":") if pair[1] else None).encode()
    )
    return st.lists(line, min_size=1, max_size=12)


def _outcome(codec: LineCodec, line: bytes) -> tuple[str, bytes]:
    try:
        values, extra = codec.values(line)
    except (*DECLARED, ResourceLimitError) as err:
        return type(err).__name__, str(err).encode()
    assert all(not isinstance(v, msgspec.Raw) for v in values)
    return "ok", ENCODER.encode([values, extra])


def _assert_like_fresh_codecs(dataset: str, lines: list[bytes]) -> LineCodec:
    learned = LineCodec(FIELD_SETS[dataset])
    for number, line in enumerate(lines):
        expected = _outcome(LineCodec(FIELD_SETS[dataset]), line)
        assert _outcome(learned, line) == expected, (number, line)
    return learned


@FUZZ
@given(dataset=st.sampled_from(["usage", "reconciliation"]), data=st.data())
def test_a_learned_codec_types_every_line_as_the_dict_path_does(
    dataset: str, data: st.DataObject
) -> None:
    lines = data.draw(_real_lines(dataset))
    _assert_like_fresh_codecs(dataset, lines + lines)  # the second time round, all learned


@pytest.mark.contract  # the fast path's checks (regular expressions) on every claimed Python
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_real_export_profiles_decode_on_the_fast_path_as_the_dict_path_does(
    profile: str,
) -> None:
    lines: list[bytes] = []
    for blob in range(3):  # blob 1 has the other casings
        source = iter_usage_lines(
            LineSpec(blob, "202609", "G000000001", "USD", "full"),
            300,
            customers=5,
        )
        lines += PROFILES[profile].rewrite(source, blob, 7)
    assert any(b'"ProductOrderId"' in line for line in lines)
    codec = _assert_like_fresh_codecs("usage", lines)
    # The dict path only for lines that teach the Struct something: the first line, the first
    # with unknown keys, the first of a blob in the other casing, a new unknown key ...
    assert codec.slow_lines <= 8, codec.slow_lines


def test_an_odd_line_does_not_slow_the_lines_after_it() -> None:
    codec = LineCodec(FIELD_SETS["usage"])
    good = b'{"CustomerId":"c","NewColumn":"x","UnitPrice":"1.5","UsageDate":"2026-09-01"}'
    odd = b'{"CustomerId":7,"NewColumn":{"a":[1,2.50]},"UnitPrice":1.5}'
    for line in (good, odd, good, odd, good, good):
        codec.values(line)
    assert codec.slow_lines == 3  # the first line, and the odd one each time (not the good ones)
    values, extra = codec.values(good)
    assert extra == {"NewColumn": "x"}
    values, extra = codec.values(odd)
    assert extra == {"NewColumn": {"a": [1, "2.50"]}}
    assert values[codec.columns.index("customer_id")] == "7"


def test_unknown_keys_come_out_sorted_whatever_order_a_line_has_them_in() -> None:
    codec = LineCodec(FIELD_SETS["usage"])
    first = b'{"Zeta":1,"CustomerId":"c","Alpha":"a","Mid":[1]}'
    second = b'{"Mid":[1],"Alpha":"a","CustomerId":"c","Zeta":1}'
    extras = [codec.values(line)[1] for line in (first, second, first, second)]
    assert codec.slow_lines == 1  # the later lines, either order, on the fast path
    for extra in extras:
        assert extra is not None
        assert list(extra) == ["Alpha", "Mid", "Zeta"]
    assert ENCODER.encode(extras[0]) == ENCODER.encode(extras[1])
