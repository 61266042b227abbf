"""The billed planner: coverage floors, settled bookmarks, remembered 5000s, refresh.

Pure decisions with an injected calendar: no Singer, no HTTP.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest

from tap_partner_billing.sync.planner import (
    BilledPlanner,
    Decision,
    Document,
    forget_no_data,
    refresh_warnings,
    remembered_no_data,
    skipped_lines,
)

TODAY = date(2026, 11, 15)
DONE = {"etag": "e1", "line_count": 12, "blob_list": "x"}  # exported completely


def planner(dataset: str = "usage", today: date = TODAY, **kwargs: Any) -> BilledPlanner:
    return BilledPlanner(dataset, today=today, recheck_months=kwargs.pop("recheck", 2), **kwargs)


def doc(month: str | None, invoice_id: str = "G000000001", **kwargs: Any) -> Document:
    return Document(invoice_id, month, **kwargs)


@pytest.mark.parametrize(
    ("dataset", "month", "expected"),
    [
        ("usage", "202208", Decision.BELOW_FLOOR),
        ("usage", "202209", Decision.EXPORT),
        ("usage", "202306", Decision.EXPORT),
        ("reconciliation", "202306", Decision.BELOW_FLOOR),
        ("reconciliation", "202401", Decision.BELOW_FLOOR),
        ("reconciliation", "202402", Decision.EXPORT),
        ("reconciliation", None, Decision.EXPORT),  # month unknown: no floor can apply
    ],
)
def test_each_dataset_has_its_own_floor(dataset: str, month: str | None, expected: object) -> None:
    assert planner(dataset).plan(doc(month), {}).decision is expected


def test_invoice_ids_exports_below_the_floor_and_says_so() -> None:
    plan = planner("reconciliation").plan(doc("202306", explicit=True), {})
    assert plan.decision is Decision.EXPORT
    assert plan.floor_overridden
    assert not planner().plan(doc("202306", explicit=True), {}).floor_overridden


def test_the_bookmarked_month_wins_over_the_listed_one() -> None:
    # Once exported, the manifest's BillingMonth is what the bookmark records.
    plan = planner().plan(doc("202610"), {**DONE, "billing_month": "202601"})
    assert (plan.decision, plan.month) == (Decision.SETTLED, "202601")


def test_the_calendar_decides_what_is_recent() -> None:
    bookmark = {**DONE, "billing_month": "202609"}
    assert planner().plan(doc("202609"), bookmark).decision is Decision.EXPORT  # 202609 ≥ 202609
    assert planner(today=date(2026, 12, 1)).plan(doc("202609"), bookmark).decision is (
        Decision.SETTLED
    )
    assert planner(recheck=0).plan(doc("202609"), bookmark).decision is Decision.SETTLED


@pytest.mark.parametrize(
    ("bookmark", "expected", "why"),
    [
        ({}, Decision.EXPORT, "never exported completely"),
        ({**DONE, "progress": {}}, Decision.EXPORT, "its last emission was interrupted"),
        ({"pending_operations": {"export": {}}}, Decision.EXPORT, "an export operation"),
        (DONE, Decision.SETTLED, "already synced (eTag e1, 12 lines)"),
        ({"no_data": {"why": "billing month 2024-05 is past"}}, Decision.NO_DATA, "2024-05"),
        ({"no_usage": "credit_note"}, Decision.NO_DATA, "credit_note has no usage"),  # 0.x state
        ({"pending_operations": {}, "no_usage": "x"}, Decision.NO_DATA, "has no usage"),
    ],
)
def test_bookmarks_decide_below_the_window(
    bookmark: dict[str, Any], expected: Decision, why: str
) -> None:
    plan = planner().plan(doc("202405"), bookmark)
    assert plan.decision is expected
    assert why in plan.why


@pytest.mark.parametrize(
    "bookmark",
    [DONE, {"no_data": {"why": "x"}}, {"no_usage": "adjustment_note"}, {}],
    ids=["settled", "remembered-5000", "remembered-note", "new"],
)
def test_refresh_asks_again_whatever_the_bookmark_says(bookmark: dict[str, Any]) -> None:
    plan = planner(refresh_ids=frozenset({"G000000001"})).plan(doc("202405"), bookmark)
    assert (plan.decision, plan.refresh, plan.why) == (
        Decision.EXPORT,
        True,
        "refresh_invoice_ids names it",
    )
    other = planner(refresh_ids=frozenset({"G000000009"})).plan(doc("202405"), bookmark)
    assert not other.refresh


@pytest.mark.parametrize("bookmark", [{}, {"no_data": {"why": "x"}}], ids=["new", "5000"])
def test_refresh_does_not_lift_a_floor(bookmark: dict[str, Any]) -> None:
    # (A document Graph served, with an eTag, is never floored: see below.)
    plan = planner(refresh_ids=frozenset({"G000000001"})).plan(doc("202001"), bookmark)
    assert (plan.decision, plan.refresh) == (Decision.BELOW_FLOOR, True)


@pytest.mark.parametrize(
    ("dataset", "month", "recheck", "kind", "bookmark", "remembered"),
    [
        ("usage", "202405", 2, "invoice", {}, True),  # old: asking again cannot help
        ("usage", "202609", 2, "invoice", {}, False),  # recent: billed data lags a day
        ("usage", "202608", 2, "invoice", {}, True),
        ("usage", "202610", 0, "invoice", {}, False),  # the month just closed, even with 0
        ("usage", "202609", 0, "invoice", {}, True),
        ("usage", None, 2, "invoice", {}, False),  # month unknown: asked again
        ("usage", "202405", 2, "invoice", DONE, False),  # it has data: settled, not no-data
        ("usage", "202610", 2, "adjustment_note", {}, True),  # a note never has usage
        ("reconciliation", "202610", 2, "adjustment_note", {}, False),  # …but has lines
    ],
)
def test_which_5000s_are_remembered(
    *,
    dataset: str,
    month: str | None,
    recheck: int,
    kind: str,
    bookmark: dict[str, Any],
    remembered: bool,
) -> None:
    memory = planner(dataset, recheck=recheck).no_data_memory(
        doc(month, document_type=kind), bookmark, "No data available", "2026-11-15T00:00:00"
    )
    assert (memory is not None) == remembered
    if memory is not None:
        assert memory["code"] == "5000"
        assert memory["at"] == "2026-11-15T00:00:00"
        assert remembered_no_data({"no_data": memory}) == memory["why"]
        after = planner(dataset, recheck=recheck).plan(
            doc(month, document_type=kind), {"no_data": memory}
        )
        assert after.decision is Decision.NO_DATA


@pytest.mark.parametrize(
    ("dataset", "month", "kind", "bookmark", "explicit", "expected"),
    [
        ("usage", "202610", "adjustment_note", {}, False, "documentType adjustment_note"),
        ("reconciliation", "202610", "adjustment_note", {}, False, "billing month 2026-10"),
        ("usage", "202208", "invoice", {}, True, "before the first Graph serves"),  # below floor
        ("usage", "202610", "invoice", {}, False, "billing month 2026-10 is recent"),
        ("usage", "202405", "invoice", {}, False, None),  # in coverage, long closed
        ("usage", "202610", "invoice", DONE, False, None),  # it had data before
        ("usage", None, "invoice", {}, False, None),  # month unknown
    ],
)
def test_which_5000s_are_expected(
    *,
    dataset: str,
    month: str | None,
    kind: str,
    bookmark: dict[str, Any],
    explicit: bool,
    expected: str | None,
) -> None:
    planned = planner(dataset)
    document = doc(month, document_type=kind, explicit=explicit)
    why = planned.no_data_expected(planned.plan(document, bookmark), bookmark)
    assert (why is None) == (expected is None)
    assert expected is None or expected in str(why)


def test_forget_no_data_drops_both_markers() -> None:
    bookmark: dict[str, Any] = {"no_data": {}, "no_usage": "x", "etag": "e"}
    forget_no_data(bookmark)
    assert bookmark == {"etag": "e"}


def test_one_line_per_reason_with_the_count_and_the_ids() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("202206", {}),
        ("202306", {}),
        ("202405", {"no_data": {"why": "x"}}),
        ("202405", DONE),
        ("202610", {}),
    ]
    plans = [
        planner("reconciliation").plan(doc(month, f"G00000000{n}"), bookmark)
        for n, (month, bookmark) in enumerate(cases)
    ]
    refreshed = planner("reconciliation", refresh_ids=frozenset({"G000000000"}))
    plans[0] = refreshed.plan(plans[0].document, {})
    lines = skipped_lines("billed_reconciliation", "reconciliation", plans)
    assert lines == [
        (
            logging.INFO,
            (
                "billed_reconciliation: 2 document(s) not exported: their billing months are "
                "before 2024-02, the first Graph serves billed invoice reconciliation for "
                "(Microsoft: older or legacy invoices fail with 5000): G000000000, G000000001; "
                "invoice_ids exports one anyway"
            ),
        ),
        (
            logging.INFO,
            (
                "billed_reconciliation: 1 document(s) not asked again: their exports answered 5000 "
                "(no data) when asking again could not help: G000000002; refresh_invoice_ids asks "
                "again"
            ),
        ),
        (
            logging.WARNING,
            (
                "billed_reconciliation: refresh_invoice_ids names G000000000, but its billing "
                "month 2022-06 is before 2024-02; list it in invoice_ids to export it anyway"
            ),
        ),
    ]
    assert skipped_lines("billed_usage", "usage", [plans[4]]) == []


def test_many_skipped_ids_are_cut_short() -> None:
    plans = [planner().plan(doc("202001", f"G{n:09d}"), {}) for n in range(25)]
    [(_, line)] = skipped_lines("billed_usage", "usage", plans)
    assert "25 document(s)" in line
    assert "G000000019, … (25 in all)" in line
    assert "G000000020" not in line


def test_a_refresh_id_the_run_does_not_export_is_a_warning() -> None:
    assert refresh_warnings(["G000000001", "G000000002"], ["G000000001"]) == [
        (
            "refresh_invoice_ids: G000000002 is not a document this run exports (not in "
            "invoice_ids, and not a listed G… invoice from start_date on); nothing is asked again "
            "for it"
        )
    ]


def test_a_document_graph_served_is_never_floored_by_its_bookmarked_month() -> None:
    # The list's month decides whether a document is exported at all (docs/invoices.md rule
    # 4): a manifest filing it under an earlier month than the list's does not floor it.
    plan = planner().plan(doc("202209"), {**DONE, "billing_month": "202208"})
    assert (plan.decision, plan.month) == (Decision.SETTLED, "202208")


@pytest.mark.parametrize(
    "bookmark",
    [{**DONE, "billing_month": "202208"}, {"pending_operations": {"export": {"id": "op"}}}],
    ids=["exported", "pending"],
)
def test_a_document_served_or_asked_for_is_not_floored(bookmark: dict[str, Any]) -> None:
    # Listed before the floor, but Graph served it or an operation (saved by an older
    # version) is pending: it stays a partition, so the operation is resumed and cleared.
    plan = planner(recheck=0).plan(doc("202208"), bookmark)
    assert plan.decision is not Decision.BELOW_FLOOR
    assert not plan.floor_overridden


def test_the_floor_reads_the_listed_month_without_an_export() -> None:
    bookmark = {"billing_month": "202209", "no_data": {"why": "x"}}
    assert planner().plan(doc("202208"), bookmark).decision is Decision.BELOW_FLOOR


def test_invoice_ids_below_the_floor_is_warned_about_when_posted_ahead() -> None:
    # The run's scheduler POSTs before the stream's turn, so the bookmark already holds a
    # pending operation when the stream plans again: the warning must still be given.
    pending = {"pending_operations": {"export": {"operation_url": "https://graph.test/op"}}}
    plan = planner().plan(doc("202208", explicit=True), pending)
    assert plan.decision is Decision.EXPORT
    assert plan.floor_overridden
    # Once Graph has served it (an eTag), it is no longer an override that may answer 5000.
    assert not planner().plan(doc("202208", explicit=True), {"etag": "e1"}).floor_overridden
