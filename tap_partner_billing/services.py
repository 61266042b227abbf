"""Builds the clients a sync needs from the settings: token provider, export and blob clients."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from tap_partner_billing.auth import ClientCredentials, TokenProvider
from tap_partner_billing.blobs import BlobFetcher, new_blob_session
from tap_partner_billing.export import ExportClient

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


@dataclass
class Services:
    """The collaborators of the streams; tests swap clock and sleep."""

    tokens: TokenProvider
    exports: ExportClient
    blobs: BlobFetcher
    max_parallel_downloads: int
    clock: Callable[[], float]


def build_services(
    config: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
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
    graph_session = requests.Session()
    graph_session.headers["User-Agent"] = "tap-partner-billing"
    exports = ExportClient(
        graph_session,
        graph_url=config["graph_url"],
        token=tokens.token,
        clock=clock,
        sleep=sleep,
        poll_interval_seconds=float(config["poll_interval_seconds"]),
        poll_timeout_seconds=float(config["poll_timeout_seconds"]),
    )
    return Services(
        tokens=tokens,
        exports=exports,
        blobs=BlobFetcher(new_blob_session(), sleep=sleep),
        max_parallel_downloads=int(config["max_parallel_downloads"]),
        clock=clock,
    )
