"""The sandbox's HTTPS endpoints: login (MSAL), Graph partner billing, and blob storage."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from tap_partner_billing.sandbox import documented
from tap_partner_billing.sandbox.credentials import PARTNER_CENTER_SCOPE
from tap_partner_billing.sandbox.faults import Fault, LoggedRequest
from tap_partner_billing.sandbox.partner_center import CONTINUATION_HEADER, invoice_page
from tap_partner_billing.sandbox.service import BILLING, Sandbox, graph_error

if TYPE_CHECKING:
    from tap_partner_billing.sandbox.tls import TlsFiles

_ENCODER = msgspec.json.Encoder(decimal_format="number")  # money as JSON numbers, exactly


ROLES = ("login", "graph", "blob", "partner")
STOP_POLL_SECONDS = 0.1  # how often a serving loop checks whether it should stop
GRAPH_ROLE = "PartnerBilling.Read.All"
# Partner Center's path, spelled here (never taken from the tap): a wrong path in the tap
# meets the sandbox's 404, as it would meet Partner Center's.
INVOICES_PATH = "/v1/invoices"


class _Handler(BaseHTTPRequestHandler):
    """Routes requests of one role (login, graph, blob) to the sandbox."""

    sandbox: ClassVar[Sandbox]
    role: ClassVar[str]
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
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
                self._detail,
                operation=self._operation,
            )
        )

    def _send_json(
        self, step: str, status: int, body: object, headers: dict[str, str] | None = None
    ) -> None:
        payload = b"" if body is None else _ENCODER.encode(body)
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
            else graph_error("ServiceUnavailable", "sandbox fault")
        )
        self._send_json(step, fault.status, body, headers)
        return True

    _pending_fault: Fault | None = None
    _detail: str | None = None
    _operation: str | None = None

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        """GET: openid configuration, operations, manifests, blobs."""
        self._pending_fault = self._detail = None
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
        elif self.role == "partner":
            self._invoices_get(path)
        else:
            self._blob_get(path)

    def _graph_get(self, path: str) -> None:
        step = "manifest" if "/manifests/" in path else "operation"
        if self._fault(step):
            return
        if not self._graph_authorized(step):
            return
        operation_id = path.rstrip("/").rsplit("/", 1)[-1]
        shaped = self.sandbox.config.documented  # answers shaped like the documented ones
        if step == "manifest":
            manifest = self.sandbox.manifest_for_operation(operation_id)
            if manifest is None:
                self._send_json(step, 404, graph_error("NotFound", "manifest not found"))
            else:
                self._send_json(step, 200, documented.manifest(manifest) if shaped else manifest)
            return
        status, body, retry_after = self.sandbox.poll(operation_id)
        if shaped and "status" in body:  # an operation, not an error
            body = documented.operation(body)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._send_json(step, status, body, headers)

    def _graph_authorized(self, step: str) -> bool:
        """401 without a valid Graph token, 403 (as Graph words it) without the permission."""
        header = self.headers.get("Authorization")
        if not self.sandbox.tokens.valid(header):
            error = graph_error("InvalidAuthenticationToken", "token missing or expired")
            self._send_json(step, 401, error)
            return False
        if not self.sandbox.tokens.has_role(header, GRAPH_ROLE):
            roles = "Missing role permissions on the request. API requires one of "
            error = graph_error("Forbidden", f"{roles}'{GRAPH_ROLE}'. Roles on the request ''.")
            self._send_json(step, 403, error)
            return False
        return True

    def _invoices_get(self, path: str) -> None:
        if self._fault("invoices"):
            return
        if path.rstrip("/") != INVOICES_PATH:
            self._send_json("invoices", 404, {"code": 404, "description": "no such resource"})
        elif not self.sandbox.tokens.valid(self.headers.get("Authorization"), PARTNER_CENTER_SCOPE):
            # A Graph token is refused here, as Partner Center refuses it.
            self._send_json("invoices", 401, {"code": 401, "description": "invalid token"})
        elif self.sandbox.config.documented:
            page = documented.invoice_page(urlsplit(self.path).query)
            if page is None:
                error = {"code": 400, "description": "no such page of the documented list"}
                self._send_json("invoices", 400, error, _partner_center_ids())
            else:
                self._send_json("invoices", 200, page, _partner_center_ids())
        else:
            page = invoice_page(self.sandbox, self.headers.get(CONTINUATION_HEADER))
            self._send_json("invoices", 200, page, _partner_center_ids())

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
        self._detail = self._operation = None
        path = urlsplit(self.path).path
        raw = self._read_body()
        if self.role == "login":
            self._token(raw)
            return
        match = re.fullmatch(rf"{BILLING}/(usage|reconciliation)/(billed|unbilled)/export", path)
        if match is None:
            self._send_json("export", 404, graph_error("NotFound", "no such action"))
            return
        if self._fault("export"):
            return
        if not self._graph_authorized("export"):
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json("export", 400, graph_error("BadRequest", "body is not JSON"))
            return
        if isinstance(body, dict):
            self._detail = str(
                body.get("invoiceId") or f"{body.get('billingPeriod')}/{body.get('currencyCode')}"
            )
        answer = self.sandbox.start_export(f"{match.group(1)}/{match.group(2)}", body)
        if answer.operation_id is None:
            headers = {} if answer.retry_after is None else {"Retry-After": str(answer.retry_after)}
            self._send_json("export", answer.status, answer.error, headers)
            return
        self._operation = answer.operation_id
        location = f"{self.sandbox.graph_url}{BILLING}/operations/{answer.operation_id}"
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
        issued = self.sandbox.tokens.issue(form.get("scope", ""), config.client_id)
        if issued is None:
            self._send_json(
                "token",
                400,
                {
                    "error": "invalid_scope",
                    "error_description": (
                        "AADSTS70011: The provided value for the input parameter 'scope' is "
                        f"not valid. The scope {form.get('scope', '')} is not valid."
                    ),
                },
            )
            return
        token, lifetime = issued
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


class _Server(ThreadingHTTPServer):
    """A thread per connection, and room for many waiting ones (a tap polls many exports)."""

    daemon_threads = True
    request_queue_size = 128


def _partner_center_ids() -> dict[str, str]:
    """The support ids every documented Partner Center answer carries."""
    return {"MS-CorrelationId": str(uuid.uuid4()), "MS-RequestId": str(uuid.uuid4())}


class SandboxServer:
    """Runs the HTTPS endpoints of a :class:`Sandbox` (login, Graph, blobs, Partner Center)."""

    def __init__(self, sandbox: Sandbox, tls: TlsFiles, *, host: str = "127.0.0.1") -> None:
        self.sandbox = sandbox
        self.tls = tls
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._host = host

    def start(self, ports: tuple[int, ...] = (0, 0, 0, 0)) -> SandboxServer:
        """Listen on 127.0.0.1 (port 0 = any free port) and serve until :meth:`stop`."""
        context = self.tls.server_context()
        urls = []
        for role, port in zip(ROLES, ports, strict=True):
            handler = type(
                f"{role.title()}Handler", (_Handler,), {"sandbox": self.sandbox, "role": role}
            )
            server = _Server((self._host, port), handler)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": STOP_POLL_SECONDS},
                name=f"sandbox-{role}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
            urls.append(f"https://{self._host}:{server.server_address[1]}")
        (
            self.sandbox.login_url,
            self.sandbox.graph_url,
            self.sandbox.blob_url,
            self.sandbox.partner_center_url,
        ) = urls
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets."""
        # Each shutdown waits until its loop notices (STOP_POLL_SECONDS): all at once.
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers]
        for stopper in stoppers:
            stopper.start()
        for stopper, server in zip(stoppers, self._servers, strict=True):
            stopper.join()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def tap_config(self, **overrides: Any) -> dict[str, Any]:
        """A tap config that points at this sandbox (as its Meltano environment does)."""
        config = self.sandbox.config
        result: dict[str, Any] = {
            "tenant_id": config.tenant_id,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "authority_url": self.sandbox.login_url,
            "graph_url": f"{self.sandbox.graph_url}/v1.0",
            "partner_center_url": self.sandbox.partner_center_url,
            "start_date": config.start_month,
            "currency_codes": ["USD"],
            "poll_interval_seconds": 1,
        }
        result.update(overrides)
        return result
