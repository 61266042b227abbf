"""The sandbox service: login (MSAL), Graph partner billing, and blob storage over HTTPS."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from tap_partner_billing.sandbox.azure_plan import azure_plan_lines
from tap_partner_billing.sandbox.config import (
    InvoiceSpec,
    SandboxConfig,
    previous_month,
    shift_month,
)
from tap_partner_billing.sandbox.credentials import SasSigner, TokenIssuer
from tap_partner_billing.sandbox.data import (
    MONEY_KEYS,
    LineSpec,
    PartitionData,
    Truth,
    iter_usage_lines,
    pack_blobs,
    reconciliation_lines,
    stable_seed,
    truth_of,
)
from tap_partner_billing.sandbox.faults import FaultBook
from tap_partner_billing.sandbox.pace import ExportPace

BILLING = "/v1.0/reports/partners/billing"
PARTNER_TENANT = "c0c0c0c0-0000-4000-8000-00000000de00"
FAILED = "#microsoft.graph.partners.billing.failedOperation"
_INVOICE = re.compile(r"^[A-Z][A-Z0-9]{5,19}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# The first billing month Graph's billed export serves, per dataset (Partner Center: usage v2
# from September 2022, invoice reconciliation v2 from February 2024). An older invoice is
# accepted (202), and its operation fails with 5000, every time. Spelled here, not imported.
COVERAGE_FROM = {"usage": "202209", "reconciliation": "202402"}


class ExportAnswer(NamedTuple):
    """The answer to an export POST: 202 with an operation, or an error (429: Retry-After)."""

    status: int
    error: dict[str, Any] | None = None
    operation_id: str | None = None
    retry_after: int | None = None

    @classmethod
    def bad_request(cls, message: str) -> ExportAnswer:
        """A 400 with Graph's error envelope."""
        return cls(400, graph_error("BadRequest", message))


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
        # Data version of each invoice (its usage and reconciliation change together).
        self._invoice_versions: dict[str, int] = {}
        self._operations: dict[str, Operation] = {}
        self.pace = ExportPace(lambda: self.config, self.now)
        self.tokens = TokenIssuer(
            self.now,
            lambda: self.config.token_lifetime_seconds,
            lambda: self.config.graph_roles,
        )
        self.sas = SasSigner(self.now)
        self.login_url = self.graph_url = self.blob_url = self.partner_center_url = ""
        self.azurite: Any = None  # an AzuriteStore when blobs are placed in Azurite
        # Exports that fail with a Graph error code: invoice id (billed) or month → code.
        self.failing: dict[str, str] = {}

    # ---- time -------------------------------------------------------------------------
    def now(self) -> float:
        """The sandbox's clock (wall time plus an offset tests can move)."""
        return time.time() + self.clock_offset_seconds

    # ---- data -------------------------------------------------------------------------
    def _billed_key(
        self, invoice: str, attribute_set: str, dataset: str = "usage"
    ) -> tuple[str, ...] | None:
        spec = self.config.invoices.get(invoice)
        if (
            spec is None
            or (dataset == "usage" and spec.document_type != "invoice")
            or spec.billing_month < COVERAGE_FROM[dataset]
        ):
            return None
        return (f"{dataset}/billed", invoice, attribute_set)

    def _unbilled_key(
        self, period: str, currency: str, attribute_set: str, dataset: str = "usage"
    ) -> tuple[str, ...] | None:
        if (period, currency) not in self.config.unbilled:
            return None
        month = (
            self.config.current_month
            if period == "current"
            else previous_month(self.config.current_month)
        )
        return (f"{dataset}/unbilled", month, currency, attribute_set, period)

    def partition(self, key: tuple[str, ...]) -> PartitionData:
        """The data of a partition, generated on first use."""
        with self._lock:
            if key not in self._partitions:
                version = self._invoice_versions.get(key[1], 1) if key[0].endswith("/billed") else 1
                self._partitions[key] = self._generate(key, version=version)
            return self._partitions[key]

    def _generate(self, key: tuple[str, ...], *, version: int) -> PartitionData:
        seed = stable_seed(self.config.seed, *key, version)
        billed, reconciliation = key[0].endswith("/billed"), key[0].startswith("reconciliation")
        if billed:
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
        line_spec = LineSpec(seed, month, invoice, currency, key[2] if billed else key[3])
        if reconciliation:
            credit_note = billed and self.config.invoices[key[1]].document_type != "invoice"
            # Invoice line items (licences, reservations, fees) are fewer than usage lines.
            lines = reconciliation_lines(line_spec, max(1, count // 4), credit_note=credit_note)
            if billed and not credit_note:
                # The invoice also bills its Azure plan usage: the usage of the same version.
                usage_seed = stable_seed(self.config.seed, "usage/billed", *key[1:], version)
                usage = list(
                    iter_usage_lines(dataclasses.replace(line_spec, seed=usage_seed), count)
                )
                lines += azure_plan_lines(
                    usage, currency=currency, attribute_set=line_spec.attribute_set
                )
        else:
            lines = list(iter_usage_lines(line_spec, count))
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
                if k[0].endswith("/unbilled") and k[4] == period and k[2] == currency
            ]:
                old = self._partitions[key]
                self._partitions[key] = self._generate(key, version=old.version + 1)

    def reissue_invoice(self, invoice: str, lines: int | None = None) -> None:
        """Re-issue an invoice's data (a new version and eTag)."""
        with self._lock:
            spec = self.config.invoices[invoice]
            if lines is not None:
                spec.lines = lines
            version = self._invoice_versions.get(invoice, 1) + 1
            self._invoice_versions[invoice] = version
            for key in [
                k for k in self._partitions if k[0].endswith("/billed") and k[1] == invoice
            ]:
                self._partitions[key] = self._generate(key, version=version)

    def billed_truth(
        self, invoice: str, attribute_set: str = "full", dataset: str = "usage"
    ) -> Truth:
        """Ground truth of an invoice, from the blob bytes."""
        key = self._billed_key(invoice, attribute_set, dataset)
        return truth_of(self.partition(key).blobs if key else {}, MONEY_KEYS[dataset])

    def unbilled_truth(
        self, period: str, currency: str, attribute_set: str = "full", dataset: str = "usage"
    ) -> Truth:
        """Ground truth of an unbilled period, from the blob bytes."""
        key = self._unbilled_key(period, currency, attribute_set, dataset)
        return truth_of(self.partition(key).blobs if key else {}, MONEY_KEYS[dataset])

    def unbilled_month(self, period: str) -> str:
        """The absolute month a period resolves to now."""
        month = self.config.current_month
        return month if period == "current" else previous_month(month)

    # ---- exports ----------------------------------------------------------------------
    def start_export(self, action: str, body: dict[str, Any]) -> ExportAnswer:
        """Validate an export body and start its operation (or refuse it: 400, 429)."""
        attribute_set = body.get("attributeSet", "full")
        if attribute_set not in {"full", "basic"}:
            return ExportAnswer.bad_request("attributeSet must be full or basic")
        dataset, kind = action.split("/")
        partition: tuple[str, ...] | None
        if kind == "billed":
            invoice = body.get("invoiceId")
            if not isinstance(invoice, str) or not _INVOICE.match(invoice):
                return ExportAnswer.bad_request("invoiceId is missing or malformed")
            partition = self._billed_key(invoice, attribute_set, dataset)
        else:
            currency, period = body.get("currencyCode"), body.get("billingPeriod")
            if not isinstance(currency, str) or not _CURRENCY.match(currency):
                return ExportAnswer.bad_request("currencyCode is missing or malformed")
            if period not in {"current", "last"}:
                return ExportAnswer.bad_request("billingPeriod must be current or last")
            partition = self._unbilled_key(period, currency, attribute_set, dataset)
        op = Operation(str(uuid.uuid4()), action, partition, iso_time(self.now()))
        busy = self.pace.admit(op.id)
        if busy is not None:
            error = graph_error("TooManyRequests", "Too many exports are running; retry later")
            return ExportAnswer(429, error, retry_after=busy)
        with self._lock:
            self._operations[op.id] = op
        return ExportAnswer(202, operation_id=op.id)

    def poll(self, operation_id: str) -> tuple[int, dict[str, Any], int | None]:
        """Advance an operation by one poll: (status code, body, Retry-After)."""
        with self._lock:
            op = self._operations.get(operation_id)
            if op is None:
                return 404, graph_error("NotFound", "operation not found"), None
            if op.gone:
                return 410, graph_error("Gone", "operation expired"), None
            op.polls += 1
            base: dict[str, Any] = {
                "id": op.id,
                "createdDateTime": op.created,
                "lastActionDateTime": iso_time(self.now()),
            }
            status = self.pace.phase(op.id, op.polls)
            if status != "done":
                running = {
                    "@odata.type": "#microsoft.graph.partners.billing.runningOperation",
                    **base,
                    "status": status,
                }
                return 200, running, self.config.retry_after_seconds
            partition = op.partition
            code = "5000" if partition is None else self.failing.get(partition[1])
            if partition is None or code is not None:
                message = "No data available" if code == "5000" else "Export failed"
                error = {"message": message, "code": code}
                failed = {"@odata.type": FAILED, **base, "status": "failed", "error": error}
                return 200, failed, None
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
                body["resourceLocation"] = self.manifest(partition, op.id)
            return 200, body, None

    def expire_operations(self) -> None:
        """Make every known operation answer 410 Gone."""
        with self._lock:
            for op in self._operations.values():
                op.gone = True

    def manifest_for_operation(self, operation_id: str) -> dict[str, Any] | None:
        """The manifest of a succeeded operation (the linked-manifest mode)."""
        with self._lock:  # as an inline manifest is made: one upload to Azurite at a time
            op = self._operations.get(operation_id)
            if op is None or op.gone or op.partition is None:
                return None
            return self.manifest(op.partition, op.id)

    def directory(self, key: tuple[str, ...], data: PartitionData) -> tuple[str, str]:
        """(container, directory path) of a partition, Hive-style as the real service names them."""
        dataset, kind = key[0].split("/")
        short = "usage" if dataset == "usage" else "recon"
        if kind == "billed":
            return f"billed{short}", (
                f"v1/PartnerTenantId={PARTNER_TENANT}/BillingMonth={data.billing_month}/InvoiceId={key[1]}"
                f"/InvoiceVersion={data.billing_month}{data.version:02d}/Fragment={key[2]}/PartitionType=default"
            )
        return f"unbilled{short}", (
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
            sas = self.sas.sign(
                f"/{container}/{directory}", self.now() + self.config.sas_lifetime_seconds
            )
        return {
            "id": manifest_id,
            "createdDateTime": iso_time(self.now()),
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

    # ---- blobs ----------------------------------------------------------------------------
    def blob_for(self, path: str, query: str) -> tuple[int, bytes | None]:
        """Check the SAS for ``path`` and return (status, bytes)."""
        directory, name = path.rsplit("/", 1)
        if not self.sas.allows(directory, query):
            return 403, None
        with self._lock:
            for key, data in self._partitions.items():
                container, dir_path = self.directory(key, data)
                if f"/{container}/{dir_path}" == directory and name in data.blobs:
                    return 200, data.blobs[name]
        return 404, None

    # ---- the month roll-over ------------------------------------------------------------
    def roll_month(self, invoice_lines: int = 200) -> str:
        """Close the month ``last`` answers: it gets an invoice, ``current`` becomes ``last``.

        The sandbox's clock moves 30 days on (tokens and SAS issued before may now be expired)
        and its billing month one month; returns the new invoice's id.
        """
        with self._lock:
            self.clock_offset_seconds += 30 * 86_400
            closed = previous_month(self.config.current_month)
            number = 1 + max(int(i[1:]) for i in self.config.invoices if i[1:].isdigit())
            invoice = f"G{number:09d}"
            self.config.invoices[invoice] = InvoiceSpec(closed, invoice_lines, 2)
            self.config.current_month = shift_month(self.config.current_month, 1)
            return invoice


def iso_time(epoch: float) -> str:
    """An epoch as Graph writes timestamps (milliseconds and Z)."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def graph_error(code: str, message: str) -> dict[str, Any]:
    """The standard Graph error envelope."""
    return {
        "error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}
    }
