"""Blob download and gzip JSON-lines decoding."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
import requests
import responses

from tap_partner_billing.blobs import (
    BlobFetcher,
    BlobUrls,
    download_in_order,
    new_blob_session,
)
from tap_partner_billing.errors import BlobDataError, SasExpiredError
from tap_partner_billing.lines import iter_line_blocks
from tap_partner_billing.manifest import Manifest
from tests.helpers import BLOBS, SAS, FakeClock, gz_lines


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "blob.json.gz"
    path.write_bytes(data)
    return path


def lines_of(tmp_path: Path, data: bytes) -> list[tuple[int, bytes]]:
    blocks = iter_line_blocks(write(tmp_path, data), "billed_usage invoice G1, blob part-0")
    return list(enumerate((line for block in blocks for line in block), start=1))


def test_empty_blob_yields_nothing(tmp_path: Path) -> None:
    assert lines_of(tmp_path, gzip.compress(b"")) == []
    assert lines_of(tmp_path, b"") == []  # a zero-byte object counts as empty


def test_streaming_many_lines_keeps_order(tmp_path: Path) -> None:
    lines = [f'{{"n": {i}}}' for i in range(50_000)]
    got = lines_of(tmp_path, gz_lines(*lines))
    assert got == [(i + 1, line.encode()) for i, line in enumerate(lines)]


def test_several_gzip_members_are_one_blob(tmp_path: Path) -> None:
    data = gz_lines('{"a": 1}') + gz_lines('{"a": 2}', '{"a": 3}')
    assert [n for n, _ in lines_of(tmp_path, data)] == [1, 2, 3]


def test_last_line_without_newline(tmp_path: Path) -> None:
    assert lines_of(tmp_path, gzip.compress(b'{"a": 1}\n{"a": 2}')) == [
        (1, b'{"a": 1}'),
        (2, b'{"a": 2}'),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gz_lines('{"a": 1}', '{"b": 2}')[:-12], "corrupt or truncated after line"),
        (b"this is not gzip", "corrupt or truncated"),
        (gz_lines('{"a": 1}') + b"trailing garbage", "corrupt or truncated"),
    ],
)
def test_bad_blobs_name_the_blob_and_line(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(BlobDataError, match=message) as raised:
        lines_of(tmp_path, data)
    assert "blob part-0" in str(raised.value)


def test_download_sends_no_authorization_and_resumes_with_range(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    body = gz_lines(*(f'{{"n": {i}}}' for i in range(1000)))
    url = f"{BLOBS}/c/dir/part-0.json.gz?{SAS}"
    calls = {"n": 0}

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        assert "Authorization" not in request.headers
        if calls["n"] == 1:
            raise requests.ConnectionError("connection reset by peer")
        return 200, {}, body

    rsps.add_callback(responses.GET, url.split("?", maxsplit=1)[0], callback=answer)
    clock = FakeClock()
    path = BlobFetcher(new_blob_session(), sleep=clock.sleep, spool_dir=str(tmp_path)).download(
        url, "blob"
    )
    assert path.read_bytes() == body
    assert calls["n"] == 2


def test_403_means_the_sas_expired(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    url = f"{BLOBS}/c/dir/part-0.json.gz?{SAS}"
    rsps.add(
        responses.GET,
        url.split("?", maxsplit=1)[0],
        status=403,
        body=b"<Error><Code>AuthenticationFailed</Code></Error>",
    )
    with pytest.raises(SasExpiredError) as raised:
        BlobFetcher(new_blob_session(), sleep=FakeClock().sleep, spool_dir=str(tmp_path)).download(
            url, "blob part-0"
        )
    assert "sig=" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # no spool file left behind


def test_download_in_order_yields_in_order_and_cleans_up(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    for i in range(5):
        rsps.add(responses.GET, f"{BLOBS}/c/part-{i}", body=gz_lines(f'{{"i": {i}}}'))
    fetcher = BlobFetcher(new_blob_session(), sleep=FakeClock().sleep, spool_dir=str(tmp_path))
    manifest = Manifest.parse(
        {
            "rootDirectory": f"{BLOBS}/c",
            "sasToken": SAS,
            "blobs": [{"name": f"part-{i}"} for i in range(5)],
        },
        where="t",
    )
    jobs = [(blob.name, blob) for blob in manifest.blobs]
    seen = []
    for index, spool in download_in_order(
        fetcher, jobs, BlobUrls(manifest, None, "t"), max_parallel=3
    ):
        seen.append((index, next(iter_line_blocks(spool, "x"))[0]))
    assert seen == [(i, f'{{"i": {i}}}'.encode()) for i in range(5)]
    assert list(tmp_path.iterdir()) == []


def test_crc_corruption_is_caught_at_the_end_of_the_member(tmp_path: Path) -> None:
    data = bytearray(gz_lines(*(f'{{"n": {i}}}' for i in range(1000))))
    data[-6] ^= 0xFF  # the CRC32 in the gzip trailer
    got: list[bytes] = []

    def read_all() -> None:
        for block in iter_line_blocks(write(tmp_path, bytes(data)), "blob part-0"):
            got.extend(block)

    with pytest.raises(BlobDataError, match="corrupt or truncated after line"):
        read_all()
    # Lines before the trailer were handed over; the error stops the run before the blob is
    # marked done, so the next run reads the whole blob again.
    assert len(got) <= 1000


def test_a_two_megabyte_line_is_one_line(tmp_path: Path) -> None:
    big = random.Random(3).randbytes(1 << 20).hex()  # compresses as real text does
    lines = lines_of(tmp_path, gz_lines('{"a": 1}', f'{{"Tags": "{big}"}}', '{"a": 2}'))
    assert [n for n, _ in lines] == [1, 2, 3]
    assert len(lines[1][1]) > 2 << 20
