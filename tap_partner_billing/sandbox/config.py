"""The sandbox's knobs: invoices, unbilled snapshots, timing, faults-free defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

# What a POST meets when max_running_exports are running (see pace.py).
WHEN_BUSY = ("throttle", "queue")


@dataclass
class InvoiceSpec:
    """A fake invoice: its billing month, how many usage lines and blobs, and its kind.

    Adjustment notes (amendments) carry reconciliation lines only; their usage export
    answers "no data", as a credit note has no metered usage.
    """

    billing_month: str
    lines: int
    blobs: int = 3
    document_type: str = "invoice"
    amends: str | None = None


def shift_month(month: str, months: int) -> str:
    """``YYYYMM`` moved by ``months`` (the sandbox's own calendar, not the tap's)."""
    index = int(month[:4]) * 12 + int(month[4:]) - 1 + months
    return f"{index // 12:04d}{index % 12 + 1:02d}"


def previous_month(month: str) -> str:
    """``202601`` → ``202512``."""
    return shift_month(month, -1)


def this_month() -> str:
    """The current UTC month as ``YYYYMM``."""
    return datetime.now(timezone.utc).strftime("%Y%m")


def default_invoices(current_month: str) -> dict[str, InvoiceSpec]:
    """Two closed invoices before last month, an amendment, and an old one before them."""
    return {
        "G000000000": InvoiceSpec(shift_month(current_month, -6), 60, 1),
        "G000000001": InvoiceSpec(shift_month(current_month, -3), 240, 3),
        "G000000002": InvoiceSpec(shift_month(current_month, -2), 180, 3),
        "G000000003": InvoiceSpec(
            shift_month(current_month, -3), 24, 1, "adjustment_note", "G000000001"
        ),
    }


# The documented mode's invoices: the documents of Microsoft's documented invoice list
# (microsoft/partner_center_invoices*.json), dated into the covered period (billing month
# 202402 for the void note and its adjustment note, 202403 for the invoice on page 2).
DOCUMENTED_START_MONTH = "2024-02"


def documented_invoices() -> dict[str, InvoiceSpec]:
    """The G… documents of the documented list, with the data the sandbox serves for them."""
    return {
        "G000024130": InvoiceSpec("202402", 120, 2, "void_note"),
        "G000024131": InvoiceSpec("202402", 40, 1, "adjustment_note", "G000024130"),
        "G000024132": InvoiceSpec("202403", 80, 2),
    }


@dataclass
class SandboxConfig:
    """Every knob of the sandbox (see docs/sandbox.md).

    Months are relative to ``current_month`` (default: this UTC month), so the data always
    looks recent: ``current`` is this month, ``last`` the one before (not invoiced yet), and
    the invoices cover the months before that.
    """

    seed: int = 7
    tenant_id: str = "contoso-demo.example"
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    current_month: str = field(default_factory=this_month)
    invoices: dict[str, InvoiceSpec] = field(default_factory=dict)  # empty: default_invoices
    # Listed by Partner Center, but legacy (D…): Graph has no export data for them.
    legacy_invoices: dict[str, str] = field(default_factory=lambda: {"D02005YFHI": ""})
    # (period, currency) → (lines, blobs); other currencies answer failed/5000.
    unbilled: dict[tuple[str, str], tuple[int, int]] = field(
        default_factory=lambda: {("current", "USD"): (150, 2), ("last", "USD"): (120, 2)}
    )
    polls_before_success: int = 2
    retry_after_seconds: int = 1
    # The service's time scale (see pace.py): each export runs this many seconds of wall time
    # (None: it succeeds after polls_before_success polls instead), at most
    # max_running_exports at once (None: no cap); a POST that finds them all busy is answered
    # 429 + Retry-After (when_busy="throttle") or accepted and queued ("queue").
    export_seconds: float | None = None
    max_running_exports: int | None = None
    when_busy: str = "throttle"
    # The Retry-After of that 429 (None: the seconds until the first running export ends).
    throttle_retry_after_seconds: int | None = None
    manifest_mode: str = "inline"  # or "linked"
    sas_lifetime_seconds: int = 3600
    token_lifetime_seconds: int = 3600
    bandwidth_bytes_per_second: int | None = None
    invoice_page_size: int = 3  # the invoice list is paged with a continuation token
    # A planted discrepancy: invoice id → amount Partner Center's listed total is off from the
    # sum of the invoice's reconciliation lines. Empty (the default): every invoice reconciles.
    total_discrepancies: dict[str, Decimal] = field(default_factory=dict)
    # The application permissions in Graph tokens; () is an app without admin consent,
    # whose exports and operation reads Graph answers 403.
    graph_roles: tuple[str, ...] = ("PartnerBilling.Read.All",)
    # Serve Microsoft's documented responses (documented.py): the documented invoice list
    # and its documents instead of the generated ones, operations and manifests shaped like
    # the documented examples.
    documented: bool = False

    def __post_init__(self) -> None:
        check_pace(self)
        if self.documented:
            self.invoices = self.invoices or documented_invoices()
            self.legacy_invoices = {}  # the documented list names its own (D02005YFHI)
        if not self.invoices:
            self.invoices = default_invoices(self.current_month)
        for invoice, month in list(self.legacy_invoices.items()):
            self.legacy_invoices[invoice] = month or shift_month(self.current_month, -2)

    @property
    def start_month(self) -> str:
        """A ``start_date`` (YYYY-MM) that leaves out the old invoice G000000000.

        In the documented mode: the documented documents' first month.
        """
        if self.documented:
            return DOCUMENTED_START_MONTH
        month = shift_month(self.current_month, -4)
        return f"{month[:4]}-{month[4:]}"


def check_pace(config: SandboxConfig) -> None:
    """Refuse pace knobs that cannot work together, naming the knob."""
    if config.export_seconds is not None and config.export_seconds < 0:
        msg = f"export_seconds must be 0 or more, not {config.export_seconds}"
        raise ValueError(msg)
    if config.max_running_exports is not None:
        if config.max_running_exports < 1:
            msg = f"max_running_exports must be 1 or more, not {config.max_running_exports}"
            raise ValueError(msg)
        if config.export_seconds is None:
            msg = "max_running_exports needs export_seconds (exports that take wall time)"
            raise ValueError(msg)
    if config.when_busy not in WHEN_BUSY:
        msg = f"when_busy must be one of {', '.join(WHEN_BUSY)}, not {config.when_busy!r}"
        raise ValueError(msg)
