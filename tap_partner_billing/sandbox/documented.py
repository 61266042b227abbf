"""The sandbox's documented mode: Microsoft's documented responses, served as written.

``microsoft/`` holds them, each with its page (see its README). In this mode the sandbox
answers the invoice list with the documented pages, chosen by the ``offset`` their next
links carry, and shapes its operations and manifests like the documented examples: the
example's body, in its key order and with its extra values, carrying the sandbox's own
ids, links, eTag, SAS and blobs, and the sandbox's times written the way the examples
write them (``createdDateTime`` without a zone, ``lastActionDateTime`` with 7 fraction
digits and ``Z``, a manifest's ``createdDateTime`` with 2).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

FOLDER = Path(__file__).parent / "microsoft"
# The documented list's next link asks for offset 2 (size 2).
INVOICE_PAGES = {"0": "partner_center_invoices.json", "2": "partner_center_invoices_offset2.json"}
# What the manifest takes from the sandbox; every other value is the example's.
_MANIFEST_LIVE = (
    "id",
    "eTag",
    "partnerTenantId",
    "rootDirectory",
    "sasToken",
    "blobCount",
    "blobs",
)
_LINK = "resourceLocation@odata.navigationLink"


def load(name: str) -> dict[str, Any]:
    """One documented response (numbers as exact decimals, as the service writes them)."""
    document: dict[str, Any] = json.loads(
        (FOLDER / name).read_text(encoding="utf-8"), parse_float=Decimal
    )
    return document


def invoice_page(query: str) -> dict[str, Any] | None:
    """The documented page for ``query`` (``size=2&offset=2``); None: no such page."""
    offset = parse_qs(query).get("offset", ["0"])[0]
    name = INVOICE_PAGES.get(offset)
    return None if name is None else dict(load(name))


def operation(body: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's operation answer in the shape of the documented example of its status."""
    status = str(body.get("status"))
    if status == "failed":
        template = load("operation_failed.json")
    elif status == "succeeded":
        linked = _LINK in body
        template = load(f"operation_succeeded_{'linked' if linked else 'inline'}.json")
    else:
        template = load("operation_running.json")
    shaped: dict[str, Any] = {key: body.get(key, value) for key, value in template.items()}
    shaped["status"] = status  # notStarted too, in the running example's shape
    if isinstance(shaped.get("resourceLocation"), dict):
        shaped["resourceLocation"] = manifest(shaped["resourceLocation"])
    moment = _moment(str(body["lastActionDateTime"]))
    shaped["createdDateTime"] = _moment(str(body["createdDateTime"])).strftime("%Y-%m-%dT%H:%M:%S")
    shaped["lastActionDateTime"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return shaped


def manifest(body: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's manifest in the shape of the documented example."""
    shaped: dict[str, Any] = dict(load("manifest.json"))
    shaped.update({key: body[key] for key in _MANIFEST_LIVE})
    created = _moment(str(body["createdDateTime"])).strftime("%Y-%m-%dT%H:%M:%S.%f")
    shaped["createdDateTime"] = created[:-4] + "Z"
    return shaped


def _moment(text: str) -> datetime:
    """A time the sandbox wrote (``iso_time``: milliseconds and ``Z``)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
