"""Run the tap as ``python -m tap_partner_billing``."""

from __future__ import annotations

from tap_partner_billing.tap import TapPartnerBilling

TapPartnerBilling.cli()
