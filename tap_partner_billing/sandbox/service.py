"""The sandbox service: login (MSAL), Graph partner billing, and blob storage over HTTPS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tap_partner_billing.sandbox.data import (
    PartitionData,
    Truth,
    pack_blobs,
    stable_seed,
    truth_of,
    usage_lines,
)
from tap_partner_billing.sandbox.faults import Fault, FaultBook, LoggedRequest

if TYPE_CHECKING:
    from tap_partner_billing.sandbox.tls import TlsFiles

BILLING = "/v1.0/reports/partners/billing"
PARTNER_TENANT = "c0c0c0c0-0000-4000-8000-00000000de00"
_INVOICE = re.compile(r"^[A-Z][A-Z0-9]{5,19}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass
class InvoiceSpec:
    """A fake invoice: its billing month, how many usage lines and blobs."""

    billing_month: str
    lines: int
    blobs: int = 3


@dataclass
class SandboxConfig:
    """Every knob of the sandbox (see the README's sandbox section)."""

    seed: int = 7
    tenant_id: str = "contoso-demo.example"
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - fake, for the sandbox only
    invoices: dict[str, InvoiceSpec] = field(
        default_factory=lambda: {
            "G000000001": InvoiceSpec("202609", 240, 3),
            "G000000002": InvoiceSpec("202610", 180, 3),
        }
    )
    # (period, currency) → (lines, blobs); other currencies answer failed/5000.
    unbilled: dict[tuple[str, str], tuple[int, int]] = field(
        default_factory=lambda: {("current", "USD"): (150, 2), ("last", "USD"): (120, 2)}
    )
    current_month: str = "202611"
    polls_before_success: int = 2
    retry_after_seconds: int = 1
    manifest_mode: str = "inline"  # or "linked"
    sas_lifetime_seconds: int = 3600
    token_lifetime_seconds: int = 3600
    bandwidth_bytes_per_second: int | None = None


def previous_month(month: str) -> str:
    """``202601`` → ``202512``."""
    year, mon = int(month[:4]), int(month[4:])
    year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return f"{year:04d}{mon:02d}"


@dataclass
class Operation:
    """One export in flight."""

    id: str
    action: str
    partition: tuple[str, ...] | None  # None: no data (answers failed / 5000)
    created: str
    polls: int = 0
    gone: bool = False


class Sandbox:
    """Data, operations, SAS signing and faults; the HTTP handlers call into this."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.faults = FaultBook()
        self.clock_offset_seconds = 0.0
        self._lock = threading.RLock()
        self._partitions: dict[tuple[str, ...], PartitionData] = {}
        self._operations: dict[str, Operation] = {}
        self._tokens: dict[str, float] = {}
        self._sas_key = secrets.token_bytes(32)
        self.login_url = self.graph_url = self.blob_url = ""
        self.azurite: Any = None  # an AzuriteStore when blobs are placed in Azurite

    # ---- time -------------------------------------------------------------------------
    def now(self) -> float:
        """The sandbox's clock (wall time plus an offset tests can move)."""
        return time.time() + self.clock_offset_seconds

    # ---- data -------------------------------------------------------------------------
    def _billed_key(self, invoice: str, attribute_set: str) -> tuple[str, ...] | None:
        return ("usage/billed", invoice, attribute_set) if invoice in self.config.invoices else None

    def _unbilled_key(
        self, period: str, currency: str, attribute_set: str
    ) -> tuple[str, ...] | None:
        if (period, currency) not in self.config.unbilled:
            return None
        month = (
            self.config.current_month
            if period == "current"
            else previous_month(self.config.current_month)
        )
        return ("usage/unbilled", month, currency, attribute_set, period)

    def partition(self, key: tuple[str, ...]) -> PartitionData:
        """The data of a partition, generated on first use."""
        with self._lock:
            if key not in self._partitions:
                self._partitions[key] = self._generate(key, version=1)
            return self._partitions[key]

    def _generate(self, key: tuple[str, ...], *, version: int) -> PartitionData:
        seed = stable_seed(self.config.seed, *key, version)
        if key[0] == "usage/billed":
            spec = self.config.invoices[key[1]]
            month, count, blob_count, invoice, currency = (
                spec.billing_month,
                spec.lines,
                spec.blobs,
                key[1],
                "USD",
            )
        else:
            month, currency = key[1], key[2]
            count, blob_count = self.config.unbilled[(key[4], currency)]
            invoice = None
        lines = usage_lines(
            seed=seed,
            count=count,
            billing_month=month,
            invoice=invoice,
            currency=currency,
            attribute_set=key[-2] if key[0] == "usage/unbilled" else key[2],
        )
        etag = base64.urlsafe_b64encode(hashlib.sha256(f"{seed}".encode()).digest()[:12]).decode()
        return PartitionData(
            month, etag, pack_blobs(lines, blob_count=blob_count, seed=seed), version
        )

    def load_invoice(self, invoice: str, billing_month: str, blobs: dict[str, bytes]) -> None:
        """Serve ready-made blobs as an invoice's billed usage (benchmarks bring their own)."""
        with self._lock:
            lines = -1  # unknown; the blobs are served as given
            self.config.invoices[invoice] = InvoiceSpec(billing_month, lines, len(blobs))
            for attribute_set in ("full", "basic"):
                key = ("usage/billed", invoice, attribute_set)
                etag = base64.urlsafe_b64encode(
                    hashlib.sha256(invoice.encode()).digest()[:12]
                ).decode()
                self._partitions[key] = PartitionData(billing_month, etag, blobs)

    def set_unbilled_lines(
        self, period: str, currency: str, lines: int, blobs: int | None = None
    ) -> None:
        """Change an unbilled snapshot (shrink or grow); it gets a new eTag."""
        with self._lock:
            _, old_blobs = self.config.unbilled.get((period, currency), (0, 2))
            self.config.unbilled[(period, currency)] = (lines, blobs or old_blobs)
            for key in [
                k
                for k in self._partitions
                if k[0] == "usage/unbilled" and k[4] == period and k[2] == currency
            ]:
                old = self._partitions[key]
                self._partitions[key] = self._generate(key, version=old.version + 1)

    def reissue_invoice(self, invoice: str, lines: int | None = None) -> None:
        """Re-issue an invoice's data (a new version and eTag)."""
        with self._lock:
            spec = self.config.invoices[invoice]
            if lines is not None:
                spec.lines = lines
            for key in [k for k in self._partitions if k[0] == "usage/billed" and k[1] == invoice]:
                self._partitions[key] = self._generate(
                    key, version=self._partitions[key].version + 1
                )

    def billed_truth(self, invoice: str, attribute_set: str = "full") -> Truth:
        """Ground truth of an invoice, from the blob bytes."""
        return truth_of(self.partition(("usage/billed", invoice, attribute_set)).blobs)

    def unbilled_truth(self, period: str, currency: str, attribute_set: str = "full") -> Truth:
        """Ground truth of an unbilled period, from the blob bytes."""
        key = self._unbilled_key(period, currency, attribute_set)
        return truth_of(self.partition(key).blobs) if key else Truth(0, truth_of({}).pretax_total)

    def unbilled_month(self, period: str) -> str:
        """The absolute month a period resolves to now."""
        return (
            self.config.current_month
            if period == "current"
            else previous_month(self.config.current_month)
        )

    # ---- exports ----------------------------------------------------------------------
    def start_export(
        self, action: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """Validate an export body; return (status, error body, operation id)."""
        attribute_set = body.get("attributeSet", "full")
        if attribute_set not in {"full", "basic"}:
            return 400, _graph_error("BadRequest", "attributeSet must be full or basic"), None
        dataset, kind = action.split("/")
        partition: tuple[str, ...] | None
        if kind == "billed":
            invoice = body.get("invoiceId")
            if not isinstance(invoice, str) or not _INVOICE.match(invoice):
                return 400, _graph_error("BadRequest", "invoiceId is missing or malformed"), None
            partition = self._billed_key(invoice, attribute_set) if dataset == "usage" else None
        else:
            currency, period = body.get("currencyCode"), body.get("billingPeriod")
            if not isinstance(currency, str) or not _CURRENCY.match(currency):
                return 400, _graph_error("BadRequest", "currencyCode is missing or malformed"), None
            if period not in {"current", "last"}:
                return (
                    400,
                    _graph_error("BadRequest", "billingPeriod must be current or last"),
                    None,
                )
            partition = (
                self._unbilled_key(period, currency, attribute_set) if dataset == "usage" else None
            )
        op = Operation(str(uuid.uuid4()), action, partition, _iso(self.now()))
        with self._lock:
            self._operations[op.id] = op
        return 202, None, op.id

    def poll(self, operation_id: str) -> tuple[int, dict[str, Any], int | None]:
        """Advance an operation by one poll: (status code, body, Retry-After)."""
        with self._lock:
            op = self._operations.get(operation_id)
            if op is None:
                return 404, _graph_error("NotFound", "operation not found"), None
            if op.gone:
                return 410, _graph_error("Gone", "operation expired"), None
            op.polls += 1
            base: dict[str, Any] = {
                "id": op.id,
                "createdDateTime": op.created,
                "lastActionDateTime": _iso(self.now()),
            }
            if op.polls <= self.config.polls_before_success:
                status = "notStarted" if op.polls == 1 else "running"
                running = {
                    "@odata.type": "#microsoft.graph.partners.billing.runningOperation",
                    **base,
                    "status": status,
                }
                return 200, running, self.config.retry_after_seconds
            if op.partition is None:
                return (
                    200,
                    {
                        "@odata.type": "#microsoft.graph.partners.billing.failedOperation",
                        **base,
                        "status": "failed",
                        "error": {"message": "No data available", "code": "5000"},
                    },
                    None,
                )
            body: dict[str, Any] = {
                "@odata.type": "#microsoft.graph.partners.billing.exportSuccessOperation",
                **base,
                "status": "succeeded",
            }
            if self.config.manifest_mode == "linked":
                body["resourceLocation@odata.navigationLink"] = (
                    f"{self.graph_url}{BILLING}/manifests/{op.id}"
                )
            else:
                body["resourceLocation"] = self.manifest(op.partition, op.id)
            return 200, body, None

    def expire_operations(self) -> None:
        """Make every known operation answer 410 Gone."""
        with self._lock:
            for op in self._operations.values():
                op.gone = True

    def manifest_for_operation(self, operation_id: str) -> dict[str, Any] | None:
        """The manifest of a succeeded operation (the linked-manifest mode)."""
        with self._lock:
            op = self._operations.get(operation_id)
        if op is None or op.gone or op.partition is None:
            return None
        return self.manifest(op.partition, op.id)

    def directory(self, key: tuple[str, ...], data: PartitionData) -> tuple[str, str]:
        """(container, directory path) of a partition, Hive-style as the real service names them."""
        if key[0] == "usage/billed":
            return "billedusage", (
                f"v1/PartnerTenantId={PARTNER_TENANT}/BillingMonth={data.billing_month}/InvoiceId={key[1]}"
                f"/InvoiceVersion={data.billing_month}{data.version:02d}/Fragment={key[2]}/PartitionType=default"
            )
        return "unbilledusage", (
            f"v1/{data.billing_month}01{data.version:04d}/PartnerTenantId={PARTNER_TENANT}/BillingMonth={data.billing_month}"
            f"/Currency={key[2]}/Fragment={key[3]}/PartitionType=default"
        )

    def manifest(self, key: tuple[str, ...], manifest_id: str) -> dict[str, Any]:
        """A manifest shaped like the real ones (reference §5), with a fresh SAS."""
        data = self.partition(key)
        container, directory = self.directory(key, data)
        if self.azurite is not None:
            root, sas = self.azurite.place(
                container, directory, data.blobs, self.now() + self.config.sas_lifetime_seconds
            )
        else:
            root = f"{self.blob_url}/{container}/{directory}"
            sas = self.sign(
                f"/{container}/{directory}", self.now() + self.config.sas_lifetime_seconds
            )
        return {
            "id": manifest_id,
            "createdDateTime": _iso(self.now()),
            "schemaVersion": "2",
            "dataFormat": "compressedJSON",
            "partitionType": "default",
            "eTag": data.etag,
            "partnerTenantId": PARTNER_TENANT,
            "rootDirectory": root,
            "sasToken": sas,
            "blobCount": len(data.blobs),
            "blobs": [{"name": name, "partitionValue": "default"} for name in data.blobs],
        }

    # ---- SAS and blobs ----------------------------------------------------------------
    def sign(self, directory: str, expires: float) -> str:
        """A directory SAS: ``sr=d``, read + list, expiring at ``expires``."""
        se = _iso(expires, seconds_only=True)
        sig = self._signature(directory, se)
        return f"sv=2021-08-06&se={quote(se, safe='')}&sr=d&sp=rl&sdd=7&sig={quote(sig, safe='')}"

    def _signature(self, directory: str, se: str) -> str:
        digest = hmac.new(self._sas_key, f"{directory}\n{se}\nrl".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def blob_for(self, path: str, query: str) -> tuple[int, bytes | None]:
        """Check the SAS for ``path`` and return (status, bytes)."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        directory = path.rsplit("/", 1)[0]
        se = params.get("se", "")
        expected = self._signature(directory, se) if se else ""
        if not se or not hmac.compare_digest(params.get("sig", ""), expected):
            return 403, None
        try:
            expires = (
                datetime.strptime(se, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
            )
        except ValueError:
            return 403, None
        if expires < self.now():
            return 403, None
        parts = path.strip("/").split("/")
        with self._lock:
            for key, data in self._partitions.items():
                container, dir_path = self.directory(key, data)
                if f"/{container}/{dir_path}" == directory and parts[-1] in data.blobs:
                    return 200, data.blobs[parts[-1]]
        return 404, None

    def token_valid(self, header: str | None) -> bool:
        """True for ``Bearer <a token this sandbox issued and that has not expired>``."""
        if not header or not header.startswith("Bearer "):
            return False
        expiry = self._tokens.get(header[7:])
        return expiry is not None and expiry > self.now()

    def issued_tokens(self) -> list[str]:
        """Every access token handed out (tests check none of them leaks)."""
        return list(self._tokens)

    def issue_token(self) -> tuple[str, int]:
        """A new opaque access token and its lifetime."""
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self.now() + self.config.token_lifetime_seconds
        return token, self.config.token_lifetime_seconds


def _iso(epoch: float, *, seconds_only: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    if seconds_only:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _graph_error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}
    }


class _Handler(BaseHTTPRequestHandler):
    """Routes requests of one role (login, graph, blob) to the sandbox."""

    sandbox: ClassVar[Sandbox]
    role: ClassVar[str]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
        """Quiet: the request log is kept in the sandbox instead."""

    def _log(self, step: str, status: int) -> None:
        self.sandbox.faults.record(
            LoggedRequest(
                step,
                self.command,
                urlsplit(self.path).path,
                status,
                "Authorization" in self.headers,
                self.headers.get("Range"),
            )
        )

    def _send_json(
        self, step: str, status: int, body: object, headers: dict[str, str] | None = None
    ) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self._log(step, status)

    def _fault(self, step: str) -> bool:
        fault = self.sandbox.faults.take(step, urlsplit(self.path).path)
        if fault is None or fault.drop_after_bytes is not None or fault.corrupt:
            if fault is not None:
                self._pending_fault = fault
            return False
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = (
            {"error": "temporarily_unavailable", "error_description": "sandbox fault"}
            if step == "token"
            else _graph_error("ServiceUnavailable", "sandbox fault")
        )
        self._send_json(step, fault.status, body, headers)
        return True

    _pending_fault: Fault | None = None

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        """GET: openid configuration, operations, manifests, blobs."""
        self._pending_fault = None
        path = urlsplit(self.path).path
        if self.role == "login":
            tenant = path.strip("/").split("/")[0]
            base = f"{self.sandbox.login_url}/{tenant}"
            self._send_json(
                "openid",
                200,
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                },
            )
        elif self.role == "graph":
            self._graph_get(path)
        else:
            self._blob_get(path)

    def _graph_get(self, path: str) -> None:
        step = "manifest" if "/manifests/" in path else "operation"
        if self._fault(step):
            return
        if not self.sandbox.token_valid(self.headers.get("Authorization")):
            self._send_json(
                step, 401, _graph_error("InvalidAuthenticationToken", "token missing or expired")
            )
            return
        operation_id = path.rstrip("/").rsplit("/", 1)[-1]
        if step == "manifest":
            manifest = self.sandbox.manifest_for_operation(operation_id)
            if manifest is None:
                self._send_json(step, 404, _graph_error("NotFound", "manifest not found"))
            else:
                self._send_json(step, 200, manifest)
            return
        status, body, retry_after = self.sandbox.poll(operation_id)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._send_json(step, status, body, headers)

    def _blob_get(self, path: str) -> None:
        if self._fault("blob"):
            return
        status, data = self.sandbox.blob_for(unquote(path), urlsplit(self.path).query)
        if data is None:
            body = (
                b'<?xml version="1.0" encoding="utf-8"?>'
                b"<Error><Code>AuthenticationFailed</Code></Error>"
            )
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self._log("blob", status)
            return
        start = 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if match and int(match.group(1)) < len(data):
            start = int(match.group(1))
        fault = self._pending_fault
        if fault is not None and fault.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        payload = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        limit = (
            fault.drop_after_bytes
            if fault is not None and fault.drop_after_bytes is not None
            else None
        )
        self._log("blob", 206 if start else 200)
        self._stream(payload, limit)

    def _stream(self, payload: bytes, drop_after: int | None) -> None:
        rate = self.sandbox.config.bandwidth_bytes_per_second
        chunk = 64 * 1024 if rate is None else max(1024, rate // 20)
        sent, started = 0, time.monotonic()
        while sent < len(payload):
            end = min(len(payload), sent + chunk)
            if drop_after is not None and end > drop_after:
                self.wfile.write(payload[sent:drop_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.close()
                return
            self.wfile.write(payload[sent:end])
            sent = end
            if rate is not None:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def do_POST(self) -> None:
        """POST: token requests and exports."""
        path = urlsplit(self.path).path
        raw = self._read_body()
        if self.role == "login":
            self._token(raw)
            return
        match = re.fullmatch(rf"{BILLING}/(usage|reconciliation)/(billed|unbilled)/export", path)
        if match is None:
            self._send_json("export", 404, _graph_error("NotFound", "no such action"))
            return
        if self._fault("export"):
            return
        if not self.sandbox.token_valid(self.headers.get("Authorization")):
            self._send_json(
                "export",
                401,
                _graph_error("InvalidAuthenticationToken", "token missing or expired"),
            )
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json("export", 400, _graph_error("BadRequest", "body is not JSON"))
            return
        status, error, operation_id = self.sandbox.start_export(
            f"{match.group(1)}/{match.group(2)}", body
        )
        if operation_id is None:
            self._send_json("export", status, error)
            return
        location = f"{self.sandbox.graph_url}{BILLING}/operations/{operation_id}"
        self._send_json("export", 202, None, {"Location": location})

    def _token(self, raw: bytes) -> None:
        if self._fault("token"):
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        config = self.sandbox.config
        secret_ok = form.get("client_secret") == config.client_secret or bool(
            form.get("client_assertion")
        )
        if form.get("client_id") != config.client_id or not secret_ok:
            self._send_json(
                "token",
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
            )
            return
        token, lifetime = self.sandbox.issue_token()
        self._send_json(
            "token",
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
        )


class SandboxServer:
    """Runs the three HTTPS endpoints of a :class:`Sandbox` in background threads."""

    def __init__(self, sandbox: Sandbox, tls: TlsFiles, *, host: str = "127.0.0.1") -> None:
        self.sandbox = sandbox
        self.tls = tls
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._host = host

    def start(self, ports: tuple[int, int, int] = (0, 0, 0)) -> SandboxServer:
        """Listen on 127.0.0.1 (port 0 = any free port) and serve until :meth:`stop`."""
        context = self.tls.server_context()
        urls = []
        for role, port in zip(("login", "graph", "blob"), ports, strict=True):
            handler = type(
                f"{role.title()}Handler", (_Handler,), {"sandbox": self.sandbox, "role": role}
            )
            server = ThreadingHTTPServer((self._host, port), handler)
            server.daemon_threads = True
            server.socket = context.wrap_socket(server.socket, server_side=True)
            thread = threading.Thread(
                target=server.serve_forever, name=f"sandbox-{role}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
            urls.append(f"https://{self._host}:{server.server_address[1]}")
        self.sandbox.login_url, graph_root, self.sandbox.blob_url = urls
        self.sandbox.graph_url = graph_root
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def tap_config(self, **overrides: Any) -> dict[str, Any]:  # noqa: ANN401
        """A tap config that points at this sandbox."""
        config = self.sandbox.config
        result: dict[str, Any] = {
            "tenant_id": config.tenant_id,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "authority_url": self.sandbox.login_url,
            "graph_url": f"{self.sandbox.graph_url}/v1.0",
            "invoice_ids": sorted(config.invoices),
            "currency_codes": ["USD"],
            "poll_interval_seconds": 1,
        }
        result.update(overrides)
        return result
