"""Prototype of issue 13's worker processes, measured standalone (not the tap's code path).

Each worker owns whole blobs: it downloads one through its SAS URL to a spool file, inflates,
decodes, types and encodes every line with the tap's own codec and row encoder (the same RECORD
bytes the direct route writes) into an output file, and hands back only the file's name and
the offsets of its records. The main process writes the files to stdout in blob order; a
worker does not know its blob's first ``line_ordinal`` (ordinals run on across the blobs of a
manifest), so it encodes ordinals from 0 and the main process patches each record's ordinal
as it copies (``"line_ordinal"`` comes after every variable-length value of a record, so the
last occurrence in a record is the key itself). ``--workers 0`` runs the same work in-process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Any

import requests

from tap_partner_billing.lines import iter_line_blocks
from tap_partner_billing.rows import ENCODER, LineBlock, RowLayout, iter_rows, row_struct
from tap_partner_billing.streams import BilledUsageStream

KEYS = tuple(BilledUsageStream.declared_schema()["properties"])
HEAD = b'{"type":"RECORD","stream":"billed_usage","record":'
TAIL = b',"time_extracted":"2026-12-01T00:00:00+00:00"}\n'
ORDINAL_KEY = b'"line_ordinal":'


LAYOUT = RowLayout.build("usage", KEYS)


def _template(blob: str) -> tuple[Any, ...]:
    return LAYOUT.template(
        {"_blob_name": blob, "billing_month": "202609", "invoice_id": "G900000001"}
    )


def encode_blob(job: tuple[int, str, str, str]) -> tuple[int, str, bytes]:
    """Download, inflate, decode, type and encode one blob; (lines, output path, ends)."""
    index, url, ca_bundle, folder = job
    spool = Path(folder) / f"blob-{index}.gz"
    with requests.get(url, stream=True, verify=ca_bundle, timeout=300) as response:
        response.raise_for_status()
        with spool.open("wb") as out:
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
    count, path, ends = encode_spool(index, spool, folder)
    spool.unlink()
    return count, path, ends


def encode_spool(index: int, spool: Path, folder: str) -> tuple[int, str, bytes]:
    """Inflate, decode, type and encode a downloaded blob into a file of RECORD messages."""
    template, count = _template(f"blob-{index}"), 0
    ends = array("q")
    path = Path(folder) / f"out-{index}.jsonl"
    record, encode_into = row_struct(KEYS), ENCODER.encode_into
    with path.open("wb") as out:
        for lines in iter_line_blocks(spool, f"blob {index}"):
            block = LineBlock(f"blob {index}", LAYOUT, template, lines, count + 1, count)
            data = bytearray()
            for row in iter_rows(block):
                data += HEAD
                encode_into(record(*row), data, -1)
                data += TAIL
                ends.append(len(data))
            base = out.tell()
            for at in range(len(ends) - len(lines), len(ends)):
                ends[at] += base
            out.write(data)
            count += len(lines)
    return count, str(path), ends.tobytes()


def copy_patched(path: str, ends_bytes: bytes, first_ordinal: int, sink: Any) -> None:  # noqa: ANN401
    """Write a worker's records with each ordinal moved on by ``first_ordinal``.

    Read and written about a megabyte at a time (whole records), so memory stays flat.
    """
    ends = array("q")
    ends.frombytes(ends_bytes)
    with Path(path).open("rb") as source:
        done, ordinal, at = 0, first_ordinal, 0
        while at < len(ends):
            stop = at
            while stop < len(ends) and ends[stop] - done < 1 << 20:
                stop += 1
            stop = max(stop, at + 1)
            data = source.read(ends[stop - 1] - done)
            if first_ordinal == 0:
                sink.write(data)
            else:
                out, start = bytearray(), 0
                for absolute in ends[at:stop]:
                    end = absolute - done
                    key = data.rfind(ORDINAL_KEY, start, end) + len(ORDINAL_KEY)
                    comma = data.index(b",", key)
                    out += data[start:key]
                    out += b"%d" % ordinal
                    out += data[comma:end]
                    start, ordinal = end, ordinal + 1
                sink.write(out)
            done, at = ends[stop - 1], stop
    Path(path).unlink()


def main() -> None:
    """Encode the blobs listed in ``--urls`` (JSON), in ``--workers`` processes, to stdout."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    urls = json.loads(Path(args.urls).read_text(encoding="utf-8"))
    ca_bundle = os.environ["REQUESTS_CA_BUNDLE"]
    folder = tempfile.mkdtemp(prefix="tpb-workers-")
    jobs = [(i, url, ca_bundle, folder) for i, url in enumerate(urls)]
    sink, ordinal = sys.stdout.buffer, 0
    if args.workers == 0:
        results: Any = map(encode_blob, jobs)
    else:
        pool = multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=None)
        results = pool.imap(encode_blob, jobs, chunksize=1)  # in blob order, as they finish
    for count, path, ends in results:
        copy_patched(path, ends, ordinal, sink)
        ordinal += count
    sink.flush()
    print(f"workers probe complete, {ordinal} lines", file=sys.stderr)
    if args.workers:
        pool.close()
        pool.join()
    Path(folder).rmdir()


if __name__ == "__main__":
    main()
