"""Builds the clients a sync needs from the settings: token provider, export and blob clients."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_partner_billing.blobs.download import BlobFetcher, new_blob_session
from tap_partner_billing.blobs.lines import BlobLimits
from tap_partner_billing.blobs.spool import SpoolFolder
from tap_partner_billing.dates import utc_now
from tap_partner_billing.service.auth import GRAPH_SCOPE, ClientCredentials, TokenProvider
from tap_partner_billing.service.export import ExportClient
from tap_partner_billing.service.partner_center import PARTNER_CENTER_SCOPE, InvoiceClient

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime


@dataclass
class Services:
    """The collaborators of the streams; tests swap clock and sleep."""

    tokens: TokenProvider
    partner_tokens: TokenProvider  # the Partner Center audience (the invoice list)
    exports: ExportClient
    blobs: BlobFetcher
    invoices: InvoiceClient
    max_parallel_downloads: int
    limits: BlobLimits
    calendar: Callable[[], datetime]  # today's date decides which billing months are recent
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def build_services(
    config: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    calendar: Callable[[], datetime] = utc_now,
    spool_parent: str | None = None,
) -> Services:
    """Create the clients for ``config`` (already validated)."""
    credentials = ClientCredentials(
        tenant_id=config["tenant_id"],
        client_id=config["client_id"],
        client_secret=config.get("client_secret") or None,
        certificate_path=config.get("client_certificate_path") or None,
        certificate_thumbprint=config.get("client_certificate_thumbprint") or None,
    )
    tokens = TokenProvider(
        credentials, authority_url=config["authority_url"], scope=GRAPH_SCOPE, sleep=sleep
    )
    exports = ExportClient(
        graph_url=config["graph_url"],
        token=tokens.token,
        renew_token=tokens.renew,
        clock=clock,
        sleep=sleep,
    )
    # Partner Center wants a token of its own audience; a Graph token is refused there.
    partner_tokens = TokenProvider(
        credentials, authority_url=config["authority_url"], scope=PARTNER_CENTER_SCOPE, sleep=sleep
    )
    invoices = InvoiceClient(
        base_url=config["partner_center_url"],
        token=partner_tokens.token,
        sleep=sleep,
    )
    return Services(
        tokens=tokens,
        partner_tokens=partner_tokens,
        exports=exports,
        blobs=BlobFetcher(new_blob_session(), sleep=sleep, spool_folder=SpoolFolder(spool_parent)),
        invoices=invoices,
        max_parallel_downloads=int(config["max_parallel_downloads"]),
        limits=BlobLimits(
            max_line_bytes=int(config.get("max_line_bytes") or BlobLimits.max_line_bytes),
            max_inflation_ratio=int(
                config.get("max_inflation_ratio") or BlobLimits.max_inflation_ratio
            ),
        ),
        calendar=calendar,
        sleep=sleep,
        clock=clock,
    )
