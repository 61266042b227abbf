"""Benchmark data that looks like real exports rather than the sandbox's own.

Real exports differ from the documented field list (issue 13): Microsoft adds columns without
notice, Spark's JSON writer omits null keys, key casing changes between blobs, money arrives as
a JSON string now and then, ``UsageDate`` comes with and without ``Z``, and amounts carry 12-18
significant digits. Each profile rewrites the sandbox's lines (same seed, same line count) with
that variance; only the share of lines that carry unknown keys differs between them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator

_DECODE = msgspec.json.Decoder(float_hook=Decimal)
_ENCODE = msgspec.json.Encoder(decimal_format="number")

# Keys Spark leaves out when they are null (any of them, independently, line by line).
OPTIONAL = (
    "Tier2MpnId",
    "MpnId",
    "PublisherId",
    "ServiceInfo1",
    "ServiceInfo2",
    "Tags",
    "AdditionalInfo",
    "CreditType",
    "CustomerDomainName",
    "EntitlementDescription",
    "ResourceGroup",
)
# The other spelling of a key, chosen per blob (Microsoft's sources disagree on casing).
CASINGS = (("ResourceURI", "ResourceUri"), ("PCToBCExchangeRate", "PcToBcExchangeRate"))
MONEY = ("UnitPrice", "Quantity", "BillingPreTaxTotal", "PricingPreTaxTotal", "EffectiveUnitPrice")
AS_STRING = ("UnitPrice", "EffectiveUnitPrice", "BillingPreTaxTotal")
DATES = ("ChargeStartDate", "ChargeEndDate", "UsageDate", "PCToBCExchangeRateDate")
UNKNOWN_AFTER = "ChargeType"  # new columns appear in the middle, where the schema puts them


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _unknown_columns(rng: random.Random, quantity: object) -> dict[str, Any]:
    """Columns the schema does not know, of the types Microsoft's additions have."""
    return {
        "ProductOrderId": _guid(rng),
        "BillingFrequency": "Monthly" if rng.random() < 0.5 else None,
        "RoundedUsageQuantity": quantity,
        "IsPartnerEarnedCreditEligible": rng.random() < 0.7,
    }


def _digits(rng: random.Random) -> Decimal:
    """A positive amount of 12 to 18 significant digits, 6 to 14 of them after the point."""
    digits = rng.randrange(12, 19)
    scale = rng.randrange(6, min(digits, 14) + 1)
    return Decimal(rng.randrange(10 ** (digits - 1), 10**digits)).scaleb(-scale)


@dataclass(frozen=True)
class Profile:
    """How a profile varies the sandbox's lines."""

    name: str
    unknown_share: float  # share of lines that carry keys the schema does not know
    omit: float = 0.3  # chance that each optional key is left out of a line
    as_string: float = 0.2  # chance that a line's money fields in AS_STRING are JSON strings

    def rewrite(self, lines: Iterator[bytes], blob: int, seed: int) -> Iterator[bytes]:
        """The lines of blob number ``blob``, varied."""
        rng = random.Random(seed * 1000 + blob)
        casing = dict(CASINGS) if blob % 2 else {}
        for line in lines:
            source = _DECODE.decode(line)
            for key in MONEY:
                source[key] = _digits(rng)
            if rng.random() < 0.5:
                for key in DATES:
                    source[key] = source[key].rstrip("Z")
            if rng.random() < self.as_string:
                for key in AS_STRING:
                    source[key] = str(source[key])
            unknown = (
                _unknown_columns(rng, source["Quantity"])
                if rng.random() < self.unknown_share
                else {}
            )
            if unknown and rng.random() < 0.5:
                unknown.pop("BillingFrequency")
            out: dict[str, Any] = {}
            for key, value in source.items():
                if key in OPTIONAL and rng.random() < self.omit:
                    continue
                out[casing.get(key, key)] = value
                if key == UNKNOWN_AFTER:
                    out.update(unknown)
            yield _ENCODE.encode(out)


PROFILES = {
    "unknown20": Profile("unknown20", unknown_share=0.2),
    "unknown100": Profile("unknown100", unknown_share=1.0),
}
