"""Fixtures for the end-to-end tests: TLS files, sandbox, PostgreSQL, Azurite, a Meltano project."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from release_check import expected_counts as release_expected_counts

from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tap_partner_billing.sandbox.tls import TlsFiles
from tests.e2e.services import (
    ROOT,
    WORK,
    Azurite,
    Postgres,
    ServiceStartError,
    start_azurite,
    start_postgres,
)
from tests.meltano_project import project_file_for_tests

if TYPE_CHECKING:
    from collections.abc import Iterator

MELTANO = WORK / "meltano" / "bin" / "meltano"

pytestmark = pytest.mark.e2e


@pytest.fixture
def sandbox(tls: TlsFiles) -> Iterator[SandboxServer]:
    server = SandboxServer(Sandbox(SandboxConfig(retry_after_seconds=0)), tls).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        pg = start_postgres()
    except ServiceStartError as err:
        pytest.fail(f"PostgreSQL is required for this test and could not start: {err}")
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def azurite(tls: TlsFiles) -> Iterator[Azurite]:
    try:
        service = start_azurite(tls.server_cert, tls.server_key)
    except ServiceStartError as err:
        pytest.fail(f"Azurite is required for this test and could not start: {err}")
    yield service
    service.stop()


class MeltanoProject:
    """The tests' Meltano project (write_project) in a temporary folder, plugins installed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True, program: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """``meltano ARGS`` (or ``program ARGS``, such as bash) in the project's folder."""
        full_env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", **(env or {})}
        full_env.pop("REQUESTS_CA_BUNDLE", None)  # the sandbox environment sets its own
        result = subprocess.run(
            [program or str(MELTANO), *args],
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{program or 'meltano'} {' '.join(args)} failed "
                f"({result.returncode}):\n{result.stderr[-6000:]}"
            )
        return result


# The plugin folders a Meltano project installs into; worker projects link them.
PLUGIN_KINDS = ("extractors", "loaders", "utilities")


def write_project(root: Path) -> None:
    """Write the tests' Meltano project into ``root`` (no plugins installed).

    The repository's ``meltano.yml`` plus the test-only emulator loader, local packages and
    pins as paths in this repository (tests/meltano_project.py).
    """
    (root / "meltano.yml").write_text(project_file_for_tests(ROOT), encoding="utf-8")
    (root / "transform").symlink_to(ROOT / "transform")  # the dbt project (utility dbt)


def install_plugins(root: Path) -> None:
    """Write the project into ``root`` and install every plugin it declares."""
    write_project(root)
    # Bytecode at install time: with PYTHONDONTWRITEBYTECODE set, every plugin run would
    # otherwise compile its whole venv again (seconds per target-snowflake run).
    MeltanoProject(root).run("--environment=sandbox", "install", env={"UV_COMPILE_BYTECODE": "1"})


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (between the processes of one pytest run)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def meltano(tmp_path_factory: pytest.TempPathFactory) -> MeltanoProject:
    """This process's Meltano project, its plugins installed once per pytest run.

    Under pytest-xdist every worker has its own project folder (its own system database,
    state, run and output folders), and the plugin folders link to one installation that
    the first worker to need it makes while the others wait on a lock: installing is
    minutes, and two installs into the same folder at once would break both.
    """
    if not MELTANO.exists():
        pytest.fail(f"Meltano is not installed at {MELTANO}; scripts/bootstrap installs it")
    root = tmp_path_factory.mktemp("meltano")
    if "PYTEST_XDIST_WORKER" not in os.environ:
        install_plugins(root)
        return MeltanoProject(root)
    # The workers' base temporary folders share this parent, which is new for each run.
    shared = tmp_path_factory.getbasetemp().parent / "meltano-plugins"
    with file_lock(shared.with_name("meltano-plugins.lock")):
        done = shared / ".installed"
        if not done.exists():
            shutil.rmtree(shared, ignore_errors=True)  # a worker's install that failed
            shared.mkdir()
            install_plugins(shared)
            done.touch()
    write_project(root)
    for kind in PLUGIN_KINDS:
        link_installed(root, shared, kind)
    return MeltanoProject(root)


def link_installed(root: Path, installed: Path, kind: str, name: str | None = None) -> None:
    """``root``'s project uses ``installed``'s installation of plugin ``name`` (or of ``kind``).

    A link, for plugins declared alike in both projects (the same ``pip_url``): Meltano finds
    the installation's fingerprint and installs nothing anew (another would rebuild it there).
    """
    where = Path(".meltano", kind, *([name] if name else []))
    if not (root / where).exists():
        (root / where).parent.mkdir(parents=True, exist_ok=True)
        (root / where).symlink_to((installed / where).resolve())


def linked_project(meltano: MeltanoProject, root: Path) -> MeltanoProject:
    """A project in ``root`` with ``meltano``'s meltano.yml and installed plugins (linked).

    Its own system database, state and output: as the same project on another machine.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(meltano.root / "meltano.yml", root / "meltano.yml")
    for kind in PLUGIN_KINDS:
        link_installed(root, meltano.root, kind)
    return MeltanoProject(root)


@pytest.fixture(scope="session")
def own_project(
    meltano: MeltanoProject, tmp_path_factory: pytest.TempPathFactory
) -> MeltanoProject:
    """A partner's own Meltano project outside the repository (tests/e2e/own_project.py).

    Made once per pytest process: ``meltano init``, the README's Installation, target-jsonl;
    plugins that read as in ``meltano`` use its installation. A test module that changes the
    project puts it back as it found it.
    """
    from tests.e2e.own_project import make_own_project

    return make_own_project(tmp_path_factory.mktemp("own"), meltano)


@pytest.fixture(scope="session")
def snowflake_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway RSA key for key-pair auth (PKCS#8 PEM, as Snowflake documents)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("snowflake-key") / "rsa_key.p8"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def sandbox_env(server: SandboxServer) -> dict[str, str]:
    """The variables the sandbox Meltano environment reads."""
    return {
        "PARTNER_BILLING_SANDBOX_LOGIN_URL": server.sandbox.login_url,
        "PARTNER_BILLING_SANDBOX_GRAPH_URL": f"{server.sandbox.graph_url}/v1.0",
        "PARTNER_BILLING_SANDBOX_PARTNER_CENTER_URL": server.sandbox.partner_center_url,
        "PARTNER_BILLING_SANDBOX_START_DATE": server.sandbox.config.start_month,
        "PARTNER_BILLING_SANDBOX_CA_BUNDLE": str(server.tls.ca_bundle),
    }


def postgres_env(pg: Postgres, schema: str | None = None) -> dict[str, str]:
    """target-postgres's connection; loading into ``schema`` (None: the project's default)."""
    env = {
        "TARGET_POSTGRES_HOST": pg.host,
        "TARGET_POSTGRES_PORT": str(pg.port),
        "TARGET_POSTGRES_USER": pg.user,
        "TARGET_POSTGRES_PASSWORD": pg.password,
        "TARGET_POSTGRES_DATABASE": pg.database,
    }
    if schema is not None:
        env["TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA"] = schema
    return env


def query(pg: Postgres, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(pg.dsn()) as conn:
        return list(conn.execute(sql, params).fetchall())


# Where the sandbox environment's target-jsonl writes and dbt's DuckDB reads (meltano.yml).
SANDBOX_OUTPUT = Path(".work", "sandbox", "output")


def clean_output(project: MeltanoProject) -> Path:
    """The sandbox environment's output folder in ``project``, emptied."""
    output = project.root / SANDBOX_OUTPUT
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    return output


def postgres_target(meltano: MeltanoProject, pg: Postgres, schema: str, folder: Path) -> list[str]:
    """The command of Meltano's installed target-postgres, loading into ``schema``."""
    config = folder / f"target-{schema}.json"
    config.write_text(
        json.dumps(
            {
                "host": pg.host,
                "port": pg.port,
                "user": pg.user,
                "password": pg.password,
                "database": pg.database,
                "default_target_schema": schema,
                "add_record_metadata": True,
            }
        )
    )
    target = meltano.root / ".meltano/loaders/target-postgres/venv/bin/target-postgres"
    return [str(target), "--config", str(config)]


def tap_command(server: SandboxServer, folder: Path, **config: Any) -> list[str]:
    """The tap's command with a config pointing at ``server`` (``config`` overrides)."""
    path = folder / "tap.json"
    path.write_text(json.dumps(server.tap_config(**config)))
    return [sys.executable, "-m", "tap_partner_billing", "--config", str(path)]


@dataclass
class PipedRun:
    """What a tap → target pipe left behind."""

    state: dict[str, Any] | None  # the last state the target emitted (what Meltano saves)
    records: list[dict[str, Any]]  # the tap's RECORD messages
    killed: bool
    returncode: int
    tap_output: str  # everything the tap wrote to stdout and stderr


def pipe_tap(
    tap_cmd: list[str],
    target_cmd: list[str],
    env: dict[str, str],
    kill_after: int | None = None,
) -> PipedRun:
    """Pipe tap → target; SIGKILL the tap after ``kill_after`` messages."""
    # The target's output goes to files: a pipe read only at the end would fill while this
    # loop still writes to the target's stdin, and both sides would wait for ever.
    with (
        tempfile.TemporaryFile() as tap_stderr,
        tempfile.TemporaryFile() as target_out,
        tempfile.TemporaryFile() as target_err,
    ):
        tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=tap_stderr, env=env)
        target = subprocess.Popen(
            target_cmd, stdin=subprocess.PIPE, stdout=target_out, stderr=target_err, env=env
        )
        assert tap.stdout is not None
        assert target.stdin is not None
        records: list[dict[str, Any]] = []
        seen: list[bytes] = []
        killed = False
        for count, line in enumerate(tap.stdout, start=1):
            target.stdin.write(line)
            seen.append(line)
            if b'"RECORD"' in line:
                records.append(json.loads(line))
            if kill_after is not None and count >= kill_after:
                tap.kill()
                killed = True
                break
        tap.wait()
        tap.stdout.close()
        target.communicate()  # closes stdin: the target drains, says its state
        target_out.seek(0)
        target_err.seek(0)
        stdout = target_out.read()
        assert target.returncode == 0, target_err.read().decode(errors="replace")[-3000:]
        tap_stderr.seek(0)
        output = b"".join(seen).decode() + tap_stderr.read().decode(errors="replace")
    states = [json.loads(x) for x in stdout.splitlines() if x.strip()]
    state = states[-1] if states else None
    if state is not None:
        state = state.get("value", state)
    return PipedRun(state, records, killed, tap.returncode, output)


def tap_into_target(
    tap_cmd: list[str], target_cmd: list[str], env: dict[str, str], kill_after: int | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """Pipe tap → target (see :func:`pipe_tap`); a tap that was not killed must succeed."""
    run = pipe_tap(tap_cmd, target_cmd, env, kill_after)
    if not run.killed:
        assert run.returncode == 0, run.tap_output[-3000:]
    return run.state, run.records, run.killed


def billed_truths(sb: Sandbox, dataset: str = "usage") -> dict[str, tuple[int, Decimal]]:
    """(lines, money total) per invoice the sandbox Meltano environment exports.

    That is every invoice discovered from the sandbox's start month on that has lines of
    ``dataset`` (a credit note has no usage).
    """
    start = sb.config.start_month.replace("-", "")
    truths = {
        invoice: sb.billed_truth(invoice, dataset=dataset)
        for invoice, spec in sb.config.invoices.items()
        if spec.billing_month >= start
    }
    return {i: (t.line_count, t.pretax_total) for i, t in truths.items() if t.line_count}


def expected_counts(sb: Sandbox) -> dict[str, int]:
    """Lines per stream a full sync of ``sb``'s data must deliver (scripts/release's count)."""
    return release_expected_counts(sb)


def record_counts(stdout: str) -> dict[str, int]:
    """RECORD messages per stream in a tap's output (tombstones included)."""
    counts: Counter[str] = Counter()
    for line in stdout.splitlines():
        if '"RECORD"' in line:
            counts[json.loads(line)["stream"]] += 1
    return dict(counts)
