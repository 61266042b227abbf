"""A hostile service: an HTTPS server on 127.0.0.1 whose every answer a test chooses.

It is not the sandbox: it knows nothing of the tap beyond the wire protocol. By default it
plays just enough of Entra ID, Graph and blob storage for one billed-usage export of one
invoice to succeed; a test replaces any answer (``routes``) to attack one step, and reads
``seen`` to learn exactly what the tap sent where. A second instance on another origin plays
the attacker, who must never receive a credential.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tap_partner_billing.sandbox.tls import TlsFiles

TENANT = "hostile.test"
CLIENT_SECRET = "hostile-client-secret-3f9a0c"
TOKEN = "eyJhbGciOiJub25lIn0.hostile-graph-token-77c1"
SIG = "HostileSasSignature%2Bq7"
SAS = f"sv=2024-01-01&sr=d&sp=rl&se=2099-01-01T00%3A00%3A00Z&sig={SIG}"
INVOICE = "G000000001"
EXPORT_PATH = "/v1.0/reports/partners/billing/usage/billed/export"
# Every export answers with the same operation: a whole run of any stream gets its data.
EXPORT_PATHS = tuple(
    f"/v1.0/reports/partners/billing/{dataset}/{period}/export"
    for dataset in ("usage", "reconciliation")
    for period in ("billed", "unbilled")
)
OPERATION_PATH = "/v1.0/reports/partners/billing/operations/op-1"
BLOB_ROOT = "/blobs/billed/InvoiceId=G000000001"
LINES = (
    '{"CustomerId": "c1", "BillingPreTaxTotal": 1.25, "Quantity": "2"}',
    '{"CustomerId": "c2", "BillingPreTaxTotal": "0.000000000000000001", "Quantity": 3}',
)


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    server: str
    method: str
    target: str  # the request target exactly as sent (path and query)
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The path, without the query."""
        return urlsplit(self.target).path


@dataclass(frozen=True)
class Trickle:
    """A body sent ``step`` bytes at a time, ``pause`` seconds apart (after ``head`` bytes)."""

    data: bytes
    head: int = 0
    step: int = 1
    pause: float = 0.5

    def chunks(self) -> list[bytes]:
        """The pieces after the head."""
        rest = self.data[self.head :]
        return [rest[at : at + self.step] for at in range(0, len(rest), self.step)]


@dataclass(frozen=True)
class Cut:
    """A body that breaks off: all of ``data`` announced, ``after`` bytes sent, connection lost.

    ``Content-Length`` says ``len(data)``; after the first ``after`` bytes the connection
    closes without a TLS goodbye, as a dropped connection does.
    """

    data: bytes
    after: int


Reply = tuple[int, dict[str, str], "bytes | Trickle | Cut"]
Route = Callable[[Seen], Reply]


def json_reply(status: int, body: object, **headers: str) -> Reply:
    """A JSON answer."""
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


@dataclass
class HostileServer:
    """An HTTPS server whose answers are the test's ``routes``."""

    name: str
    tls: TlsFiles
    host: str = "127.0.0.1"
    routes: dict[tuple[str, str], Route | Reply] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        """``https://host:port``."""
        assert self._server is not None
        return f"https://{self.host}:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> HostileServer:
        """Listen on a free port of 127.0.0.1."""
        outer = self

        class Handler(_Handler):
            server_of: ClassVar[HostileServer] = outer

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = self.tls.server_context().wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, seen: Seen) -> Reply:
        """The reply to ``seen`` (404 when no route matches)."""
        self.seen.append(seen)
        route = self.routes.get((seen.method, seen.path))
        if route is None:
            return json_reply(404, {"error": {"code": "NotFound", "message": seen.path}})
        return route(seen) if callable(route) else route

    def credentials_seen(self) -> list[Seen]:
        """Requests that carried a bearer token or the client secret."""
        return [
            s
            for s in self.seen
            if "authorization" in {k.lower() for k in s.headers} or CLIENT_SECRET.encode() in s.body
        ]


class _Handler(BaseHTTPRequestHandler):
    server_of: ClassVar[HostileServer]
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        """Quiet."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.server_of.name, self.command, self.path, dict(self.headers), body)
        status, headers, payload = self.server_of.answer(seen)
        data = payload.data if isinstance(payload, (Trickle, Cut)) else payload
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if isinstance(payload, Cut):
            self.wfile.write(data[: payload.after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # no TLS close_notify: a lost link
            return
        if not isinstance(payload, Trickle):
            self.wfile.write(payload)
            return
        try:
            self.wfile.write(data[: payload.head])
            self.wfile.flush()
            for piece in payload.chunks():
                time.sleep(payload.pause)
                self.wfile.write(piece)
                self.wfile.flush()
        except OSError:
            return  # the client went away

    do_GET = do_POST = _handle


def blob_bytes(*lines: str) -> bytes:
    """Gzip JSON lines."""
    return gzip.compress("".join(line + "\n" for line in lines).encode())


def manifest(origin: str, names: tuple[str, ...] = ("part-0.json.gz",)) -> dict[str, Any]:
    """A manifest whose blobs lie under ``BLOB_ROOT`` of ``origin``."""
    return {
        "id": "manifest-1",
        "eTag": "etag-1",
        "createdDateTime": "2026-11-02T00:00:00Z",
        "blobCount": len(names),
        "dataFormat": "compressedJSON",
        "rootDirectory": f"{origin}{BLOB_ROOT}",
        "sasToken": SAS,
        "blobs": [{"name": name, "partitionValue": "default"} for name in names],
    }


def succeeded(origin: str, **change: Any) -> dict[str, Any]:
    """A succeeded operation with the manifest inline."""
    body = {
        "id": "op-1",
        "status": "succeeded",
        "createdDateTime": "2026-11-02T00:00:00Z",
        "resourceLocation": manifest(origin),
    }
    body.update(change)
    return body


def play_billing(server: HostileServer) -> None:
    """Routes for one successful billed-usage export of ``INVOICE``."""
    origin = server.origin
    tenant_base = f"{origin}/{TENANT}"
    server.routes.update(
        {
            ("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration"): json_reply(
                200,
                {
                    "token_endpoint": f"{tenant_base}/oauth2/v2.0/token",
                    "issuer": f"{tenant_base}/v2.0",
                    "authorization_endpoint": f"{tenant_base}/oauth2/v2.0/authorize",
                },
            ),
            ("POST", f"/{TENANT}/oauth2/v2.0/token"): json_reply(
                200, {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}
            ),
            **{
                ("POST", path): (202, {"Location": f"{origin}{OPERATION_PATH}"}, b"")
                for path in EXPORT_PATHS
            },
            ("GET", OPERATION_PATH): json_reply(200, succeeded(origin)),
            ("GET", f"{BLOB_ROOT}/part-0.json.gz"): (200, {}, blob_bytes(*LINES)),
        }
    )


def write_config(server: HostileServer, folder: Path, **overrides: Any) -> Path:
    """A config file for a command-line run against ``server``."""
    path = folder / "hostile-tap.json"
    path.write_text(json.dumps(tap_config(server, **overrides)))
    return path


def tap_config(server: HostileServer, **overrides: Any) -> dict[str, Any]:
    """A tap config aimed at ``server`` for every service, discovery off."""
    config: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": "hostile-client",
        "client_secret": CLIENT_SECRET,
        "authority_url": server.origin,
        "graph_url": f"{server.origin}/v1.0",
        "partner_center_url": server.origin,
        "discover_invoices": False,
        "invoice_ids": [INVOICE],
        "poll_interval_seconds": 1,
    }
    config.update(overrides)
    return config


@dataclass(frozen=True)
class CliRun:
    """What a command-line run of the tap left behind."""

    returncode: int
    stdout: bytes
    stderr: str
    peak_rss_mb: float


def run_cli(
    config: Path, *, env: dict[str, str] | None = None, stdout_to: Path | None = None
) -> CliRun:
    """Run ``python -m tap_partner_billing --config …``; measure the child's peak RSS."""
    import os
    import subprocess
    import sys
    import tempfile

    out_path = stdout_to or config.with_suffix(".out")
    with out_path.open("wb") as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tap_partner_billing", "--config", str(config)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        peak_kb = 0
        # VmHWM, the process's own high-water mark (the kernel's ru_maxrss of a child also
        # counts the parent's memory at fork, so it would measure the test runner).
        while process.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(process.pid))
            time.sleep(0.02)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return CliRun(process.returncode, out_path.read_bytes(), stderr, peak_kb / 1024)


def _vm_hwm_kb(pid: int) -> int:
    try:
        with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
