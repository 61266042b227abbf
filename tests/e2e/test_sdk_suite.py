"""The SDK's standard tap tests, run against the sandbox over real HTTPS."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tap_partner_billing.sandbox.tls import make_tls_files
from tap_partner_billing.tap import TapPartnerBilling

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.e2e,
    # Schema columns no sample line fills (the tombstone column, unknown-key bag) are expected.
    pytest.mark.filterwarnings(
        "ignore:Fields in transformed catalog but not in records:UserWarning"
    ),
    pytest.mark.filterwarnings("ignore:No records were available to test:UserWarning"),
]

# get_tap_test_class needs the config when the module is imported, so the sandbox starts here
# and the module fixture below stops it.
_SERVER = SandboxServer(
    Sandbox(SandboxConfig(retry_after_seconds=0)), make_tls_files(Path(tempfile.mkdtemp()) / "tls")
).start()


@pytest.fixture(scope="module", autouse=True)
def sandbox_trust() -> Iterator[None]:
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(_SERVER.tls.ca_bundle)
    yield
    if previous is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = previous
    _SERVER.stop()


TestTapAgainstSandbox = get_tap_test_class(
    TapPartnerBilling,
    config=_SERVER.tap_config(),
    suite_config=SuiteConfig(max_records_limit=1000),
)
