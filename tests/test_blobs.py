"""Blob download and gzip JSON-lines decoding."""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import responses

from tap_partner_billing.blobs.download import (
    BlobFetcher,
    download_in_order,
    new_blob_session,
)
from tap_partner_billing.blobs.lines import iter_line_blocks
from tap_partner_billing.blobs.sas import BlobUrls
from tap_partner_billing.errors import BlobDataError, SasExpiredError, ServiceError
from tap_partner_billing.service.manifest import Manifest
from tests import hostile
from tests.helpers import BLOBS, SAS, FakeClock, gz_lines

if TYPE_CHECKING:
    from collections.abc import Callable


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "blob.json.gz"
    path.write_bytes(data)
    return path


def read_lines(path: Path, into: list[bytes]) -> None:
    for block in iter_line_blocks(path, "billed_usage invoice G1, blob part-0"):
        into.extend(block)


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


# ---- the download path the streams use: download_in_order into growing spools ----------------


def blob_manifest(root: str, sas: str, *names: str) -> Manifest:
    return Manifest.parse(
        {"rootDirectory": root, "sasToken": sas, "blobs": [{"name": name} for name in names]},
        where="t",
    )


def read_served_blob(
    origin: hostile.HostileServer, spool_dir: Path, into: list[list[bytes]]
) -> None:
    """``read_blobs`` of the one blob ``part-0.json.gz`` the hostile server serves."""
    manifest = blob_manifest(f"{origin.origin}{hostile.BLOB_ROOT}", hostile.SAS, "part-0.json.gz")
    read_blobs(manifest, spool_dir, into)


def read_blobs(
    manifest: Manifest, spool_dir: Path, into: list[list[bytes]], *, max_parallel: int = 1
) -> None:
    """Download every blob as the streams do, reading each spool while it grows into ``into``."""
    fetcher = BlobFetcher(new_blob_session(), sleep=FakeClock().sleep, spool_dir=str(spool_dir))
    jobs = [(f"t, blob {blob.name}", blob) for blob in manifest.blobs]
    urls = BlobUrls(manifest, None, "t")
    for index, spool in download_in_order(fetcher, jobs, urls, max_parallel=max_parallel):
        lines: list[bytes] = []
        into.append(lines)
        for block in iter_line_blocks(spool, jobs[index][0]):
            lines.extend(block)


def numbered(count: int) -> tuple[list[bytes], bytes]:
    """``count`` lines (random enough that gzip keeps them tens of kilobytes) and their blob."""
    noise = random.Random(count)
    lines = [f'{{"n": {n}, "Tags": "{noise.randbytes(12).hex()}"}}' for n in range(count)]
    return [line.encode() for line in lines], gz_lines(*lines)


BLOB = f"{hostile.BLOB_ROOT}/part-0.json.gz"


def range_start(seen: hostile.Seen) -> int | None:
    """The first byte a ``Range: bytes=N-`` request asks for (None without a Range)."""
    value = {k.lower(): v for k, v in seen.headers.items()}.get("range")
    if value is None:
        return None
    match = re.fullmatch(r"bytes=(\d+)-", value)
    assert match, value
    return int(match.group(1))


def blob_gets(server: hostile.HostileServer) -> list[hostile.Seen]:
    return [seen for seen in server.seen if seen.path == BLOB]


def partial(
    data: bytes, start: int, etag: str | None = '"v1"', total: int | None = None
) -> hostile.Reply:
    """A 206 answer from ``start``.

    ``total`` in ``Content-Range`` defaults to the real length; ``etag`` None sends no ETag.
    """
    content_range = f"bytes {start}-{len(data) - 1}/{len(data) if total is None else total}"
    headers = {"Content-Range": content_range, **({} if etag is None else {"ETag": etag})}
    return 206, headers, data[start:]


def spooled(spool_dir: Path) -> int:
    """Bytes in the (only) spool file now."""
    (path,) = spool_dir.iterdir()
    return path.stat().st_size


def test_a_dropped_download_resumes_with_a_range_from_the_byte_reached(
    origin: hostile.HostileServer, tmp_path: Path
) -> None:
    lines, body = numbered(3000)
    cut = len(body) // 3
    on_disk_at_resume: list[int] = []

    def blob(seen: hostile.Seen) -> hostile.Reply:
        start = range_start(seen)
        if start is None:
            return 200, {"ETag": '"v1"'}, hostile.Cut(body, cut)
        on_disk_at_resume.append(spooled(tmp_path))
        return partial(body, start)

    origin.routes["GET", BLOB] = blob
    got: list[list[bytes]] = []
    read_served_blob(origin, tmp_path, got)
    assert got == [lines]  # every line once: nothing lost at the cut, nothing twice
    gets = blob_gets(origin)
    assert [range_start(seen) for seen in gets] == [None, cut]
    assert on_disk_at_resume == [cut]  # the Range asks for exactly the bytes after the spool's
    assert all(seen.target.endswith(hostile.SAS) for seen in gets)
    assert origin.credentials_seen() == []  # the SAS is the credential: no Authorization header
    assert list(tmp_path.iterdir()) == []


def test_a_body_shorter_than_its_content_length_is_resumed_then_refused_clearly(
    origin: hostile.HostileServer, tmp_path: Path
) -> None:
    """Storage announces the whole blob but every answer breaks off a few bytes later."""
    lines, body = numbered(3000)
    step = len(body) // 20

    def blob(seen: hostile.Seen) -> hostile.Reply:
        start = range_start(seen) or 0
        status, headers, _ = partial(body, start) if start else (200, {"ETag": '"v1"'}, b"")
        return status, headers, hostile.Cut(body[start:], step)

    origin.routes["GET", BLOB] = blob
    got: list[list[bytes]] = []
    with pytest.raises(ServiceError, match=r"blob part-0\.json\.gz: download kept breaking off"):
        read_served_blob(origin, tmp_path, got)
    starts = [range_start(seen) or 0 for seen in blob_gets(origin)]
    assert starts == [n * step for n in range(len(starts))]  # each resume from the byte reached
    assert 1 < len(starts) < 20  # the retry budget ended it before the blob was complete
    (seen_lines,) = got
    assert seen_lines == lines[: len(seen_lines)]  # a prefix: no line twice, none made up
    assert len(seen_lines) < len(lines)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "resume",
    [
        pytest.param(lambda body, start: (200, {"ETag": '"v1"'}, body), id="200-whole-body"),
        pytest.param(lambda body, start: partial(body, 0), id="206-from-byte-0"),
    ],
)
def test_storage_that_ignores_the_range_is_refused_without_repeating_a_byte(
    resume: Callable[[bytes, int], hostile.Reply], origin: hostile.HostileServer, tmp_path: Path
) -> None:
    lines, body = numbered(3000)
    cut = len(body) // 2

    def blob(seen: hostile.Seen) -> hostile.Reply:
        start = range_start(seen)
        if start is None:
            return 200, {"ETag": '"v1"'}, hostile.Cut(body, cut)
        return resume(body, start)

    origin.routes["GET", BLOB] = blob
    got: list[list[bytes]] = []
    with pytest.raises(ServiceError, match="storage ignored a Range request"):
        read_served_blob(origin, tmp_path, got)
    assert [range_start(seen) for seen in blob_gets(origin)] == [None, cut]  # no third try
    (seen_lines,) = got
    assert seen_lines == lines[: len(seen_lines)]  # the whole body was not appended
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("etag", "total", "named"),
    [
        pytest.param('"v2"', None, r'eTag "v1" → "v2"', id="another-etag"),
        pytest.param('"v1"', 1, r"→ \d+ bytes", id="another-length"),
        pytest.param(None, None, r'eTag "v1" → None', id="etag-dropped"),
    ],
)
def test_a_blob_that_changes_while_downloading_is_never_spliced(
    etag: str | None, total: int | None, named: str, origin: hostile.HostileServer, tmp_path: Path
) -> None:
    lines, body = numbered(3000)
    _, other = numbered(3100)  # a rewritten blob: other bytes, another length
    cut = len(body) // 2

    def blob(seen: hostile.Seen) -> hostile.Reply:
        start = range_start(seen)
        if start is None:
            return 200, {"ETag": '"v1"'}, hostile.Cut(body, cut)
        return partial(other, start, etag, len(other) if total is None else len(body) + total)

    origin.routes["GET", BLOB] = blob
    got: list[list[bytes]] = []
    with pytest.raises(ServiceError, match=f"the blob changed while downloading.*{named}"):
        read_served_blob(origin, tmp_path, got)
    (seen_lines,) = got
    assert seen_lines == lines[: len(seen_lines)]  # only lines of the first version
    assert list(tmp_path.iterdir()) == []


def test_403_means_the_sas_expired(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    rsps.add(
        responses.GET,
        f"{BLOBS}/c/dir/part-0.json.gz",
        status=403,
        body=b"<Error><Code>AuthenticationFailed</Code></Error>",
    )
    got: list[list[bytes]] = []
    with pytest.raises(SasExpiredError, match=r"refused the SAS \(HTTP 403\)") as raised:
        read_blobs(blob_manifest(f"{BLOBS}/c/dir", SAS, "part-0.json.gz"), tmp_path, got)
    assert "sig=" not in str(raised.value)
    assert SAS not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # no spool file left behind


def test_download_in_order_yields_in_order_and_cleans_up(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    for i in range(5):
        rsps.add(responses.GET, f"{BLOBS}/c/part-{i}", body=gz_lines(f'{{"i": {i}}}'))
    got: list[list[bytes]] = []
    read_blobs(
        blob_manifest(f"{BLOBS}/c", SAS, *(f"part-{i}" for i in range(5))),
        tmp_path,
        got,
        max_parallel=3,
    )
    assert got == [[f'{{"i": {i}}}'.encode()] for i in range(5)]
    assert all("Authorization" not in call.request.headers for call in rsps.calls)
    assert list(tmp_path.iterdir()) == []


def test_crc_corruption_is_caught_at_the_end_of_the_member(tmp_path: Path) -> None:
    # Over OUTPUT_CHUNK_BYTES inflated, so lines go out before the reader reaches the trailer.
    lines, body = numbered(40_000)
    data = bytearray(body)
    data[-6] ^= 0xFF  # the CRC32 in the gzip trailer
    got: list[bytes] = []
    with pytest.raises(BlobDataError, match=r"corrupt or truncated after line \d+") as raised:
        read_lines(write(tmp_path, bytes(data)), got)
    # Lines before the trailer were handed over, exactly as written; the error names how many
    # and stops the run before the blob is marked done, so the next run reads it all again.
    assert 0 < len(got) < len(lines)
    assert got == lines[: len(got)]
    assert f"after line {len(got)} " in str(raised.value)


def test_a_two_megabyte_line_is_one_line(tmp_path: Path) -> None:
    big = random.Random(3).randbytes(1 << 20).hex()  # compresses as real text does
    lines = lines_of(tmp_path, gz_lines('{"a": 1}', f'{{"Tags": "{big}"}}', '{"a": 2}'))
    assert [n for n, _ in lines] == [1, 2, 3]
    assert len(lines[1][1]) > 2 << 20
