"""The export-wait benchmark (``scripts/bench exports``): wall time against the service's limit.

A sync of every export stream (billed usage, billed reconciliation, unbilled usage, unbilled
reconciliation) against the sandbox in latency mode: each export takes ``L`` seconds of wall
time (``--export-seconds``, default 10), and the service lets at most ``K`` run at once.

  throttled   K = --service-cap (default 4, fewer than the exports): a POST finding K
              running is answered 429 + Retry-After (``--when-busy queue``: accepted, queued).
              The service's own limit is ceil(exports / K) x L.
  roomy       K = twice the tap's default max_concurrent_exports: the tap's cap is the
              bottleneck, and the limit is ceil(exports / cap) x L.

The figure is wall / limit, measured within one run (1.0: no second lost to waiting in
line). From the sandbox's POST log it also shows, per stream, its first and last export POST
and when its last blob was served: "ahead" says whether the last stream's first POST came
before the first stream's downloads ended (the streams are synced by name). ``--repeat N``
runs each case N times and ends with the ratios and their spread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from tap_partner_billing.config.settings import SETTINGS
from tap_partner_billing.dates import shift_month
from tap_partner_billing.sandbox.config import WHEN_BUSY, InvoiceSpec, SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tap_partner_billing.sandbox.tls import make_tls_files

if TYPE_CHECKING:
    from tap_partner_billing.sandbox.faults import LoggedRequest
    from tap_partner_billing.sandbox.tls import TlsFiles

ROOT = Path(__file__).resolve().parent.parent
# Export stream → (its POST path's dataset/kind, its blob container); synced in this order.
STREAMS = {
    "billed_reconciliation": ("reconciliation/billed", "billedrecon"),
    "billed_usage": ("usage/billed", "billedusage"),
    "unbilled_reconciliation": ("reconciliation/unbilled", "unbilledrecon"),
    "unbilled_usage": ("usage/unbilled", "unbilledusage"),
}


def tap_cap() -> int:
    """The tap's default max_concurrent_exports."""
    return int(SETTINGS.to_dict()["properties"]["max_concurrent_exports"]["default"])


def service_config(args: argparse.Namespace, cap: int) -> SandboxConfig:
    """``--invoices`` invoices and two periods per currency: the export partitions."""
    config = SandboxConfig(
        retry_after_seconds=1,
        export_seconds=args.export_seconds,
        max_running_exports=cap,
        when_busy=args.when_busy,
        legacy_invoices={},
        invoices={},
        unbilled={
            (period, currency): (args.lines, 2)
            for period in ("current", "last")
            for currency in args.currencies.split(",")
        },
    )
    config.invoices = {
        f"G{800000000 + n:09d}": InvoiceSpec(
            shift_month(config.current_month, -2 - n), args.lines, 2
        )
        for n in range(args.invoices)
    }
    return config


def run_case(
    name: str, args: argparse.Namespace, tls: TlsFiles, service_cap: int, limit_cap: int
) -> tuple[float, bool]:
    """One sync against a fresh sandbox; prints its figure and its POST log summary.

    Returns wall / limit, and whether the last stream's first POST came before the first
    stream's downloads ended.
    """
    server = SandboxServer(Sandbox(service_config(args, service_cap)), tls).start()
    sb = server.sandbox
    oldest = shift_month(sb.config.current_month, -1 - args.invoices)
    config = server.tap_config(
        start_date=f"{oldest[:4]}-{oldest[4:]}",
        currency_codes=args.currencies.split(","),
        billing_periods=["current", "last"],
    )
    folder = Path(tempfile.mkdtemp(prefix=f"tpb-bench-exports-{name}-"))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tap_partner_billing", "--config", str(folder / "config.json")]
    beyond = "429 beyond" if args.when_busy == "throttle" else "queues the rest"
    heading = f"{name}: the service runs at most {service_cap} exports at once ({beyond})"
    print(f"\n{heading} ...", flush=True)
    started = time.time()
    with (folder / "out.jsonl").open("wb") as out, (folder / "err.log").open("wb") as err:
        returncode = subprocess.run(
            command, stdout=out, stderr=err, env=env, check=False
        ).returncode
    wall = time.time() - started
    server.stop()
    stderr = (folder / "err.log").read_text(encoding="utf-8", errors="replace")
    if returncode != 0:
        sys.exit(f"{name}: the tap failed ({returncode}):\n{stderr[-3000:]}")
    records = Counter(
        json.loads(line)["stream"]
        for line in (folder / "out.jsonl").read_text(encoding="utf-8").splitlines()
        if '"RECORD"' in line
    )
    log = sb.faults.requests()
    exports = len(sb.faults.started_exports())  # partitions (one POSTed again counts once)
    limit = math.ceil(exports / limit_cap) * args.export_seconds
    print(
        f"{name}: {exports} exports of {args.export_seconds:g} s, at most {limit_cap} at once "
        f"-> limit {limit:g} s; wall {wall:.1f} s; wall/limit = {wall / limit:.2f}"
    )
    posts = [e for e in log if e.step == "export"]
    refused = sum(1 for e in posts if e.status == 429)
    polls = sum(sb.faults.polls().values())
    print(
        f"  export POSTs {len(posts)} ({refused} answered 429), operation polls {polls}, "
        f"most exports running at once {most_running(sb)}"
    )
    ahead = stream_log(log, started, records)
    for line in stderr.splitlines():
        if "Run summary" in line and "polling" in line:
            print(f"  {line.split('Run summary ', 1)[1]}")
    return wall / limit, ahead


def stream_log(log: list[LoggedRequest], started: float, records: Counter[str]) -> bool:
    """Per stream: first and last export POST and last blob served, seconds from the start."""
    columns = ("exports", "records", "first POST", "last POST", "blobs end")
    print(f"  {'stream (s from start)':<24}" + "".join(f"{c:>11}" for c in columns))
    firsts, ends = {}, {}
    for stream, (action, container) in STREAMS.items():
        posts = [e for e in log if e.step == "export" and e.export[0] == action]
        times = [e.at - started for e in posts]
        blobs = [e.at - started for e in log if e.step == "blob" and f"/{container}/" in e.path]
        firsts[stream] = min(times, default=math.inf)
        ends[stream] = max(blobs, default=math.inf)
        cells = (
            f"{len({e.export for e in posts if e.operation})}",
            f"{records[stream]}",
            f"{firsts[stream]:.1f}",
            f"{max(times, default=math.inf):.1f}",
            f"{ends[stream]:.1f}",
        )
        print(f"  {stream:<24}" + "".join(f"{c:>11}" for c in cells))
    first, last = next(iter(STREAMS)), list(STREAMS)[-1]
    ahead = firsts[last] < ends[first]
    print(
        f"  ahead: {'yes' if ahead else 'no'} - {last}'s first POST at {firsts[last]:.1f} s, "
        f"{first}'s downloads ended at {ends[first]:.1f} s"
    )
    return ahead


def most_running(sb: Sandbox) -> int:
    """The most exports the sandbox ran at any one moment."""
    runs = [(r.started, r.ends) for r in sb.pace.timeline() if r.started is not None]
    return max((sum(1 for s, e in runs if s <= start < e) for start, _ in runs), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--export-seconds", type=float, default=10.0, help="L (default 10)")
    parser.add_argument("--service-cap", type=int, default=4, help="K of the throttled case")
    parser.add_argument("--when-busy", choices=WHEN_BUSY, default="throttle")
    parser.add_argument("--invoices", type=int, default=4, help="billed invoices (default 4)")
    parser.add_argument("--currencies", default="USD,EUR", help="unbilled currencies")
    parser.add_argument("--lines", type=int, default=200, help="usage lines per partition")
    parser.add_argument(
        "--cases", default="throttled,roomy", help="which cases to run (comma-separated)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case (the spread)")
    args = parser.parse_args()
    tls = make_tls_files(Path(tempfile.mkdtemp(prefix="tpb-bench-exports-")) / "tls")
    cap = tap_cap()
    seconds = args.export_seconds
    print(
        f"tap cap {cap} (default max_concurrent_exports); exports take {seconds:g} s each",
        flush=True,
    )
    caps = {"throttled": (args.service_cap, args.service_cap), "roomy": (2 * cap, cap)}
    names = args.cases.split(",")
    if not set(names) <= set(caps):
        parser.error(f"--cases: choose among {', '.join(caps)}, not {args.cases!r}")
    results: dict[str, list[tuple[float, bool]]] = {}
    for _ in range(args.repeat):
        for name in names:
            service_cap, limit_cap = caps[name]
            results.setdefault(name, []).append(run_case(name, args, tls, service_cap, limit_cap))
    print()
    for name, runs in results.items():
        ratios = [ratio for ratio, _ in runs]
        aheads = "/".join("yes" if ahead else "no" for _, ahead in runs)
        print(
            f"{name}: wall/limit {', '.join(f'{r:.2f}' for r in ratios)} (spread "
            f"{max(ratios) - min(ratios):.2f}; goal <= 1.5); ahead {aheads}"
        )


if __name__ == "__main__":
    main()
