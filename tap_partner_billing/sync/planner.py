"""Which billed documents a run asks Graph for, and why not the others. No Singer, no I/O.

One decision per (dataset, document), from the document's facts, its bookmark, the settings
and today's date (a parameter: tests and a run-wide scheduler pass their own calendar):

- *below floor*: its billing month is before the first one Graph's export serves for the
  dataset (:data:`COVERAGE_FLOORS`), and ``invoice_ids`` does not name it;
- *no data*: its export answered ``5000`` when asking again could not help, remembered in its
  bookmark (``no_data``) until ``refresh_invoice_ids`` names it;
- *settled*: exported completely, and its billing month is past the re-check window;
- *export*: everything else (never exported, interrupted, recent, or named by
  ``refresh_invoice_ids``).

Unbilled partitions have no decision: every billing period of every currency is exported.
The streams turn their decisions into :class:`PlannedExport` s, which the run's scheduler
starts ahead (``export_stream.start_exports_ahead``, docs/scheduler.md).

See docs/coverage-and-refresh.md.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_partner_billing.dates import month_of_date, shift_month

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import date

    from tap_partner_billing.service.export import ExportRequest
    from tap_partner_billing.sync.invoice_index import InvoiceIndex

# The first billing month (YYYYMM) Graph's billed export serves, per dataset. Partner Center:
# billed usage v2 covers billing periods from September 2022, billed invoice reconciliation v2
# from February 2024 ("before …: use [the v1] API exclusively"); older or legacy-commerce
# invoices are accepted (202) and then fail with 5000, every time (reference §3.1).
COVERAGE_FLOORS: Mapping[str, str] = {"usage": "202209", "reconciliation": "202402"}
DATASET_NAMES: Mapping[str, str] = {
    "usage": "billed usage",
    "reconciliation": "billed invoice reconciliation",
}
# A 5000 on the invoice of the month just closed is asked again even with recheck_months 0:
# billed data lags about a day behind the invoice.
MIN_NO_DATA_WINDOW_MONTHS = 1
NO_DATA_KEYS = ("no_data", "no_usage")  # no_usage: what bookmarks of 0.x releases hold
MAX_NO_DATA_MESSAGE_CHARS = 200
MAX_IDS_LOGGED = 20  # per once-a-run line
INVOICE = "invoice"


class Decision(enum.Enum):
    """What a run does with one billed document of one dataset."""

    EXPORT = "export"
    SETTLED = "settled"
    BELOW_FLOOR = "below floor"
    NO_DATA = "no data"


@dataclass(frozen=True)
class Document:
    """The facts about a billed document the decision needs (from the invoice list)."""

    invoice_id: str
    billing_month: str | None  # YYYYMM as the list gives it (None: not listed, or no dates)
    document_type: str = INVOICE
    explicit: bool = False  # named by invoice_ids

    @property
    def is_note(self) -> bool:
        """A credit or adjustment note (never has usage), not an invoice."""
        return self.document_type.lower() != INVOICE


@dataclass(frozen=True)
class Plan:
    """The decision for one document, with what the log says about it."""

    document: Document
    decision: Decision
    why: str  # a clause for the log: "never exported completely", …
    month: str | None  # the billing month the decision used (bookmark's, else the list's)
    refresh: bool = False  # named by refresh_invoice_ids
    floor_overridden: bool = False  # below the floor, exported because invoice_ids names it


@dataclass(frozen=True)
class PlannedExport:
    """An export a run will ask for, and where its operation URL is kept (Singer state)."""

    request: ExportRequest
    pending: dict[str, Any]  # the partition's ``pending_operations``
    slot: str  # its key there: ``export`` (billed) or the billing period (unbilled)


# How the log ends the line of a 5000 remembered in a bookmark.
REMEMBERED_NO_DATA = (
    "remembered in its bookmark as having no data, not asked again (refresh_invoice_ids asks again)"
)


def month_text(month: str) -> str:
    """``202209`` → ``2022-09``."""
    return f"{month[:4]}-{month[4:]}"


@dataclass(frozen=True)
class BilledPlanner:
    """The per-document decisions of one billed dataset on one day.

    Args:
        dataset: ``usage`` or ``reconciliation`` (keys of :data:`COVERAGE_FLOORS`).
        today: The run's calendar date; it decides which billing months are recent.
        recheck_months: Billing months this many back from today's are exported again.
        refresh_ids: ``refresh_invoice_ids``: asked again whatever their bookmark says.
    """

    dataset: str
    today: date
    recheck_months: int
    refresh_ids: frozenset[str] = frozenset()

    @property
    def floor(self) -> str:
        """The first billing month Graph serves for this dataset (``YYYYMM``)."""
        return COVERAGE_FLOORS[self.dataset]

    @property
    def this_month(self) -> str:
        """Today's month as ``YYYYMM``."""
        return month_of_date(self.today)

    def is_recent(self, month: str | None, months: int | None = None) -> bool:
        """Whether ``month`` is within ``months`` (default ``recheck_months``) of today's."""
        window = self.recheck_months if months is None else months
        if window <= 0 or not month:
            return False
        return month >= shift_month(self.this_month, -window)

    @staticmethod
    def month_of(document: Document, bookmark: Mapping[str, Any]) -> str | None:
        """The document's billing month: its manifest's (bookmarked), else the list's."""
        return str(bookmark.get("billing_month") or document.billing_month or "") or None

    def below_floor(self, document: Document, bookmark: Mapping[str, Any]) -> bool:
        """Whether the list files ``document`` before the floor, and Graph was never involved.

        The list's month decides whether a document is exported at all (``docs/invoices.md``);
        the bookmarked (manifest's) month only what is re-checked. A document Graph served
        (an eTag) or was asked for (a pending operation, perhaps saved by an older version)
        is never floored: it stays a partition, so the operation is resumed and cleared.
        """
        if "etag" in bookmark or bookmark.get("pending_operations"):
            return False
        return self.listed_before_floor(document)

    def listed_before_floor(self, document: Document) -> bool:
        """Whether the list's month of ``document`` is before the dataset's floor."""
        return document.billing_month is not None and document.billing_month < self.floor

    def plan(self, document: Document, bookmark: Mapping[str, Any]) -> Plan:
        """The decision for ``document`` given its bookmark (``{}`` if it has none)."""
        month = self.month_of(document, bookmark)
        refresh = document.invoice_id in self.refresh_ids
        below = self.below_floor(document, bookmark)
        if below and not document.explicit:
            listed = document.billing_month or ""
            why = f"billing month {month_text(listed)} is before {month_text(self.floor)}"
            return Plan(document, Decision.BELOW_FLOOR, why, document.billing_month, refresh)
        asked = refresh or bool(bookmark.get("pending_operations"))
        remembered = None if asked else remembered_no_data(bookmark)
        if remembered is not None:
            return Plan(document, Decision.NO_DATA, remembered, month)
        reason = self._why_export(bookmark, month, refresh=refresh)
        if reason is None:
            settled = (
                f"already synced (eTag {bookmark['etag']}, {bookmark.get('line_count')} lines)"
            )
            return Plan(document, Decision.SETTLED, settled, month)
        # invoice_ids overrides the floor: warned about whether or not this run already POSTed
        # it ahead (a pending operation), but not once Graph has served it (an eTag).
        overridden = (
            document.explicit and "etag" not in bookmark and self.listed_before_floor(document)
        )
        return Plan(document, Decision.EXPORT, reason, month, refresh, floor_overridden=overridden)

    def _why_export(
        self, bookmark: Mapping[str, Any], month: str | None, *, refresh: bool
    ) -> str | None:
        """Why a document inside its floor is exported (None: it is settled)."""
        if refresh:
            return "refresh_invoice_ids names it"
        if bookmark.get("pending_operations"):
            return "an export operation was started before"
        if "etag" not in bookmark:
            return "never exported completely"
        if "progress" in bookmark:
            return "its last emission was interrupted"
        if self.is_recent(month):
            return f"billing month {month} is recent; checking for re-issued data"
        return None

    def no_data_expected(self, plan: Plan, bookmark: Mapping[str, Any]) -> str | None:
        """Why a 5000 for ``plan`` is to be expected (None: it is not, worth a warning).

        A note's usage never exists; a document below the coverage floor is exported only
        because ``invoice_ids`` names it; a recent invoice never exported may not be ready
        (billed data lags about a day). An invoice exported before, of an unknown month, or
        in coverage and past the re-check window, answering "no data" is unexpected.
        """
        document = plan.document
        if self.dataset == "usage" and document.is_note:
            return f"documentType {document.document_type} has no usage"
        if plan.floor_overridden:
            return "its billing month is before the first Graph serves"
        month = self.month_of(document, bookmark)
        window = max(self.recheck_months, MIN_NO_DATA_WINDOW_MONTHS)
        if month is not None and "etag" not in bookmark and self.is_recent(month, window):
            return f"billing month {month_text(month)} is recent and billed data lags a day"
        return None

    def no_data_memory(
        self, document: Document, bookmark: Mapping[str, Any], message: str, at: str
    ) -> dict[str, Any] | None:
        """What to remember after the export answered 5000 (None: ask again next run).

        A note's usage never exists. Otherwise a 5000 is remembered once the billing month
        is past the re-check window (at least the month just closed: billed data lags about a
        day), and only when the document has no completed export (one that has is settled).
        """
        if self.dataset == "usage" and document.is_note:
            why = f"documentType {document.document_type} has no usage"
        else:
            month = self.month_of(document, bookmark)
            window = max(self.recheck_months, MIN_NO_DATA_WINDOW_MONTHS)
            if month is None or "etag" in bookmark or self.is_recent(month, window):
                return None
            why = f"billing month {month_text(month)} is past the re-check window"
        return {
            "code": "5000",
            "message": message[:MAX_NO_DATA_MESSAGE_CHARS],
            "why": why,
            "at": at,
        }


def remembered_no_data(bookmark: Mapping[str, Any]) -> str | None:
    """Why the bookmark says the export has no data (None: it does not say so)."""
    marker = bookmark.get("no_data")
    if isinstance(marker, dict):
        return str(marker.get("why") or "its export answered 5000 before")
    if bookmark.get("no_usage"):
        return f"documentType {bookmark['no_usage']} has no usage"
    return None


def forget_no_data(bookmark: dict[str, Any]) -> None:
    """Drop what a bookmark remembers about 'no data' (it is asked again, or it has data)."""
    for key in NO_DATA_KEYS:
        bookmark.pop(key, None)


def billed_documents(invoice_index: InvoiceIndex) -> list[Document]:
    """The documents the billed streams consider: explicit ids and discovered ones."""
    explicit = set(invoice_index.explicit_ids)
    return [
        Document(
            invoice_id,
            invoice_index.month_of(invoice_id),
            invoice_index.document_type_of(invoice_id),
            explicit=invoice_id in explicit,
        )
        for invoice_id in invoice_index.billed_invoice_ids
    ]


def skipped_lines(stream: str, dataset: str, plans: Iterable[Plan]) -> list[tuple[int, str]]:
    """(log level, line) per reason documents are skipped without a request, once a run."""
    plans = list(plans)
    lines = []
    below = [p for p in plans if p.decision is Decision.BELOW_FLOOR]
    if below:
        floor = month_text(COVERAGE_FLOORS[dataset])
        lines.append(
            (
                logging.INFO,
                (
                    f"{stream}: {len(below)} document(s) not exported: their billing months are "
                    f"before {floor}, the first Graph serves {DATASET_NAMES[dataset]} for "
                    f"(Microsoft: older or legacy invoices fail with 5000): {_ids(below)}; "
                    "invoice_ids exports one anyway"
                ),
            )
        )
    remembered = [p for p in plans if p.decision is Decision.NO_DATA]
    if remembered:
        lines.append(
            (
                logging.INFO,
                (
                    f"{stream}: {len(remembered)} document(s) not asked again: their exports "
                    f"answered 5000 (no data) when asking again could not help: "
                    f"{_ids(remembered)}; refresh_invoice_ids asks again"
                ),
            )
        )
    lines.extend(
        (
            logging.WARNING,
            (
                f"{stream}: refresh_invoice_ids names {p.document.invoice_id}, but its {p.why}; "
                "list it in invoice_ids to export it anyway"
            ),
        )
        for p in below
        if p.refresh
    )
    return lines


def floor_warning(plan: Plan, dataset: str) -> str:
    """What the log says when ``invoice_ids`` exports a document below its dataset's floor."""
    return (
        f"billing month {month_text(plan.document.billing_month or '')} is before "
        f"{month_text(COVERAGE_FLOORS[dataset])}, the first Graph serves "
        f"{DATASET_NAMES[dataset]} for; exported because invoice_ids names it (Graph is "
        "likely to answer 5000)"
    )


def refresh_warnings(refresh_ids: Iterable[str], exported: Iterable[str]) -> list[str]:
    """A warning for each ``refresh_invoice_ids`` entry the billed streams do not export."""
    chosen = set(exported)
    return [
        f"refresh_invoice_ids: {invoice_id} is not a document this run exports (not in "
        "invoice_ids, and not a listed G… invoice from start_date on); nothing is asked "
        "again for it"
        for invoice_id in refresh_ids
        if invoice_id not in chosen
    ]


def _ids(plans: list[Plan]) -> str:
    ids = [p.document.invoice_id for p in plans]
    shown = ", ".join(ids[:MAX_IDS_LOGGED])
    return shown if len(ids) <= MAX_IDS_LOGGED else f"{shown}, … ({len(ids)} in all)"
