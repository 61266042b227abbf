"""Builds the clients a sync needs from the settings: token provider, export and blob clients."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import requests

from tap_partner_billing.auth import ClientCredentials, TokenProvider
from tap_partner_billing.blobs import BlobFetcher, new_blob_session
from tap_partner_billing.export import ExportClient
from tap_partner_billing.invoices import PARTNER_CENTER_SCOPE, InvoiceClient

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


@dataclass
class Services:
    """The collaborators of the streams; tests swap clock and sleep."""

    tokens: TokenProvider
    partner_tokens: TokenProvider  # the Partner Center audience (the invoice list)
    exports: ExportClient
    blobs: BlobFetcher
    invoices: InvoiceClient
    max_parallel_downloads: int
    clock: Callable[[], float]
    calendar: Callable[[], datetime]  # today's date decides which billing months are recent
    sleep: Callable[[float], None] = time.sleep


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def api_session() -> requests.Session:
    """A session for one API: its own connection pool, and our User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = "tap-partner-billing"
    return session


def build_services(
    config: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    calendar: Callable[[], datetime] = _utc_now,
) -> Services:
    """Create the clients for ``config`` (already validated)."""
    credentials = ClientCredentials(
        tenant_id=config["tenant_id"],
        client_id=config["client_id"],
        client_secret=config.get("client_secret") or None,
        certificate_path=config.get("client_certificate_path") or None,
        certificate_thumbprint=config.get("client_certificate_thumbprint") or None,
    )
    tokens = TokenProvider(credentials, authority_url=config["authority_url"], sleep=sleep)
    exports = ExportClient(
        api_session(),
        graph_url=config["graph_url"],
        token=tokens.token,
        renew_token=tokens.renew,
        clock=clock,
        sleep=sleep,
        poll_interval_seconds=float(config["poll_interval_seconds"]),
        poll_timeout_seconds=float(config["poll_timeout_seconds"]),
    )
    # Partner Center wants a token of its own audience; a Graph token is refused there.
    partner_tokens = TokenProvider(
        credentials, authority_url=config["authority_url"], scope=PARTNER_CENTER_SCOPE, sleep=sleep
    )
    invoices = InvoiceClient(
        api_session(),
        base_url=config["partner_center_url"],
        token=partner_tokens.token,
        sleep=sleep,
    )
    return Services(
        tokens=tokens,
        partner_tokens=partner_tokens,
        exports=exports,
        blobs=BlobFetcher(new_blob_session(), sleep=sleep),
        invoices=invoices,
        max_parallel_downloads=int(config["max_parallel_downloads"]),
        clock=clock,
        calendar=calendar,
        sleep=sleep,
    )
