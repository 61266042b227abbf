"""What the dependency floors in pyproject.toml are for: each fails below its floor.

CI's ``floors`` job runs the unit tests with every runtime dependency at its floor
(``scripts/floor_pins.py``); these tests name the behaviour a floor stands for.
"""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zlib

import pytest
import requests
from urllib3.response import HTTPResponse

from tap_partner_billing.errors import ServiceError
from tap_partner_billing.service.responses import read_body


def _zeros_gzipped(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed in 1 MiB steps (no 256 MiB buffer)."""
    packer = zlib.compressobj(9, wbits=31)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


def test_an_answer_gzipped_twice_is_refused_in_bounded_memory() -> None:
    """urllib3 >= 2.6: ``read1(amt, decode_content=True)`` decodes at most ``amt`` bytes.

    Before 2.6 the first ``read1`` of a body sent with ``Content-Encoding: gzip, gzip``
    inflated the whole inner layer (measured: 1 GiB for a 1,830-byte answer on 2.5.0), before
    ``read_body``'s size limit could look at it.
    """
    body = gzip.compress(_zeros_gzipped(256 << 20), 9)  # about 1 KB on the wire
    response = requests.Response()
    response.status_code = 200
    response.raw = HTTPResponse(
        body=io.BytesIO(body),
        headers={"Content-Encoding": "gzip, gzip"},
        preload_content=False,
    )
    tracemalloc.start()
    try:
        with pytest.raises(ServiceError, match="larger than 1048576 bytes"):
            read_body(response, "the operation", limit=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak >> 20} MiB to refuse a 1 MiB answer"
