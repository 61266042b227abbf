"""The peer a user would otherwise write: a plain Singer SDK tap over the same blobs.

``json.loads`` per line, a dict for the key renames, a schema of string / number / date-time
properties, the SDK's default type conformance and default message writer. It reads blob URLs
from its config (the benchmark hands it the manifest's URLs).
"""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from tap_partner_billing.records.fields import USAGE, Kind

if TYPE_CHECKING:
    from collections.abc import Iterator

_TYPES = {Kind.DECIMAL: th.NumberType, Kind.DATETIME: th.DateTimeType}
RENAMES = {f.source.lower(): f.column for f in USAGE.fields}


class UsageStream(Stream):
    """Usage lines from the configured blob URLs."""

    name = "billed_usage"
    schema = th.PropertiesList(
        *(th.Property(f.column, _TYPES.get(f.kind, th.StringType)) for f in USAGE.fields)
    ).to_dict()

    def get_records(self, context: object) -> Iterator[dict[str, Any]]:
        """Download each blob and yield its lines with the keys renamed."""
        for url in self.config["blob_urls"]:
            with requests.get(url, stream=True, timeout=300) as response:
                response.raise_for_status()
                for line in gzip.GzipFile(fileobj=response.raw):
                    yield {RENAMES.get(k.lower(), k): v for k, v in json.loads(line).items()}


class OrdinaryTap(Tap):
    """A tap with every SDK default."""

    name = "ordinary-usage-tap"
    config_jsonschema = th.PropertiesList(
        th.Property("blob_urls", th.ArrayType(th.StringType), required=True)
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream."""
        return [UsageStream(self)]


if __name__ == "__main__":
    OrdinaryTap.cli()
