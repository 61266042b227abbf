"""Start and stop the real servers the end-to-end tests use, on 127.0.0.1, by PID."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".work"


class ServiceStartError(RuntimeError):
    """A server the tests need could not be started; the message says why."""


# A free port is only free until someone else binds it: with pytest-xdist workers (and other
# test runs on the machine) starting servers at the same moment, a PostgreSQL start that lost
# its port is tried again on another one.
PORT_ATTEMPTS = 3
AZURITE_LISTENS = re.compile(r"Blob service successfully listens on https://127\.0\.0\.1:(\d+)")


def free_port() -> int:
    """A port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop_pid(pid: int, timeout: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster."""

    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path
    pid: int

    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={self.database}"
        )

    def fresh_database(self, name: str) -> Postgres:
        """An empty database ``name`` on this server (dropped first if a test left one)."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return replace(self, database=name)

    def stop(self) -> None:
        _stop_pid(self.pid)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_postgres() -> Postgres:
    """Initdb + start a cluster on a free port (as the postgres user when running as root)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        msg = "PostgreSQL server binaries not found; scripts/install-services installs them"
        raise ServiceStartError(msg)
    bindir = found[-1].parent
    base = Path(tempfile.mkdtemp(prefix="tpb-pg-"))
    data = base / "data"
    data.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
    data.chmod(0o700)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if as_root:
            command = ["su", "postgres", "-c", " ".join(f"'{c}'" for c in command)]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    result = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    if result.returncode != 0:
        msg = f"initdb failed: {result.stderr[-2000:]}"
        raise ServiceStartError(msg)
    log_path = base / "server.log"
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        result = run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log_path),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base}",
            "start",
        )
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        if result.returncode == 0 or "could not bind" not in log:
            break
        log_path.unlink()  # lost the port to another server: the next attempt logs afresh
    if result.returncode != 0:
        msg = f"PostgreSQL did not start: {result.stderr[-1000:]} {log[-2000:]}"
        raise ServiceStartError(msg)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    pg = Postgres("127.0.0.1", port, "postgres", "e2e-password", "postgres", data, pid)
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"ALTER USER postgres PASSWORD '{pg.password}'")
    return pg


@dataclass
class Azurite:
    """A running Azurite blob service (HTTPS, in memory)."""

    account_url: str
    process: subprocess.Popen[str]

    def stop(self) -> None:
        _stop_pid(self.process.pid)
        self.process.wait(timeout=10)


def start_azurite(cert: Path, key: Path) -> Azurite:
    """Start Azurite's blob service on a free port with the sandbox's certificate."""
    binary = WORK / "node" / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        msg = f"Azurite not installed at {binary}; scripts/install-services installs it"
        raise ServiceStartError(msg)
    location = tempfile.mkdtemp(prefix="tpb-azurite-")
    log_path = Path(location) / "azurite.log"
    # Port 0: Azurite binds a port the kernel picks and says which in its log, so two
    # Azurites starting at once (pytest-xdist workers) never race for one port.
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--silent",
                "--cert",
                str(cert),
                "--key",
                str(key),
            ],
            cwd=location,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        found = AZURITE_LISTENS.search(log_path.read_text(errors="replace"))
        if found:
            return Azurite(f"https://127.0.0.1:{found.group(1)}/devstoreaccount1", process)
        time.sleep(0.1)
    _stop_pid(process.pid)
    process.wait(timeout=10)
    msg = f"Azurite did not start: {log_path.read_text(errors='replace')[-2000:]}"
    raise ServiceStartError(msg)
