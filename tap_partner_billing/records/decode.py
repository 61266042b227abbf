"""Decoding one JSON line into typed column values, exactly and fast.

The hot path decodes a line straight into a ``msgspec`` Struct whose fields are the schema's
columns: keys are matched in C, strings checked as strings, and money and JSON-text fields
captured as ``msgspec.Raw`` — the exact bytes of the JSON value, so a number never passes
through float. Lines the Struct cannot take (a key not seen before, a number where a string
belongs) go through a slower dict path that produces the same values, and teaches the Struct
what it saw: each other spelling of a key (``BenefitOrderID`` beside ``BenefitOrderId``) and
each unknown key becomes one more Struct field (unknown ones captured raw, decoded for
``_extra_fields`` as the dict path does, keys sorted), and the fields follow the order of that
line's keys — msgspec looks for a key's field from the one after the last match, so a Struct
in the line's order finds each key at the first try. A column Microsoft adds stays on the fast path.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import TYPE_CHECKING, Any

import msgspec

from tap_partner_billing.errors import BlobDataError, RecordValueError, ResourceLimitError
from tap_partner_billing.records.fields import Kind, to_datetime_text, to_decimal_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_partner_billing.records.fields import Field, FieldSet

MAX_SPELLINGS = 32
MAX_LEARNED_KEYS = 64  # unknown keys the fast path learns; more stay on the dict path
MAX_NESTING_DEPTH = 64  # of a value kept in _extra_fields (targets store it as JSON/VARIANT)
# Unknown keys become Python objects (tens of times their JSON size): bounded per line, so a
# line within max_line_bytes cannot take memory past the tap's budget.
MAX_EXTRA_BYTES = 1 << 20
MAX_KEYS = 4096
_LONG_LINE_BYTES = 1 << 16
# Plain decimal text that fits DECIMAL(38, 18) as it stands; anything else goes the long way.
# The fraction is an alternation rather than an optional group, and a line's money fields are
# checked by one pattern of exactly their number (no repeated group): that matches as fast as
# possessive quantifiers did (3.11+ only), on every Python the package claims.
_NUMBER = r"-?[0-9]{1,20}(?:\.[0-9]{1,18}|)"
_PLAIN_DECIMAL = re.compile(_NUMBER).fullmatch


@functools.lru_cache(maxsize=8)
def _plain_decimals(count: int) -> Callable[[bytes], re.Match[bytes] | None]:
    """A check that bytes are ``count`` plain decimals joined by the unit separator (0x1F)."""
    return re.compile("\x1f".join([_NUMBER] * count).encode()).fullmatch


_RAW_OBJECT: msgspec.json.Decoder[dict[str, msgspec.Raw]] = msgspec.json.Decoder(
    dict[str, msgspec.Raw]
)
_EXACT: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=str)
_CONTAINERS = (dict, list)  # what _EXACT decodes a nested value to
# A Struct field cannot be named with a quote, a backslash or a control character.
_LEARNABLE = re.compile(r'[^"\\\x00-\x1f]+').fullmatch


def decimal_from_raw(raw: msgspec.Raw | None) -> str | None:
    """Exact decimal text from a JSON number or numeric string; ``None`` for null."""
    if raw is None:
        return None
    data = bytes(raw)
    if data[:1] == b'"':
        text = msgspec.json.decode(data)
    elif data == b"null":
        return None
    else:
        text = data.decode("ascii", "replace")
    return text if _PLAIN_DECIMAL(text) else to_decimal_text(text)


def json_text_from_raw(raw: msgspec.Raw | None) -> str | None:
    """JSON text kept as text: a JSON string as its value, anything else as its source text."""
    return None if raw is None else string_from_raw(raw)


def string_from_raw(raw: msgspec.Raw) -> str | None:
    """A string column: a JSON string as its value, a number or object as its JSON text."""
    data = bytes(raw)
    if data[:1] == b'"':
        return str(msgspec.json.decode(data))
    if data == b"null":
        return None
    return data.decode("utf-8")


def nesting_depth(value: object) -> int:
    """How deeply lists and objects nest in a decoded JSON value (a scalar is 0)."""
    depth, level = 0, [(value, 0)]
    while level:
        item, at = level.pop()
        if isinstance(item, dict | list):
            depth = max(depth, at + 1)
            level.extend(
                (child, at + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return depth


def _unknown_value(key: str, value: msgspec.Raw, bytes_so_far: int) -> object:
    """An unknown key's value, decoded for ``_extra_fields`` (numbers as exact text).

    Raises:
        ResourceLimitError: Too large (with the line's other unknown keys) or too deep.
        BlobDataError: A value msgspec refuses (an integer of thousands of digits).
    """
    if bytes_so_far > MAX_EXTRA_BYTES:
        raise ResourceLimitError(
            f"unknown keys hold more than {MAX_EXTRA_BYTES} bytes (at {key[:60]!r})"
        )
    try:
        decoded = _EXACT.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise BlobDataError(f"key {key[:60]!r}: {err}") from None
    if decoded.__class__ in _CONTAINERS and nesting_depth(decoded) > MAX_NESTING_DEPTH:
        msg = f"key {key[:60]!r} is nested deeper than {MAX_NESTING_DEPTH} levels"
        raise ResourceLimitError(msg)
    return decoded


def _decode_extras(pairs: list[tuple[str, msgspec.Raw]]) -> dict[str, Any]:
    """``_extra_fields`` from a line's unknown keys, given sorted by key.

    Sorted, not in the line's order: the same keys and values give the same object whichever
    order an export writes them in, and the fast path knows it without searching the line.
    The byte bound counts in that order too, so both paths stop at the same key.
    """
    extra, extra_bytes = {}, 0
    for key, value in pairs:
        extra_bytes += len(value)  # counted before decoding: the bound comes first
        extra[key] = _unknown_value(key, value, extra_bytes)
    return extra


def _span(fields: tuple[Field, ...], kind: Kind) -> slice:
    """The slice of ``fields`` that holds ``kind`` (they are grouped by kind)."""
    indexes = [i for i, f in enumerate(fields) if f.kind is kind]
    if indexes != list(range(indexes[0], indexes[0] + len(indexes))) if indexes else False:
        msg = f"fields of kind {kind.name} are not contiguous"
        raise ValueError(msg)
    return slice(indexes[0], indexes[-1] + 1) if indexes else slice(0, 0)


@functools.lru_cache(maxsize=4096)
def _dates_text(raw: tuple[str | None, ...]) -> tuple[str | None, ...]:
    # A line's dates repeat from line to line (the month's days): one cache hit for all.
    return tuple(None if value is None else to_datetime_text(value) for value in raw)


class LineCodec:
    """Turns raw JSON lines of one dataset into lists of typed column values."""

    def __init__(self, field_set: FieldSet) -> None:
        self.fields: tuple[Field, ...] = field_set.fields
        self.columns = tuple(f.column for f in self.fields)
        self._width = len(self.fields)
        self._by_lower = {f.source.lower(): (i, f) for i, f in enumerate(self.fields)}
        self._money = _span(self.fields, Kind.DECIMAL)
        self._dates = _span(self.fields, Kind.DATETIME)
        self._json = _span(self.fields, Kind.JSON_TEXT)
        self._plain_money = _plain_decimals(self._money.stop - self._money.start)
        self._aliases: dict[str, int] = {}  # other spellings of a source key → column index
        self._unknown: set[str] = set()  # learned unknown keys
        self._order: tuple[str, ...] = ()  # key order of the line the Struct was built from
        # JSON-text fields seen holding something else than a string are captured raw;
        # the others decode straight to str.
        self._raw_json: set[int] = set()
        self._pick: Any = None  # Struct tuple → the columns' slots, in column order
        self._spelled: tuple[
            tuple[int, object, tuple[int, ...]], ...
        ] = ()  # (column, absent, slots)
        self._unknown_at: tuple[tuple[int, str], ...] = ()
        self._decoder: msgspec.json.Decoder[Any] | None = None  # built from the first line
        self.slow_lines = 0  # lines that took the dict path (tests and diagnostics)

    def _build_decoder(self) -> msgspec.json.Decoder[Any]:
        """One Struct field per column, other spelling and learned unknown key, in line order."""
        targets: dict[str, int | str] = {f.source: i for i, f in enumerate(self.fields)}
        targets.update(self._aliases)
        targets.update({key: key for key in self._unknown})
        names = [n for n in self._order if n in targets]
        placed = set(names)
        names += [n for n in targets if n not in placed]
        spelled = set(self._aliases.values())  # columns with more than one spelling
        slots: dict[int, list[int]] = {}
        specs: list[tuple[str, Any, Any]] = []
        unknown_at = []  # sorted by key below: the order of _extra_fields
        for slot, name in enumerate(names):
            target = targets[name]
            if isinstance(target, str):
                # Captured raw (UNSET: absent), then decoded by the dict path's own function,
                # after its byte bound: decoding it here in C would build the objects first.
                unknown_at.append((slot, target))
                specs.append((f"f{slot}", msgspec.Raw | msgspec.UnsetType, msgspec.UNSET))
                continue
            slots.setdefault(target, []).append(slot)
            kind = self.fields[target].kind
            if kind is Kind.DECIMAL or (kind is Kind.JSON_TEXT and target in self._raw_json):
                specs.append((f"f{slot}", msgspec.Raw, None))  # a null is Raw(b"null")
            elif target in spelled:  # UNSET: absent (a null of another spelling still counts)
                specs.append((f"f{slot}", str | None | msgspec.UnsetType, msgspec.UNSET))
            else:
                specs.append((f"f{slot}", str | None, None))
        self._pick = operator.itemgetter(*(slots[i][0] for i in range(self._width)))
        self._spelled = tuple(
            (i, None if specs[slots[i][0]][2] is None else msgspec.UNSET, tuple(slots[i]))
            for i in sorted(spelled)
        )
        self._unknown_at = tuple(sorted(unknown_at, key=operator.itemgetter(1)))
        struct = msgspec.defstruct(
            "Line",
            specs,
            rename={f"f{slot}": name for slot, name in enumerate(names)},
            forbid_unknown_fields=True,
        )
        return msgspec.json.Decoder(struct, float_hook=str)

    def values(self, line: bytes) -> tuple[list[Any], dict[str, Any] | None]:
        """Typed values in ``columns`` order, and the unknown keys (or ``None``).

        Raises:
            BlobDataError: The line is not a JSON object.
            RecordValueError: A value does not fit its column (the message names the key).
            ResourceLimitError: Unknown keys too large or too deeply nested.
        """
        if self._decoder is None:
            return self._values_slowly(line)
        try:
            slots = msgspec.structs.astuple(self._decoder.decode(line))
        except (msgspec.ValidationError, RecursionError):
            return self._values_slowly(line)  # it says which error comes first
        except msgspec.DecodeError as err:
            raise BlobDataError(f"not valid JSON ({err})") from None
        values = list(self._pick(slots))
        for index, absent, spellings in self._spelled:
            value = absent
            for slot in spellings:
                found = slots[slot]
                if found is not absent:
                    if value is not absent:
                        return self._values_slowly(line)  # two spellings: the last one wins
                    value = found
            values[index] = None if value is absent else value
        extra = None
        if self._unknown_at:
            unset = msgspec.UNSET
            present = [(key, slots[s]) for s, key in self._unknown_at if slots[s] is not unset]
            if present:
                try:
                    extra = _decode_extras(present)
                except RecursionError:
                    return self._values_slowly(line)  # it names the error the same way
        self._type(values)
        return values, extra

    def _type(self, values: list[Any]) -> None:
        """Type the raw values in place (fields are grouped by kind, see ``FieldSet``)."""
        money, dates = self._money, self._dates
        raws = values[money]
        if raws and None not in raws:
            # The common case: every money field of the line checked in one go. A raw value
            # holds a quote only around a JSON string (one inside would be escaped, and a
            # backslash is not plain), so the quotes can go before the check.
            joined = b"\x1f".join(raws).replace(b'"', b"")
            if self._plain_money(joined):
                values[money] = joined.decode("ascii").split("\x1f")
                raws = []
        at = money.start
        try:
            for at in range(money.start, money.stop) if raws else ():
                values[at] = decimal_from_raw(values[at])
            at = dates.start
            try:
                values[dates] = _dates_text(tuple(values[dates]))
            except RecordValueError:
                for at in range(dates.start, dates.stop):  # find the field to name
                    if values[at] is not None:
                        to_datetime_text(values[at])
                raise
            for at in range(self._json.start, self._json.stop):
                if values[at] is not None and values[at].__class__ is not str:
                    values[at] = json_text_from_raw(values[at])
        except RecordValueError as err:
            raise RecordValueError(f"field {self.fields[at].source}: {err}") from None

    def _values_slowly(self, line: bytes) -> tuple[list[Any], dict[str, Any] | None]:
        self.slow_lines += 1
        try:
            return self._decode_slowly(line)
        except RecursionError:
            raise ResourceLimitError("JSON nested deeper than the decoder allows") from None

    def _decode_slowly(self, line: bytes) -> tuple[list[Any], dict[str, Any] | None]:
        if len(line) > _LONG_LINE_BYTES and line.count(b'":') > MAX_KEYS:
            raise ResourceLimitError(f"the line has more than {MAX_KEYS} keys")
        try:
            raw = _RAW_OBJECT.decode(line)
        except msgspec.ValidationError:
            # msgspec reports "not an object" before it has read the rest of the line.
            try:
                found_type = type(_EXACT.decode(line)).__name__
            except msgspec.DecodeError as err:
                raise BlobDataError(f"not valid JSON ({err})") from None
            raise BlobDataError(f"a {found_type}, not a JSON object") from None
        except msgspec.DecodeError as err:
            raise BlobDataError(f"not valid JSON ({err})") from None
        values: list[Any] = [None] * len(self.fields)
        spellings: dict[str, int] = {}
        raw_json: set[int] = set()
        unknown: list[tuple[str, msgspec.Raw]] = []
        for key, value in raw.items():
            found = self._by_lower.get(key.lower())
            if found is None:
                unknown.append((key, value))
                continue
            index, field = found
            spellings[key] = index
            if field.kind is Kind.DECIMAL:
                values[index] = value
            elif field.kind is Kind.JSON_TEXT:
                values[index] = value
                if bytes(value)[:1] not in {b'"', b"n"}:  # not a string, not null
                    raw_json.add(index)
            else:
                values[index] = string_from_raw(value)
        extra = _decode_extras(sorted(unknown, key=operator.itemgetter(0)))
        self._type(values)
        self._learn(tuple(raw), spellings, list(extra), raw_json)
        return values, extra or None

    def _learn(
        self,
        order: tuple[str, ...],
        spellings: dict[str, int],
        unknown: list[str],
        raw_json: set[int],
    ) -> None:
        """Teach the fast decoder this line's spellings, unknown keys and raw JSON-text fields.

        Learned only from a line that was typed without error; the Struct is rebuilt in this
        line's key order. Other spellings and unknown keys are capped (a flood of one-off keys
        stays on the dict path rather than growing the Struct without end).
        """
        new = {
            name: index
            for name, index in spellings.items()
            if name != self.fields[index].source and name not in self._aliases and _LEARNABLE(name)
        }
        if len(self._aliases) + len(new) > MAX_SPELLINGS:
            new = {}
        fresh = [key for key in unknown if key not in self._unknown and _LEARNABLE(key)]
        if len(self._unknown) + len(fresh) > MAX_LEARNED_KEYS:
            fresh = []
        if self._decoder is None or new or fresh or not raw_json <= self._raw_json:
            self._aliases.update(new)
            self._unknown.update(fresh)
            self._raw_json |= raw_json
            self._order = order
            self._decoder = self._build_decoder()
