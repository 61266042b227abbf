"""Run the tap as ``python -m tap_partner_billing``."""

from __future__ import annotations

from tap_partner_billing.tap import TapPartnerBilling

# The guard matters: decode worker processes are spawned, and a spawned child imports the
# parent's __main__ module again (as __mp_main__); it must not start a second tap there.
if __name__ == "__main__":
    TapPartnerBilling.cli()
