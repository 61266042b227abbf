"""The README's Cookbook: every recipe run as written, in a partner's own Meltano project.

The project is ``own_project`` (tests/e2e/own_project.py: ``meltano init`` outside the
repository and the README's Installation). The recipes run in it against one sandbox per
pytest process, each on what the ones before left, as in a user's project: the module's
fixture adds the PostgreSQL loader and loads first; the others backfill, refresh, narrow,
schedule and watch it, and each checks only what its own run did, so they pass in any order
and when pytest-xdist spreads them over processes (each then has its own project, sandbox
and database). Each block is taken from the
README by its marker (``commands(ID)``) and run line by line with bash in the
project's folder; the test puts in only what the README tells the user to put in: the
loader definition's ``<checkout>``, the server, credentials and database, the month and the
invoice number. One more substitution, for Snowflake, is the emulator: ``meltano run`` loads
through ``target-snowflake-emulator`` (tests/e2e/test_snowflake.py), which inherits the
recipe's ``target-snowflake`` and its config. The module puts the project back as it found it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tap_partner_billing.sandbox.config import SandboxConfig
from tap_partner_billing.sandbox.server import SandboxServer
from tap_partner_billing.sandbox.service import Sandbox
from tests.doc_commands import ROOT, commands
from tests.e2e.conftest import MeltanoProject, billed_truths, query
from tests.e2e.ledger import (
    KEYS,
    MONEY,
    Warehouse,
    assert_warehouse_equals_sandbox,
    billed_exports,
    postgres_warehouse,
    unbilled_truths,
)
from tests.e2e.own_project import (
    add_to_meltano_yml,
    configure,
    meltano_yml,
    recipe,
    restored,
    shared_plugin,
    shell,
    summaries,
    yaml_above,
)
from tests.e2e.test_snowflake import DATABASE, EMULATOR, Emulator

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator
    from decimal import Decimal
    from pathlib import Path

    from tap_partner_billing.sandbox.tls import TlsFiles
    from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e
SCHEMA = "tap_partner_billing"  # PARTNER_BILLING_SCHEMA in the recipe's env: line
STATE_ID = "dev:tap-partner-billing-to-target-postgres"


def billed_since(sb: Sandbox, month: str, dataset: str) -> dict[str, tuple[int, Decimal]]:
    """(lines, money) per invoice of a billing month ``month`` (YYYY-MM) or later."""
    truths = {
        invoice: sb.billed_truth(invoice, dataset=dataset)
        for invoice, spec in sb.config.invoices.items()
        if spec.billing_month >= month.replace("-", "")
    }
    return {i: (t.line_count, t.pretax_total) for i, t in truths.items() if t.line_count}


def duplicate_keys(pg: Postgres) -> dict[str, int]:
    """Per table, keys held by more than one row (a line loaded twice)."""
    found = {}
    for table, keys in KEYS.items():
        columns = ", ".join(keys)
        grouped = f"SELECT {columns} FROM {SCHEMA}.{table} GROUP BY {columns} HAVING count(*) > 1"
        found[table] = int(query(pg, f"SELECT count(*) FROM ({grouped}) d")[0][0])
    return found


@dataclass
class Cookbook:
    """The own project configured for this module's sandbox, and its PostgreSQL database."""

    project: MeltanoProject
    server: SandboxServer
    pg: Postgres  # the cookbook's own database on the session's server
    first: subprocess.CompletedProcess[str]  # the PostgreSQL recipe's run
    first_live: dict[str, Any]  # what that run left, read right after it

    @property
    def sb(self) -> Sandbox:
        return self.server.sandbox

    @property
    def warehouse(self) -> Warehouse:
        return postgres_warehouse(self.pg, SCHEMA)

    def run(
        self, lines: list[str], env: dict[str, str] | None = None
    ) -> list[subprocess.CompletedProcess[str]]:
        return [shell(self.project, line, env) for line in lines]


def live_rows(wh: Warehouse) -> dict[str, Any]:
    return {
        f"{kind}_{dataset}": wh.live(f"{kind}_{dataset}", key, money)
        for dataset, money in MONEY.items()
        for kind, key in (("billed", "invoice_id"), ("unbilled", "billing_month"))
    }


@pytest.fixture(scope="module")
def cookbook(
    own_project: MeltanoProject, meltano: MeltanoProject, postgres: Postgres, tls: TlsFiles
) -> Iterator[Cookbook]:
    project = own_project
    server = SandboxServer(
        Sandbox(SandboxConfig(retry_after_seconds=0, polls_before_success=0)), tls
    ).start()
    try:
        with restored(project):
            configure(project, server)
            pg = postgres.fresh_database("cookbook")
            # Into PostgreSQL: the loader's definition pasted into meltano.yml, then the block.
            server_values = {
                "db.example.com": pg.host,
                "port: 5432": f"port: {pg.port}",
                "billing_loader": pg.user,
                "analytics": pg.database,
            }
            add_to_meltano_yml(project, meltano, yaml_above("cookbook-postgres", **server_values))
            lines = recipe(commands("cookbook-postgres"), **{"'the-password'": pg.password})
            results = [shell(project, line) for line in lines]
            book = Cookbook(project, server, pg, results[-1], {})
            book.first_live = live_rows(book.warehouse)
            yield book
    finally:
        server.stop()


def test_into_postgresql(cookbook: Cookbook) -> None:
    sb = cookbook.sb
    assert "meltano run" in commands("cookbook-postgres")[-1]
    # Every line once, exact money, per invoice and per unbilled month.
    assert cookbook.first_live == {
        f"{kind}_{dataset}": truth
        for dataset in MONEY
        for kind, truth in (
            ("billed", billed_truths(sb, dataset)),
            ("unbilled", unbilled_truths(sb, dataset)),
        )
    }
    assert duplicate_keys(cookbook.pg) == dict.fromkeys(KEYS, 0)
    # The password went to .env, never to meltano.yml.
    assert cookbook.pg.password not in (cookbook.project.root / "meltano.yml").read_text()
    assert (
        f"TARGET_POSTGRES_PASSWORD='{cookbook.pg.password}'"
        in (cookbook.project.root / ".env").read_text()
    )


def test_backfill_n_months(cookbook: Cookbook) -> None:
    sb = cookbook.sb
    old = sb.config.invoices["G000000000"].billing_month  # six months back, not loaded yet
    month = f"{old[:4]}-{old[4:]}"
    assert cookbook.first_live["billed_usage"].keys() == {"G000000001", "G000000002"}
    posts = len(sb.faults.requests("export"))
    cookbook.run(recipe(commands("cookbook-backfill"), **{"2026-06": month}))
    # Only the new invoice, and the one within the re-check window, are asked for.
    assert billed_exports(sb, posts) == {"G000000000", "G000000002"}
    wh = cookbook.warehouse
    for dataset, money in MONEY.items():
        assert wh.live(f"billed_{dataset}", "invoice_id", money) == billed_since(sb, month, dataset)
    assert duplicate_keys(cookbook.pg) == dict.fromkeys(KEYS, 0)


def test_export_one_invoice_again(cookbook: Cookbook) -> None:
    sb = cookbook.sb
    reissued = "G000000001"  # three months back: settled, not re-checked
    sb.reissue_invoice(reissued, lines=200)  # 240 lines before
    posts = len(sb.faults.requests("export"))
    cookbook.run(recipe(commands("cookbook-refresh"), G016907411=reissued))
    asked = billed_exports(sb, posts)
    assert reissued in asked
    assert asked <= {reissued, "G000000002"}  # and the invoice within the re-check window
    wh = cookbook.warehouse
    for dataset, money in MONEY.items():
        live = wh.live(f"billed_{dataset}", "invoice_id", money)
        assert live[reissued] == billed_truths(sb, dataset)[reissued]
    assert wh.live("billed_usage", "invoice_id", MONEY["usage"])[reissued][0] == 200
    # The 40 lines beyond the new count are marked deleted, not left as live rows.
    retired = f"SELECT count(*) FROM {SCHEMA}.billed_usage WHERE _sdc_deleted_at IS NOT NULL"
    assert query(cookbook.pg, f"{retired} AND invoice_id = %s", reissued) == [(40,)]
    assert duplicate_keys(cookbook.pg) == dict.fromkeys(KEYS, 0)


def test_unbilled_only(cookbook: Cookbook) -> None:
    sb = cookbook.sb
    sb.set_unbilled_lines("current", "USD", 90)  # a smaller snapshot than the first load's 150
    posts = len(sb.faults.requests("export"))
    with restored(cookbook.project):  # the later recipes use every stream
        *_, run = cookbook.run(recipe(commands("cookbook-unbilled")))
        [tap] = meltano_yml(cookbook.project)["plugins"]["extractors"]
    assert tap["select"] == ["unbilled_usage.*", "unbilled_reconciliation.*"]
    exports = [r.path for r in sb.faults.requests("export")[posts:]]
    assert len(exports) == 4, exports  # current and last, usage and reconciliation (USD)
    assert all("/unbilled/" in path for path in exports), exports
    assert set(summaries(run.stderr)) == {"unbilled_usage", "unbilled_reconciliation", "exports"}
    # The snapshot's lines exactly; the 60 it no longer has are marked deleted.
    wh = cookbook.warehouse
    for dataset, money in MONEY.items():
        assert wh.live(f"unbilled_{dataset}", "billing_month", money) == unbilled_truths(
            sb, dataset
        )
    retired = f"SELECT count(*) FROM {SCHEMA}.unbilled_usage WHERE _sdc_deleted_at IS NOT NULL"
    month = sb.unbilled_month("current")
    assert query(cookbook.pg, f"{retired} AND billing_month = %s", month) == [(60,)]
    assert duplicate_keys(cookbook.pg) == dict.fromkeys(KEYS, 0)


def test_daily_schedule(cookbook: Cookbook) -> None:
    *_, listed = cookbook.run(recipe(commands("cookbook-schedule")))
    tasks = "['tap-partner-billing target-postgres']"
    assert (
        listed.stdout.strip() == f"[0 6 * * *] job partner-billing-daily: partner-billing → {tasks}"
    )


def test_watching_a_long_run(cookbook: Cookbook) -> None:
    _, found, state = cookbook.run(recipe(commands("cookbook-watch")))
    assert (cookbook.project.root / "run.log").exists()
    lines = found.stdout.splitlines()
    assert any(" export started, operation " in line for line in lines), found.stdout
    assert any(" export succeeded after " in line for line in lines), found.stdout
    said = summaries(found.stdout)
    assert set(said) >= {"billed_usage", "unbilled_usage", "invoices", "exports"}, said
    stored = json.loads(state.stdout)
    assert set(stored["singer_state"]["bookmarks"]) >= set(KEYS) - {"invoices"}
    assert '"operation_url"' not in state.stdout  # no export left pending


def test_into_snowflake(
    cookbook: Cookbook, meltano: MeltanoProject, snowflake_key: Path, tmp_path: Path
) -> None:
    project, sb = cookbook.project, cookbook.sb
    account = {"/secrets/rsa_key.p8": str(snowflake_key), "database: RAW": f"database: {DATABASE}"}
    add_to_meltano_yml(project, meltano, yaml_above("cookbook-snowflake", **account))
    # The emulator: the same target-snowflake, run by the test harness, inheriting its config.
    # Its own config (the tests' emulator account) is left out: it takes the recipe's.
    emulator = {k: v for k, v in shared_plugin(meltano, EMULATOR).items() if k != "config"}
    add_to_meltano_yml(project, meltano, {"plugins": {"loaders": [emulator]}})
    [run] = recipe(commands("cookbook-snowflake"))
    assert run == "meltano run tap-partner-billing target-snowflake"
    em = Emulator(meltano, tmp_path / "snowflake", snowflake_key)
    try:
        env = {"SNOWFLAKE_EMULATOR_DB_PATH": str(em.db_path)}
        cookbook.run([f"{run}-emulator"], env)
        assert_warehouse_equals_sandbox(em.warehouse(SCHEMA), sb)
    finally:
        em.close()


def test_cookbook_loaders_are_the_repositorys() -> None:
    """The definitions the README gives a user load as the repository's loaders do."""
    repository = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loaders = {p["name"]: p for p in repository["plugins"]["loaders"]}
    for block_id in ("usage-own-project", "cookbook-postgres", "cookbook-snowflake"):
        [loader] = yaml_above(block_id)["plugins"]["loaders"]
        theirs = loaders[loader["name"]]
        assert loader["pip_url"] == theirs["pip_url"].replace("${MELTANO_PROJECT_ROOT}", str(ROOT))
        assert {k: loader["config"][k] for k in theirs["config"]} == theirs["config"]
        assert (loader["namespace"], loader["executable"]) == (
            theirs["namespace"],
            theirs["executable"],
        )
    assert yaml_above("cookbook-postgres")["env"] == repository["env"]
