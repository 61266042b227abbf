"""Throughput, memory and overlap benchmark (see docs/benchmark.md).

One run, on the same generated blobs served by the sandbox's blob endpoint:
  a   raw: download + gunzip + orjson per line into dicts, one thread (the ceiling)
  b   the tap end to end, RECORD messages to /dev/null, decode_workers at its default (one
      worker process per usable core); "b w1" the same with decode_workers 1 (in-process)
  b'  the same with a stream map configured (the SDK's general path)
  c   an ordinary SDK tap (json.loads, key renames, default conformance and writer)
  d   BATCH mode (batch files uncompressed, and gzip level 1 beside it)
Rates are lines/s over the blob phase (first blob request to exit); ratios use those.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import requests

from benchmarks.profiles import PROFILES, Profile
from tap_partner_billing.emission.workers import default_worker_count
from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines, stable_seed
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tap_partner_billing.sandbox.tls import make_tls_files

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".work" / "bench"
PY = sys.executable
PROFILE_VERSION = 2  # bump when a generator changes (the cache key)
WORKERS = default_worker_count()  # the default of decode_workers on this machine


def make_blobs(
    name: str, lines: int, blob_count: int, seed: int, profile: Profile | None = None
) -> dict[str, bytes]:
    """Generated blobs, cached on disk; compressed as they are made (flat memory).

    Without a profile the lines are the sandbox's own; with one, they are varied like real
    exports (see ``profiles.py``).
    """
    folder = CACHE / f"{name}-{lines}-{blob_count}-{seed}-v{PROFILE_VERSION}"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        per_blob = -(-lines // blob_count)
        source = iter_usage_lines(
            LineSpec(seed, "202609", "G900000001", "USD", "full"),
            lines,
            customers=40,
        )
        for index in range(blob_count):
            path = folder / f"part-{index:05d}-{stable_seed(name, index):08x}.c000.json.gz"
            blob_lines: Iterator[bytes] = (
                line for _, line in zip(range(per_blob), source, strict=False)
            )
            if profile is not None:
                blob_lines = profile.rewrite(blob_lines, index, seed)
            with gzip.open(path, "wb", compresslevel=6) as out:
                for line in blob_lines:
                    out.write(line + b"\n")
        (folder / "done").touch()
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json.gz"))}


def raw_baseline(urls: list[str], ca_bundle: str) -> tuple[int, float]:
    """(a) download + gunzip + orjson per line, one thread."""
    count, started = 0, time.perf_counter()
    session = requests.Session()
    for url in urls:
        with session.get(url, stream=True, verify=ca_bundle, timeout=300) as response:
            inflate, tail = zlib.decompressobj(wbits=47), b""
            for chunk in response.iter_content(1 << 20):
                lines = (tail + inflate.decompress(chunk)).split(b"\n")
                tail = lines.pop()
                for line in lines:
                    orjson.loads(line)
                    count += 1
    return count, time.perf_counter() - started


class RssSampler(threading.Thread):
    """Peak resident memory of a process and all its descendants, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True
        self.peak_each: dict[int, int] = {}  # per process of the tree

    def _tree(self, pid: int) -> list[int]:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return [pid]
        return [pid, *(p for child in children for p in self._tree(int(child)))]

    def run(self) -> None:
        while self.running:
            total = 0
            for pid in self._tree(self.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                match = re.search(r"VmRSS:\s+(\d+) kB", status)
                rss = int(match.group(1)) * 1024 if match else 0
                self.peak_each[pid] = max(self.peak_each.get(pid, 0), rss)
                total += rss
            self.peak = max(self.peak, total)
            time.sleep(0.02)


@dataclass
class Run:
    """One measured process run."""

    lines: int
    blob_phase: float
    wall: float
    peak_rss: int
    first_record_after_success: float | None = None
    peak_rss_each: int = 0  # the largest single process of the tree

    @property
    def rate(self) -> float:
        return self.lines / self.blob_phase


def run_process(
    command: list[str], sandbox: Sandbox, env: dict[str, str], *, watch_first_record: bool = False
) -> tuple[Run, str]:
    """Run a tap; stdout to /dev/null (or read, to time the first record)."""
    log_start = len(sandbox.faults.requests())
    started = time.time()
    stdout = subprocess.PIPE if watch_first_record else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, env=env, text=False)
    sampler = RssSampler(process.pid)
    sampler.start()
    first_record: list[float] = []
    if watch_first_record:
        for line in process.stdout or ():
            if not first_record and b'"RECORD"' in line:
                first_record.append(time.time())
    _, stderr = process.communicate()
    ended = time.time()
    sampler.running = False
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"{command[2:4]} failed:\n{stderr.decode()[-3000:]}")
    log = sandbox.faults.requests()[log_start:]
    blob_times = [e.at for e in log if e.step == "blob"]
    first_blob = min(blob_times) if blob_times else started
    text = stderr.decode()
    lines = sum(int(n) for n in re.findall(r"complete, (\d+) lines", text))
    succeeded_at = max(
        (e.at for e in log if e.step == "operation" and e.at <= first_blob), default=None
    )
    delay = first_record[0] - succeeded_at if first_record and succeeded_at else None
    each = max(sampler.peak_each.values(), default=0)
    return Run(lines, ended - first_blob, ended - started, sampler.peak, delay, each), text


def tap_command(config: dict[str, Any], folder: Path, name: str) -> list[str]:
    """Run the tap on ``config`` with only ``billed_usage`` selected (the measured stream)."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    catalog = json.loads(
        subprocess.run(
            [PY, "-m", "tap_partner_billing", "--config", str(path), "--discover"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["stream"] == "billed_usage"
    catalog_path = folder / f"{name}.catalog.json"
    catalog_path.write_text(json.dumps(catalog), encoding="utf-8")
    return [PY, "-m", "tap_partner_billing", "--config", str(path), "--catalog", str(catalog_path)]


def profile_runs(
    args: argparse.Namespace,
    sandbox: Sandbox,
    base: dict[str, Any],
    folder: Path,
    env: dict[str, str],
    *,
    ca_bundle: str,
) -> None:
    """Runs a and b on each real-export profile (same line count and blob count as the main run)."""
    names = [n for n in args.profiles.split(",") if n]
    if not names:
        return
    rows: list[tuple[str, Run, Run]] = []
    for number, name in enumerate(names, start=11):
        invoice = f"G9000000{number}"
        print(f"profile {name}: generating / loading ...", flush=True)
        blobs = make_blobs(name, args.lines, args.blobs, 11, PROFILES[name])
        sandbox.load_invoice(invoice, "202609", blobs)
        manifest = sandbox.manifest(("usage/billed", invoice, "full"), "bench")
        urls = [
            f"{manifest['rootDirectory']}/{b['name']}?{manifest['sasToken']}"
            for b in manifest["blobs"]
        ]
        count, seconds = raw_baseline(urls, ca_bundle)
        for workers in (1, WORKERS):
            config = {**base, "invoice_ids": [invoice], "decode_workers": workers}
            run, _ = run_process(tap_command(config, folder, f"p-{name}-{workers}"), sandbox, env)
            if run.lines != count:
                sys.exit(f"profile {name}: the tap emitted {run.lines} lines, expected {count}")
            rows.append((f"{name} w{workers}", Run(count, seconds, seconds, 0), run))
    print()
    columns = ("lines", "a lines/s", "b lines/s", "b/a", "RSS MB all", "RSS MB max 1")
    print(f"{'profile':<15}" + "".join(f"{c:>13}" for c in columns))
    for name, a_run, b_run in rows:
        cells = (
            f"{a_run.lines}",
            f"{a_run.rate:.0f}",
            f"{b_run.rate:.0f}",
            f"{b_run.rate / a_run.rate:.2f}",
            f"{b_run.peak_rss / 1e6:.0f}",
            f"{b_run.peak_rss_each / 1e6:.0f}",
        )
        print(f"{name:<15}" + "".join(f"{c:>13}" for c in cells))
    print(
        f"(w1: decode_workers 1, in-process; w{WORKERS}: the default here, one decode worker "
        "per usable core. Targets: b/a >= 0.6 with w1, >= 1.0 with workers; peak RSS <= 150 MB "
        "with w1; with workers each process <= 150 MB and all <= 300 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--blobs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="only a and b")
    parser.add_argument(
        "--big",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a single blob of >= 1 GB uncompressed (default: on)",
    )
    parser.add_argument(
        "--profiles",
        default=",".join(PROFILES),
        help="real-export profiles measured beside the sandbox's data (comma-separated, "
        f"default {','.join(PROFILES)}; empty for none)",
    )
    parser.add_argument(
        "--overlap-lines", type=int, default=4_000, help="lines per blob, overlap test"
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tpb-bench-"))
    tls = make_tls_files(folder / "tls")
    sandbox = Sandbox(SandboxConfig(retry_after_seconds=1, polls_before_success=1))
    server = SandboxServer(sandbox, tls).start()
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle), "PYTHONPATH": str(ROOT)}
    print(
        f"generating {args.lines} lines over {args.blobs} blobs (cached in {CACHE}) ...", flush=True
    )
    blobs = make_blobs("main", args.lines, args.blobs, 11)
    sandbox.load_invoice("G900000001", "202609", blobs)
    size = sum(len(b) for b in blobs.values())
    print(f"{len(blobs)} blobs, {size / 1e6:.1f} MB compressed", flush=True)
    base = server.tap_config(
        invoice_ids=["G900000001"],
        discover_invoices=False,
        billing_periods=[],
        poll_interval_seconds=1,
    )
    manifest = sandbox.manifest(("usage/billed", "G900000001", "full"), "bench")
    urls = [
        f"{manifest['rootDirectory']}/{b['name']}?{manifest['sasToken']}" for b in manifest["blobs"]
    ]

    results: dict[str, Run] = {}
    count, seconds = raw_baseline(urls, str(tls.ca_bundle))
    results["a"] = Run(count, seconds, seconds, 0)
    results["b"], _ = run_process(tap_command(base, folder, "b"), sandbox, env)
    in_process = {**base, "decode_workers": 1}
    results["b w1"], _ = run_process(tap_command(in_process, folder, "b1"), sandbox, env)
    if args.quick:
        a_rate, b_run, b1_run = results["a"].rate, results["b"], results["b w1"]
        print(
            f"a {a_rate:.0f}/s, b {b_run.rate:.0f}/s (decode_workers {WORKERS}), "
            f"b/a {b_run.rate / a_rate:.2f}; b w1 {b1_run.rate:.0f}/s (decode_workers 1), "
            f"b w1/a {b1_run.rate / a_rate:.2f}"
        )
        profile_runs(args, sandbox, base, folder, env, ca_bundle=str(tls.ca_bundle))
        server.stop()
        return
    mapped = {**base, "stream_maps": {"billed_usage": {"__alias__": "billed_usage_mapped"}}}
    results["b'"], _ = run_process(tap_command(mapped, folder, "b2"), sandbox, env)
    ordinary = folder / "ordinary.json"
    ordinary.write_text(json.dumps({"blob_urls": urls}), encoding="utf-8")
    log_start = len(sandbox.faults.requests())
    started = time.time()
    subprocess.run(
        [PY, str(ROOT / "benchmarks" / "ordinary_tap.py"), "--config", str(ordinary)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        check=True,
    )
    ended = time.time()
    first_blob = min(e.at for e in sandbox.faults.requests()[log_start:] if e.step == "blob")
    results["c"] = Run(count, ended - first_blob, ended - started, 0)
    for name, compression in (("d", "none"), ("d gzip-1", "gzip")):
        batch_root = folder / f"batch-{compression}"
        batch = {
            **base,
            "batch_config": {
                "encoding": {"format": "jsonl", "compression": compression},
                "storage": {"root": f"file://{batch_root}", "prefix": "bench-"},
            },
        }
        results[name], _ = run_process(
            tap_command(batch, folder, name.replace(" ", "")), sandbox, env
        )

    print()
    columns = ("lines", "blob phase s", "lines/s", "whole run s", "peak RSS MB")
    print(f"{'run':<10}" + "".join(f"{c:>14}" for c in columns))
    for name, run in results.items():
        rss = f"{run.peak_rss / 1e6:.0f}" if run.peak_rss else "-"
        cells = (f"{run.lines}", f"{run.blob_phase:.2f}", f"{run.rate:.0f}", f"{run.wall:.2f}", rss)
        print(f"{name:<10}" + "".join(f"{c:>14}" for c in cells))
    a = results["a"].rate
    print()
    print(f"b/a  = {results['b'].rate / a:.2f}   (decode_workers {WORKERS}; target >= 1.0)")
    print(f"b w1/a = {results['b w1'].rate / a:.2f}   (decode_workers 1; target >= 0.6)")
    print(f"b'/a = {results[chr(98) + chr(39)].rate / a:.2f}   (stream map: the SDK path)")
    print(f"b/c  = {results['b'].rate / results['c'].rate:.2f}   (target >= 4)")
    gzip_ratio = results["d gzip-1"].rate / a
    print(f"d/a  = {results['d'].rate / a:.2f}   (target >= 0.6; gzip level 1: {gzip_ratio:.2f})")
    b_all, b_each = results["b"].peak_rss / 1e6, results["b"].peak_rss_each / 1e6
    print(
        f"peak RSS of b w1 = {results['b w1'].peak_rss / 1e6:.0f} MB (target <= 150); of b "
        f"{b_all:.0f} MB all processes, {b_each:.0f} MB the largest (targets <= 300, <= 150)"
    )
    for name, run in results.items():
        if name not in {"a", "c"} and run.lines != count:
            sys.exit(f"run {name} emitted {run.lines} lines, expected {count}")

    # Overlap: one blob takes >= 2 s to transfer under the per-connection cap.
    overlap = make_blobs("overlap", args.overlap_lines * 8, 8, 12)
    sandbox.load_invoice("G900000002", "202609", overlap)
    blob_size = max(len(b) for b in overlap.values())
    sandbox.config.bandwidth_bytes_per_second = int(blob_size / 2.5)
    timings = {}
    for parallel in (1, 8):
        config = {**base, "invoice_ids": ["G900000002"], "max_parallel_downloads": parallel}
        timings[parallel], _ = run_process(
            tap_command(config, folder, f"overlap{parallel}"), sandbox, env, watch_first_record=True
        )
    sandbox.config.bandwidth_bytes_per_second = None
    ratio = timings[8].wall / timings[1].wall
    print()
    cap = blob_size / 2.5 / 1e6
    print(f"overlap: 8 blobs of {blob_size / 1e6:.2f} MB at {cap:.2f} MB/s per connection")
    one, eight = timings[1].wall, timings[8].wall
    print(f"  max_parallel_downloads=1: {one:.1f} s, =8: {eight:.1f} s")
    print(f"  ratio {ratio:.2f} (target <= 0.4)")
    delay = timings[8].first_record_after_success
    retry_after = sandbox.config.retry_after_seconds
    shown = "not measured" if delay is None else f"{delay:.2f} s"
    print(f"  succeeded → first record: {shown} (Retry-After {retry_after} s; target <= it + 1 s)")

    profile_runs(args, sandbox, base, folder, env, ca_bundle=str(tls.ca_bundle))
    if args.big:
        lines = 560_000
        big = make_blobs("big", lines, 1, 13)
        sandbox.load_invoice("G900000003", "202609", big)
        uncompressed = sum(len(gzip.decompress(b)) for b in big.values())
        print()
        for workers in (1, WORKERS):
            config = {**base, "invoice_ids": ["G900000003"], "decode_workers": workers}
            run, _ = run_process(tap_command(config, folder, f"big{workers}"), sandbox, env)
            print(
                f"single blob, decode_workers {workers}: {uncompressed / 1e9:.2f} GB "
                f"uncompressed, {run.lines} lines, {run.rate:.0f} lines/s, peak RSS "
                f"{run.peak_rss / 1e6:.0f} MB all processes, {run.peak_rss_each / 1e6:.0f} MB "
                "the largest (targets: <= 150 with 1 worker; <= 300 all, <= 150 each)"
            )
    server.stop()


if __name__ == "__main__":
    main()
