"""``partner-billing-sandbox``: run the sandbox until interrupted (the demo uses this).

It writes ``sandbox.env`` into ``--state-dir`` with the URLs and the CA bundle the tap needs,
as ``PARTNER_BILLING_SANDBOX_*`` variables that only the ``sandbox`` Meltano environment reads.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tap_partner_billing.sandbox.config import WHEN_BUSY, SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tap_partner_billing.sandbox.tls import make_tls_files


def main(argv: list[str] | None = None) -> None:
    """Start the sandbox on 127.0.0.1 and block until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".work/sandbox"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After while running (s)")
    parser.add_argument("--polls", type=int, default=2, help="polls before an export succeeds")
    parser.add_argument("--manifest-mode", choices=["inline", "linked"], default="inline")
    parser.add_argument(
        "--export-seconds",
        type=float,
        metavar="N",
        help="each export runs N seconds of wall time (instead of --polls polls)",
    )
    parser.add_argument(
        "--max-running-exports",
        type=int,
        metavar="K",
        help="at most K exports run at once (needs --export-seconds)",
    )
    parser.add_argument(
        "--when-busy",
        choices=WHEN_BUSY,
        default="throttle",
        help="a POST finding K running: 429 + Retry-After (throttle) or 202, queued (queue)",
    )
    parser.add_argument(
        "--throttle-retry-after",
        type=int,
        metavar="S",
        help="Retry-After of that 429 (default: seconds until the first running export ends)",
    )
    parser.add_argument(
        "--plant-discrepancy",
        action="append",
        default=[],
        metavar="INVOICE=AMOUNT",
        help="list INVOICE's total AMOUNT above the sum of its lines (repeatable)",
    )
    parser.add_argument(
        "--without-permission",
        action="store_true",
        help="Graph tokens lack PartnerBilling.Read.All (an app without admin consent)",
    )
    parser.add_argument(
        "--documented",
        action="store_true",
        help="serve Microsoft's documented responses (the documented invoice list and shapes)",
    )
    args = parser.parse_args(argv)

    try:
        config = SandboxConfig(
            seed=args.seed,
            retry_after_seconds=args.retry_after,
            polls_before_success=args.polls,
            export_seconds=args.export_seconds,
            max_running_exports=args.max_running_exports,
            when_busy=args.when_busy,
            throttle_retry_after_seconds=args.throttle_retry_after,
            manifest_mode=args.manifest_mode,
            total_discrepancies=dict(_discrepancy(text) for text in args.plant_discrepancy),
            graph_roles=() if args.without_permission else ("PartnerBilling.Read.All",),
            documented=args.documented,
        )
    except ValueError as err:
        parser.error(str(err))
    tls = make_tls_files(args.state_dir / "tls")
    server = SandboxServer(Sandbox(config), tls).start()
    sandbox = server.sandbox
    env_file = args.state_dir / "sandbox.env"
    env_file.write_text(
        f"PARTNER_BILLING_SANDBOX_LOGIN_URL={sandbox.login_url}\n"
        f"PARTNER_BILLING_SANDBOX_GRAPH_URL={sandbox.graph_url}/v1.0\n"
        f"PARTNER_BILLING_SANDBOX_PARTNER_CENTER_URL={sandbox.partner_center_url}\n"
        f"PARTNER_BILLING_SANDBOX_START_DATE={config.start_month}\n"
        f"PARTNER_BILLING_SANDBOX_CA_BUNDLE={tls.ca_bundle.resolve()}\n",
        encoding="utf-8",
    )
    print(
        f"sandbox listening: login {sandbox.login_url}, graph {sandbox.graph_url}, "
        f"blobs {sandbox.blob_url}, partner center {sandbox.partner_center_url}",
        flush=True,
    )
    if config.export_seconds is not None:
        cap = config.max_running_exports
        at_once = (
            "any number at once" if cap is None else f"at most {cap} at once ({args.when_busy})"
        )
        print(f"exports take {config.export_seconds:g} s each, {at_once}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()


def _discrepancy(text: str) -> tuple[str, Decimal]:
    invoice, _, amount = text.partition("=")
    try:
        return invoice, Decimal(amount)
    except InvalidOperation:
        raise SystemExit(f"--plant-discrepancy {text!r}: expected INVOICE=AMOUNT") from None


if __name__ == "__main__":
    main()
