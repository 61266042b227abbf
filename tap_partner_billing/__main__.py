"""Run the tap as ``python -m tap_partner_billing``."""

from __future__ import annotations

from tap_partner_billing.tap import TapPartnerBilling

if __name__ == "__main__":
    TapPartnerBilling.cli()
