"""SIGTERM ends a run with a non-zero exit and whole lines; killed runs' spool files go away."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tap_partner_billing.blobs.spool import LOCK_NAME, SpoolFolder, spool_base
from tap_partner_billing.errors import ConfigurationError
from tests.hostile import (
    BLOB_ROOT,
    OPERATION_PATH,
    HostileServer,
    Seen,
    Trickle,
    blob_bytes,
    json_reply,
    write_config,
)

SIGTERM_EXIT = 143
LINE = '{"CustomerId": "c%d", "BillingPreTaxTotal": "1.5", "MeterName": "' + "m" * 400 + '"}'


def _start(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tap_partner_billing", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def _wait_for(predicate: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _blocked_on_stdout(pid: int) -> bool:
    """The process sleeps in a write to a full pipe."""
    try:
        with Path(f"/proc/{pid}/wchan").open(encoding="ascii") as wchan:
            return "pipe" in wchan.read()
    except OSError:
        return False


def _all_lines_whole(stdout: bytes) -> None:
    assert stdout.endswith(b"\n")
    for line in stdout.splitlines():
        json.loads(line)  # raises on a cut line


def test_sigterm_while_stdout_is_blocked(origin: HostileServer, tmp_path: Path) -> None:
    origin.routes["GET", f"{BLOB_ROOT}/part-0.json.gz"] = (
        200,
        {},
        blob_bytes(*(LINE % n for n in range(20_000))),
    )
    tap = _start(write_config(origin, tmp_path))
    _wait_for(lambda: _blocked_on_stdout(tap.pid))  # nobody reads: the pipe is full
    tap.send_signal(signal.SIGTERM)
    stdout, stderr = tap.communicate(timeout=60)  # a target that keeps reading
    assert tap.returncode == SIGTERM_EXIT, stderr.decode()[-2000:]
    _all_lines_whole(stdout)
    assert stdout.count(b'"type":"RECORD"') < 4 * 20_000  # it did stop early
    assert b"Stopped by SIGTERM" in stderr


def test_sigterm_while_polling_stops_at_once(origin: HostileServer, tmp_path: Path) -> None:
    running = json_reply(200, {"id": "op-1", "status": "running"}, **{"Retry-After": "60"})
    origin.routes["GET", OPERATION_PATH] = running
    tap = _start(write_config(origin, tmp_path))
    _wait_for(lambda: any(s.path == OPERATION_PATH for s in origin.seen))
    time.sleep(0.5)
    started = time.monotonic()
    tap.send_signal(signal.SIGTERM)
    stdout, _ = tap.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert tap.returncode == SIGTERM_EXIT
    _all_lines_whole(stdout)
    # The operation URL was saved before the wait: the next run resumes it.
    states = [json.loads(x) for x in stdout.splitlines() if b'"STATE"' in x]
    assert OPERATION_PATH in json.dumps(states[-1])


def test_a_killed_runs_spool_files_are_removed_by_the_next_run(
    origin: HostileServer, tmp_path: Path
) -> None:
    release = {"now": False}
    body = blob_bytes(*(LINE % n for n in range(2_000)))

    def slow_blob(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        del seen
        _wait_for(lambda: release["now"], 60)
        return 200, {}, body

    origin.routes["GET", f"{BLOB_ROOT}/part-0.json.gz"] = slow_blob
    env = {"TMPDIR": str(tmp_path)}
    config = write_config(origin, tmp_path)
    base = spool_base(str(tmp_path))
    tap = _start(config, env)
    _wait_for(lambda: any(base.glob("run-*/*.json.gz")))  # a spool file exists
    tap.kill()
    tap.communicate()
    left = list(base.glob("run-*"))
    assert left, "a SIGKILLed run cannot clean up"
    release["now"] = True
    again = _start(config, env)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr.decode()[-2000:]
    assert b"Removing spool files a stopped run left" in stderr
    assert list(base.glob("run-*")) == []  # the killed run's and its own


def test_a_live_runs_spool_folder_is_left_alone(tmp_path: Path) -> None:
    base = spool_base(str(tmp_path))
    live, dead = base / "run-live", base / "run-dead"
    for folder in (live, dead):
        folder.mkdir(parents=True)
        (folder / "partner-billing-x.json.gz").write_bytes(b"x")
    with (live / LOCK_NAME).open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running tap holds it
        (dead / LOCK_NAME).write_bytes(b"")
        spool = SpoolFolder(str(tmp_path))
        mine = spool.path
        assert live.exists()
        assert not dead.exists()
        assert mine.parent == base
        spool.remove()
        assert not mine.exists()


def test_a_spool_folder_made_by_someone_else_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spool_base(str(tmp_path)).symlink_to(elsewhere)  # planted before the tap ran
    with pytest.raises(ConfigurationError, match="not this user's own"):
        _ = SpoolFolder(str(tmp_path)).path


def test_sigterm_while_a_download_stalls_exits_promptly(
    origin: HostileServer, tmp_path: Path
) -> None:
    data = blob_bytes(*(LINE % n for n in range(100)))
    blob = f"{BLOB_ROOT}/part-0.json.gz"
    origin.routes["GET", blob] = (200, {}, Trickle(data, head=5, step=1, pause=600))
    tap = _start(write_config(origin, tmp_path))
    _wait_for(lambda: any(s.path == blob for s in origin.seen))
    time.sleep(0.5)
    started = time.monotonic()
    tap.send_signal(signal.SIGTERM)
    stdout, _ = tap.communicate(timeout=60)
    assert time.monotonic() - started < 10  # not the 300 s read timeout
    assert tap.returncode == SIGTERM_EXIT
    _all_lines_whole(stdout)
