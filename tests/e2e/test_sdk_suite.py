"""The SDK's standard tap tests, run against the sandbox over real HTTPS."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tap_partner_billing.tap import TapPartnerBilling

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_partner_billing.sandbox.tls import TlsFiles

pytestmark = [
    pytest.mark.e2e,
    # Schema columns no sample line fills (the tombstone column, unknown-key bag) are expected.
    pytest.mark.filterwarnings(
        "ignore:Fields in transformed catalog but not in records:UserWarning"
    ),
    pytest.mark.filterwarnings("ignore:No records were available to test:UserWarning"),
]

_UNSTARTED = "https://127.0.0.1:9"  # the discard port: nothing answers before the fixture runs
_SANDBOX_CONFIG = SandboxConfig(retry_after_seconds=0)
# get_tap_test_class takes the config when this module is imported (it lists the streams
# then, which needs no server), and its runner reads this same dict again for every tap it
# makes. No server runs at import: the module fixture below starts the sandbox when the first
# test of this module runs and writes its addresses into the dict.
_CONFIG: dict[str, Any] = {
    "tenant_id": _SANDBOX_CONFIG.tenant_id,
    "client_id": _SANDBOX_CONFIG.client_id,
    "client_secret": _SANDBOX_CONFIG.client_secret,
    "authority_url": _UNSTARTED,
    "graph_url": f"{_UNSTARTED}/v1.0",
    "partner_center_url": _UNSTARTED,
}


@pytest.fixture(scope="module", autouse=True)
def sandbox_for_the_suite(tls: TlsFiles) -> Iterator[SandboxServer]:
    """The sandbox, started for this module's tests only and closed after them."""
    server = SandboxServer(Sandbox(_SANDBOX_CONFIG), tls).start()
    before = dict(_CONFIG)
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(server.tls.ca_bundle)
    _CONFIG.update(server.tap_config())
    try:
        yield server
    finally:
        _CONFIG.clear()
        _CONFIG.update(before)
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous
        server.stop()


TestTapAgainstSandbox = get_tap_test_class(
    TapPartnerBilling,
    config=_CONFIG,
    suite_config=SuiteConfig(max_records_limit=1000),
)
