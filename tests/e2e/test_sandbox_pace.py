"""The sandbox at the service's time scale: export latency, the running-export cap, the queue.

The schedule is checked on a clock the test moves (no waiting); then once over real HTTPS,
with exports of 1 s and many threads polling at once.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tap_partner_billing.sandbox.__main__ import main as sandbox_main
from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.pace import ExportPace
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import BILLING, Sandbox
from tap_partner_billing.service.auth import GRAPH_SCOPE

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_partner_billing.sandbox.tls import TlsFiles

pytestmark = pytest.mark.e2e


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pace(**knobs: Any) -> tuple[ExportPace, Clock]:
    config, clock = SandboxConfig(**knobs), Clock()
    return ExportPace(lambda: config, clock), clock


def test_an_export_runs_its_seconds_from_its_post_polled_or_not() -> None:
    exports, clock = pace(export_seconds=10)
    assert exports.admit("a") is None
    assert exports.phase("a", polls=1) == "running"
    clock.now += 9.9
    assert exports.phase("a", polls=50) == "running"  # polls do not hurry it
    clock.now += 0.1
    assert exports.phase("a", polls=51) == "done"


def test_a_full_service_answers_429_with_the_wait_until_a_slot_frees() -> None:
    exports, clock = pace(export_seconds=10, max_running_exports=2)
    assert exports.admit("a") is None
    clock.now += 3
    assert exports.admit("b") is None
    assert exports.admit("c") == 7  # a ends in 7 s
    clock.now += 7
    assert exports.phase("a", polls=1) == "done"
    assert exports.admit("c") is None
    assert exports.admit("d") == 3  # b ends next
    assert [run.operation_id for run in exports.timeline()] == ["a", "b", "c"]
    fixed, _ = pace(export_seconds=10, max_running_exports=1, throttle_retry_after_seconds=30)
    assert fixed.admit("a") is None
    assert fixed.admit("b") == 30


def test_a_queueing_service_starts_each_export_when_a_slot_frees() -> None:
    exports, clock = pace(export_seconds=10, max_running_exports=2, when_busy="queue")
    for name in "abcde":
        assert exports.admit(name) is None  # every POST is accepted
    assert [exports.phase(name, polls=1) for name in "abcde"] == [
        "running",
        "running",
        "notStarted",
        "notStarted",
        "notStarted",
    ]
    clock.now += 35  # nobody asked in between: c, d, e still started when slots freed
    timeline = exports.timeline()
    assert [run.started for run in timeline] == [1000, 1000, 1010, 1010, 1020]
    assert [run.ends for run in timeline] == [1010, 1010, 1020, 1020, 1030]
    assert exports.admit("f") is None  # the service is idle now: f starts at once
    assert exports.phase("f", polls=1) == "running"
    assert exports.timeline()[-1].started == clock.now


def test_without_export_seconds_operations_keep_counting_polls() -> None:
    exports, _ = pace(polls_before_success=2)
    assert exports.admit("a") is None
    assert [exports.phase("a", polls=n) for n in (1, 2, 3)] == ["notStarted", "running", "done"]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"max_running_exports": 2}, "max_running_exports needs export_seconds"),
        ({"export_seconds": 1, "max_running_exports": 0}, "max_running_exports must be 1"),
        ({"export_seconds": -1}, "export_seconds must be 0 or more"),
        ({"export_seconds": 1, "when_busy": "drop"}, "when_busy must be one of throttle, queue"),
    ],
)
def test_pace_knobs_that_cannot_work_are_refused(knobs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxConfig(**knobs)


def test_the_command_refuses_a_cap_without_latency(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        sandbox_main(["--max-running-exports", "2"])
    assert exited.value.code == 2
    assert "max_running_exports needs export_seconds" in capsys.readouterr().err


@pytest.fixture
def timed(tls: TlsFiles, request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    when_busy, seconds = request.param
    config = SandboxConfig(
        export_seconds=seconds, max_running_exports=2, retry_after_seconds=0, when_busy=when_busy
    )
    server = SandboxServer(Sandbox(config), tls).start()
    yield server
    server.stop()


def post(server: SandboxServer, session: requests.Session, body: dict[str, str]) -> Any:
    url = f"{server.sandbox.graph_url}{BILLING}/usage/unbilled/export"
    return session.post(url, json=body, timeout=30)


def poll_until_done(session: requests.Session, url: str) -> tuple[list[str], float]:
    """Every status an operation answered, and when it first answered succeeded."""
    statuses: list[str] = []
    while True:
        answer = session.get(url, timeout=30)
        assert answer.status_code == 200, answer.text
        statuses.append(answer.json()["status"])
        if statuses[-1] != "notStarted" and statuses[-1] != "running":
            return statuses, time.time()
        assert answer.headers["Retry-After"] == "0"
        time.sleep(0.05)


def graph_session(server: SandboxServer) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would win over the session's bundle
    session.verify = str(server.tls.ca_bundle)
    issued = server.sandbox.tokens.issue(GRAPH_SCOPE, server.sandbox.config.client_id)
    assert issued is not None
    session.headers["Authorization"] = f"Bearer {issued[0]}"
    return session


# 2 s: the three POSTs must meet both others running, even on a busy machine.
@pytest.mark.parametrize("timed", [("throttle", 2)], indirect=True)
def test_over_https_the_cap_throttles_and_concurrent_polls_see_one_schedule(
    timed: SandboxServer,
) -> None:
    sb, session = timed.sandbox, graph_session(timed)
    bodies = [{"billingPeriod": p, "currencyCode": "USD"} for p in ("current", "last", "current")]
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda body: post(timed, graph_session(timed), body), bodies))
    assert sorted(a.status_code for a in answers) == [202, 202, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Retry-After"] == "2"
    assert refused.json()["error"]["code"] == "TooManyRequests"
    urls = [a.headers["Location"] for a in answers if a.status_code == 202]
    with ThreadPoolExecutor(8) as pool:  # four pollers per operation, at once
        results = list(pool.map(lambda url: poll_until_done(graph_session(timed), url), urls * 4))
    assert {statuses[-1] for statuses, _ in results} == {"succeeded"}
    runs = {run.operation_id: run for run in sb.pace.timeline()}
    for url, (_, done_at) in zip(urls * 4, results, strict=True):
        run = runs[url.rsplit("/", 1)[-1]]
        assert run.started == run.posted
        assert run.ends - run.started == 2
        assert done_at >= run.ends  # no poller saw it succeed early
    posts = {e.operation for e in sb.faults.requests("export") if e.operation}
    assert posts == set(runs)
    polls = sb.faults.polls()
    assert {op: polls[op] >= 4 for op in posts} == dict.fromkeys(posts, True)
    accepted = Counter(
        ("usage/unbilled", f"{body['billingPeriod']}/USD")
        for body, answer in zip(bodies, answers, strict=True)
        if answer.status_code == 202
    )
    assert sb.faults.started_exports() == accepted  # the 429 started nothing
    again = post(timed, session, bodies[2])  # both ended: a slot is free
    assert again.status_code == 202


@pytest.mark.parametrize("timed", [("queue", 1)], indirect=True)
def test_over_https_a_queueing_service_accepts_all_and_runs_two_at_once(
    timed: SandboxServer,
) -> None:
    body = {"billingPeriod": "current", "currencyCode": "USD"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(timed, graph_session(timed), body), range(4)))
    assert [a.status_code for a in answers] == [202] * 4
    urls = [a.headers["Location"] for a in answers]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda url: poll_until_done(graph_session(timed), url), urls))
    assert {statuses[-1] for statuses, _ in results} == {"succeeded"}
    runs = timed.sandbox.pace.timeline()
    assert all(run.started is not None and run.ends - run.started == 1 for run in runs)
    first, second, *waiting = sorted(runs, key=lambda run: run.ends)
    # Two ran at once from their POSTs; each of the other two started when one of them ended.
    assert [first.started, second.started] == [first.posted, second.posted]
    assert [run.started for run in waiting] == [first.ends, second.ends]
    for (statuses, done_at), url in zip(results, urls, strict=True):
        run = next(run for run in runs if url.endswith(run.operation_id))
        assert done_at >= run.ends
        if run in waiting and statuses[0] != "succeeded":
            assert statuses[0] == "notStarted"  # queued, not running
    assert timed.sandbox.faults.started_exports()[("usage/unbilled", "current/USD")] == 4
