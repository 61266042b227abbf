"""Shared test helpers: a fake clock, a responses-based fake Graph, and an in-process tap run."""

from __future__ import annotations

import gzip
import io
import json
import re
import uuid
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import responses

from tap_partner_billing.streams.export_stream import ExportStream, start_exports_ahead
from tap_partner_billing.sync.services import build_services
from tap_partner_billing.tap import TapPartnerBilling

# Microsoft's documented responses (and one observed manifest); its README names each source.
DATA = Path(__file__).resolve().parents[1] / "tap_partner_billing" / "sandbox" / "microsoft"
LOGIN = "https://login.test"
GRAPH = "https://graph.test/v1.0"
BLOBS = "https://blobs.test"
SAS = "sv=2021-08-06&se=2099-01-01T00%3A00%3A00Z&sr=d&sp=rl&sig=SECRETSIGNATURE"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-graph-token"
PC_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-partner-center-token"
PARTNER_CENTER = "https://partner.test"
# Microsoft's scopes, spelled here (not taken from the tap): the token each one gets.
SCOPE_TOKENS = {
    "https://graph.microsoft.com/.default": TOKEN,
    "https://api.partnercenter.microsoft.com/.default": PC_TOKEN,
}
TODAY = datetime(2026, 11, 15, tzinfo=timezone.utc)  # the fixtures' months are around it


def load_json(name: str) -> Any:
    """A JSON fixture from the documented responses (``DATA``)."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def gz_lines(*lines: str) -> bytes:
    """Gzip JSON lines (given as text, so numbers stay exactly as written).

    The same bytes every time (``mtime=0``): test ids built from them must be equal in every
    pytest-xdist worker, or the run stops with "Different tests were collected".
    """
    return gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)


class FakeClock:
    """A monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def base_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "tenant_id": "contoso.test",
        "client_id": "client-1",
        "client_secret": "very-secret-value",
        "authority_url": LOGIN,
        "graph_url": GRAPH,
        "invoice_ids": [],
        "discover_invoices": False,
        "partner_center_url": PARTNER_CENTER,
        "billing_periods": ["current"],
        "currency_codes": ["USD"],
        "poll_interval_seconds": 5,
        "max_parallel_downloads": 2,
        # In-process: two worker processes per sync cost time where workers are not the
        # subject; tests/test_workers.py runs both routes (and proves them the same).
        "decode_workers": 1,
    }
    config.update(overrides)
    return config


@dataclass
class Export:
    """What the fake Graph serves for one partition."""

    blobs: dict[str, bytes]
    etag: str = "etag-1"
    month: str = "202609"
    statuses: list[str] = field(default_factory=lambda: ["notStarted", "running", "succeeded"])
    fail_code: str | None = None  # "5000" or another code: the operation fails
    linked: bool = False
    manifest_changes: dict[str, Any] = field(default_factory=dict)  # None deletes a key


def json_text(value: object) -> str:
    """``value`` as JSON, a :class:`Decimal` written as its number text (as services send money)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    return json.dumps(value)


# Marks the responses a fake service registers: exempt from "every registration is used".
FAKE_SERVICE_ROUTE = "_fake_service_route"


def unused_registrations(rsps: responses.RequestsMock) -> list[str]:
    """The test's own registrations no request used (a fake service's routes aside)."""
    return [
        f"{r.method} {r.url}"
        for r in rsps.registered()
        if not r.call_count and not getattr(r, FAKE_SERVICE_ROUTE, False)
    ]


def assert_registrations_used(rsps: responses.RequestsMock) -> None:
    """Fail when the test registered a response no request used (the ``rsps`` fixture's end)."""
    unused = unused_registrations(rsps)
    assert unused == [], f"registered, never requested: {unused}"


class FakeGraph:
    """Login, Graph and blob endpoints on ``responses``; every request is recorded."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps
        before = len(rsps.registered())
        self.exports: dict[str, Export] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.posts: list[dict[str, Any]] = []
        self.blob_gets: list[str] = []
        self.token_requests = 0
        self.retry_after: str | None = "3"
        rsps.add_callback(
            responses.GET,
            re.compile(rf"{LOGIN}/[^/]+/v2.0/.well-known/openid-configuration"),
            callback=self._openid,
        )
        rsps.add_callback(
            responses.POST, re.compile(rf"{LOGIN}/[^/]+/oauth2/v2.0/token"), callback=self._token
        )
        rsps.add_callback(
            responses.POST,
            re.compile(rf"{GRAPH}/reports/partners/billing/.+/export"),
            callback=self._export,
        )
        rsps.add_callback(
            responses.GET,
            re.compile(rf"{GRAPH}/reports/partners/billing/operations/.+"),
            callback=self._operation,
        )
        rsps.add_callback(
            responses.GET,
            re.compile(rf"{GRAPH}/reports/partners/billing/manifests/.+"),
            callback=self._manifest,
        )
        rsps.add_callback(responses.GET, re.compile(rf"{BLOBS}/.+"), callback=self._blob)
        rsps.add_callback(
            responses.GET, re.compile(rf"{PARTNER_CENTER}/v1/invoices.*"), callback=self._invoices
        )
        self.invoices: list[dict[str, Any]] = []  # Partner Center's invoice list
        self.invoice_list_requests = 0
        # A whole fake service: a test uses the endpoints its scenario needs, not all.
        for route in rsps.registered()[before:]:
            setattr(route, FAKE_SERVICE_ROUTE, True)

    # partitions are keyed by invoice id or "period/currency"
    def add(self, key: str, export: Export) -> None:
        self.exports[key] = export

    def _openid(self, request: Any) -> tuple[int, dict[str, str], str]:
        tenant = request.url.split("/")[3]
        base = f"{LOGIN}/{tenant}"
        return (
            200,
            {},
            json.dumps(
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                }
            ),
        )

    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.token_requests += 1
        scope = parse_qs(request.body).get("scope", [""])[0]
        token = SCOPE_TOKENS.get(scope)
        if token is None:  # Entra's answer to a scope it does not know
            error = {"error": "invalid_scope", "error_description": f"AADSTS70011: {scope!r}"}
            return 400, {}, json.dumps(error)
        return (
            200,
            {},
            json.dumps({"token_type": "Bearer", "expires_in": 3600, "access_token": token}),
        )

    def add_invoice(self, invoice_id: str, month: str, **fields: Any) -> None:
        """List an invoice of billing month ``month`` (YYYYMM) in Partner Center."""
        item = {
            "id": invoice_id,
            "invoiceDate": f"{month[:4]}-{month[4:]}-28T00:00:00Z",
            "billingPeriodStartDate": f"{month[:4]}-{month[4:]}-01T00:00:00Z",
            "billingPeriodEndDate": f"{month[:4]}-{month[4:]}-28T00:00:00Z",
            "totalCharges": Decimal("100.25"),
            "currencyCode": "USD",
            "documentType": "invoice",
            "amendments": [],
        }
        item.update(fields)
        self.invoices.append(item)

    def _invoices(self, request: Any) -> tuple[int, dict[str, str], str]:
        assert request.headers["Authorization"] == f"Bearer {PC_TOKEN}"
        self.invoice_list_requests += 1
        return 200, {}, json_text({"totalCount": len(self.invoices), "items": self.invoices})

    def _export(self, request: Any) -> tuple[int, dict[str, str], str]:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        body = json.loads(request.body)
        self.posts.append(body)
        key = body.get("invoiceId") or f"{body['billingPeriod']}/{body['currencyCode']}"
        if "/reconciliation/" in request.url:  # reconciliation data is added as "recon:<key>"
            key = f"recon:{key}"
            body["_dataset"] = "reconciliation"
        op_id = str(uuid.uuid4())
        self.operations[op_id] = {"key": key, "polls": 0}
        return 202, {"Location": f"{GRAPH}/reports/partners/billing/operations/{op_id}"}, ""

    def manifest_body(self, key: str, op_id: str) -> dict[str, Any]:
        export = self.exports[key]
        body = {
            "id": f"manifest-{op_id}",
            "eTag": export.etag,
            "createdDateTime": "2026-10-02T01:02:03Z",
            "schemaVersion": "2",
            "dataFormat": "compressedJSON",
            "rootDirectory": (
                f"{BLOBS}/c/v1/BillingMonth={export.month}/Key={key.replace('/', '-')}"
            ),
            "sasToken": SAS,
            "blobCount": len(export.blobs),
            "blobs": [{"name": name, "partitionValue": "default"} for name in export.blobs],
        }
        for name, value in export.manifest_changes.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return body

    def _operation(self, request: Any) -> tuple[int, dict[str, str], str]:
        op_id = request.url.rsplit("/", 1)[-1]
        op = self.operations.get(op_id)
        if op is None:
            return 404, {}, json.dumps({"error": {"code": "NotFound", "message": "gone"}})
        export = self.exports.get(op["key"])
        statuses = export.statuses if export else ["failed"]
        status = statuses[min(op["polls"], len(statuses) - 1)]
        if export and export.fail_code and status == "succeeded":
            status = "failed"
        op["polls"] += 1
        body: dict[str, Any] = {
            "id": op_id,
            "status": status,
            "createdDateTime": "2026-10-02T01:00:00",
        }
        headers = (
            {"Retry-After": self.retry_after}
            if status in {"notStarted", "running"} and self.retry_after
            else {}
        )
        if status.lower() in {"succeeded", "completed"} and export:
            if export.linked:
                body["resourceLocation@odata.navigationLink"] = (
                    f"{GRAPH}/reports/partners/billing/manifests/{op_id}"
                )
            else:
                body["resourceLocation"] = self.manifest_body(op["key"], op_id)
        elif status == "failed":
            code = export.fail_code if export else "5000"
            body["error"] = {
                "code": code,
                "message": "No data available" if code == "5000" else "boom",
            }
        return 200, headers, json.dumps(body)

    def _manifest(self, request: Any) -> tuple[int, dict[str, str], str]:
        op_id = request.url.rsplit("/", 1)[-1]
        return 200, {}, json.dumps(self.manifest_body(self.operations[op_id]["key"], op_id))

    def _blob(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        assert "Authorization" not in request.headers, (
            "the Graph token must never reach blob storage"
        )
        assert request.url.endswith(SAS)
        name = request.url.split("?")[0].rsplit("/", 1)[-1]
        self.blob_gets.append(name)
        for export in self.exports.values():
            if name in export.blobs:
                return 200, {}, export.blobs[name]
        return 404, {}, b""


@dataclass
class SyncResult:
    messages: list[dict[str, Any]]
    clock: FakeClock

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and stream in (None, m["stream"])
        ]

    @property
    def state(self) -> dict[str, Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}

    def partition_states(self, stream: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.state["bookmarks"][stream]["partitions"]
        return result


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    raw: list[str] | None = None,
    streams: tuple[str, ...] | None = None,
    catalog: dict[str, Any] | None = None,
    *,
    ahead: bool = True,
) -> SyncResult:
    """Sync in-process with a fake clock; return every message written to stdout.

    ``ahead`` (default, production's path): the exports start before the first stream, as the
    command line's preflight does (its token and invoice-list checks are left out); ``False``:
    no preflight, nothing is POSTed before the first stream syncs.
    """
    tap = TapPartnerBilling(config=config, state=state, catalog=catalog)
    for stream in tap.streams.values():
        stream.selected = streams is None or stream.name in streams
    clock = FakeClock()
    tap.sync_run.services = build_services(
        tap.config, clock=clock.clock, sleep=clock.sleep, calendar=lambda: TODAY
    )
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8")
    try:
        with redirect_stdout(out):
            if ahead:
                exporting = (s for s in tap.streams.values() if isinstance(s, ExportStream))
                start_exports_ahead(exporting, tap.logger)
            tap.sync_all()
    finally:
        tap.sync_run.close()  # the decode workers, as the command line does
        out.flush()
        text = buffer.getvalue().decode()
        if raw is not None:
            raw.extend(text.splitlines())
    return SyncResult([json.loads(line) for line in text.splitlines()], clock)
