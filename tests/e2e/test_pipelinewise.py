"""pipelinewise-target-postgres beside meltanolabs-target-postgres: the recipe and the facts.

docs/targets.md's recipe ("Into PostgreSQL with pipelinewise-target-postgres") runs as
written in the user's own project (``own_project``, tests/e2e/own_project.py: ``meltano
init`` and the README's Installation, the settings in its ``.env``): its loader definition
(the YAML block above its commands) merged into ``meltano.yml`` with only the connection
(host, port, user, password, database) pointing at the test PostgreSQL, the same pins as the
repository's, so its installation is linked and nothing is built again. Its commands run;
then the whole-ledger scenario (without the month roll-over) reruns its ``meltano run``, and
the SQL below the commands must sum the text money exactly. The project is put back as it was.

The second test feeds one tap output to both targets and checks every value that lands:
what docs/targets.md says each does with money, dates, objects, empty text and BATCH.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tap_partner_billing.sandbox.data import LineSpec, iter_usage_lines, pack_blobs
from tests.doc_commands import block_near, commands
from tests.e2e.conftest import (
    MeltanoProject,
    billed_truths,
    postgres_target,
    query,
    tap_command,
)
from tests.e2e.ledger import KEYS, postgres_warehouse, run_ledger_scenario, unbilled_truths
from tests.e2e.own_project import (
    add_to_meltano_yml,
    configure,
    recipe,
    restored,
    shell,
    yaml_above,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tap_partner_billing.sandbox.server import SandboxServer
    from tests.e2e.services import Postgres

pytestmark = pytest.mark.e2e
RECIPE = "pipelinewise-recipe"
LOADER = "target-postgres-pipelinewise"


def test_pipelinewise_recipe_loads_the_ledger_exactly(
    sandbox: SandboxServer, own_project: MeltanoProject, meltano: MeltanoProject, postgres: Postgres
) -> None:
    sb = sandbox.sandbox
    sb.config.polls_before_success = 0  # exports succeed at once: this test is about loading
    pg = postgres.fresh_database("pipelinewise_recipe")
    # The connection is the only thing the test changes: in the definition and the password.
    connection = {
        "db.example.com": pg.host,
        "port: 5432": f"port: {pg.port}",
        "user: loader": f"user: {pg.user}",
        "dbname: billing": f"dbname: {pg.database}",
    }
    definition = yaml_above(RECIPE, **connection)
    [loader] = definition["plugins"]["loaders"]
    assert loader["name"] == LOADER
    *setup, run = recipe(commands("pipelinewise-recipe"), **{"your-loader-password": pg.password})
    assert run == f"meltano run tap-partner-billing {LOADER}"
    sql = block_near(RECIPE, "sql", "after")
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    project = own_project
    with restored(project):
        configure(project, sandbox)
        add_to_meltano_yml(project, meltano, definition)
        for line in setup:
            shell(project, line)
        assert pg.password not in (project.root / "meltano.yml").read_text(encoding="utf-8")

        # Full load, unchanged rerun (no row added), re-issue + shrinking snapshot. (The month
        # roll-over retires unbilled rows by the same tombstones: test_ledger runs it.)
        schema = loader["config"]["default_target_schema"]
        warehouse = postgres_warehouse(pg, schema, text_money=True)

        def meltano_run() -> None:
            shell(project, run)

        run_ledger_scenario(meltano_run, warehouse, sb, roll_over=False)

    # The recipe's SQL sums the text money exactly: per invoice, per unbilled month.
    sums = ({str(k): (n, Decimal(t)) for k, n, t in query(pg, s)} for s in statements)
    by_invoice, by_month = sums
    assert by_invoice == billed_truths(sb)
    assert by_month == unbilled_truths(sb, "usage")
    # Tombstones are soft deletes: the re-issued invoice's dropped lines stay, money empty.
    [(rows, dropped, with_money)] = query(
        pg,
        f"SELECT count(*), count(_sdc_deleted_at), "
        f"count(billing_pre_tax_total) FILTER (WHERE _sdc_deleted_at IS NOT NULL) "
        f"FROM {schema}.billed_usage WHERE invoice_id = 'G000000002'",
    )
    assert rows - dropped == sb.config.invoices["G000000002"].lines
    assert dropped > 0
    assert with_money == 0


# --- Both targets fed one tap output -------------------------------------------------------

PLANTED = "G000000099"
# What each target makes of the tap's column kinds (information_schema.columns.data_type).
COLUMNS = {
    "money": ("billed_usage", "billing_pre_tax_total"),
    "date-time": ("billed_usage", "usage_date"),
    "object": ("billed_usage", "_extra_fields"),
    "array": ("invoices", "amendments"),
    "JSON text": ("billed_usage", "additional_info"),
    "integer": ("billed_usage", "line_ordinal"),
    "tombstone": ("billed_usage", "_sdc_deleted_at"),
}
TYPES = {
    "meltanolabs": {
        "money": "numeric",
        "date-time": "timestamp without time zone",
        "object": "jsonb",
        "array": "ARRAY",
        "JSON text": "text",
        "integer": "bigint",
        "tombstone": "timestamp without time zone",
    },
    "pipelinewise": {
        "money": "character varying",
        "date-time": "timestamp without time zone",
        "object": "jsonb",
        "array": "jsonb",
        "JSON text": "character varying",
        "integer": "numeric",
        "tombstone": "timestamp without time zone",
    },
}
EMPTY_TEXT_TO_NULL = "'' became NULL"


def planted_blobs(month: str) -> dict[str, bytes]:
    """Sandbox usage lines, two planted: an unknown column (an object) and another time zone.

    The tap puts the unknown column into ``_extra_fields`` and writes the date-time in UTC.
    """
    spec = LineSpec(99, month, PLANTED, "USD", "full")
    lines = [json.loads(line) for line in iter_usage_lines(spec, 12)]
    lines[0]["SurpriseColumn"] = {"zone": {"code": "weu"}, "ids": [1, 2.50], "on": True}
    lines[1]["UsageDate"] = f"{month[:4]}-{month[4:]}-05T23:30:00-02:00"
    return pack_blobs([json.dumps(line).encode() for line in lines], blob_count=1, seed=99)


def pipelinewise_target(
    meltano: MeltanoProject, pg: Postgres, schema: str, folder: Path
) -> list[str]:
    """The command of Meltano's installed pipelinewise-target-postgres, loading ``schema``."""
    config = folder / f"pipelinewise-{schema}.json"
    connection = {"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password}
    config.write_text(
        json.dumps({**connection, "dbname": pg.database, "default_target_schema": schema})
    )
    target = meltano.root / ".meltano" / "loaders" / LOADER / "venv" / "bin" / "target-postgres"
    return [str(target), "--config", str(config)]


def landed_as_sent(db: object, sent: object) -> bool:
    """A value read back equals what the tap sent: date-times in UTC, decimals exactly."""
    if isinstance(db, datetime):
        assert isinstance(sent, str)
        moment = datetime.fromisoformat(sent)
        offset = moment.utcoffset()
        assert offset is not None
        assert offset.total_seconds() == 0  # the tap writes every date-time in UTC
        return db == moment.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(db, Decimal):
        return sent is not None and db == Decimal(str(sent))
    return db == sent


def differences(pg: Postgres, schema: str, records: list[dict[str, Any]]) -> Counter[str]:
    """Every value of ``schema`` against the tap's RECORD messages, differences counted."""
    import psycopg
    from psycopg.rows import dict_row

    found: Counter[str] = Counter()
    with psycopg.connect(pg.dsn(), row_factory=dict_row) as conn:
        for stream in {r["stream"] for r in records}:
            keys = KEYS[stream]
            rows = {
                tuple(str(row[k]) for k in keys): row
                for row in conn.execute(f"SELECT * FROM {schema}.{stream}").fetchall()
            }
            sent = [r["record"] for r in records if r["stream"] == stream]
            assert len(rows) == len(sent), stream  # every line once
            for record in sent:
                row = rows[tuple(str(record[k]) for k in keys)]
                for column, value in record.items():
                    if landed_as_sent(row[column], value):
                        continue
                    if value == "" and row[column] is None:
                        found[EMPTY_TEXT_TO_NULL] += 1
                    else:
                        found[f"{stream}.{column}: {value!r} became {row[column]!r}"] += 1
    return found


def test_postgres_targets_fed_the_same_tap_output(
    sandbox: SandboxServer, meltano: MeltanoProject, postgres: Postgres, tmp_path: Path
) -> None:
    sb = sandbox.sandbox
    sb.config.polls_before_success = 0  # exports succeed at once: this test is about loading
    month = sb.config.invoices["G000000001"].billing_month
    sb.load_invoice(PLANTED, month, planted_blobs(month))
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(sandbox.tls.ca_bundle)}
    only = {"invoice_ids": [PLANTED], "discover_invoices": False, "billing_periods": []}
    tap = subprocess.run(
        tap_command(sandbox, tmp_path, **only), env=env, capture_output=True, check=False
    )
    assert tap.returncode == 0, tap.stderr[-3000:]
    records = [json.loads(line) for line in tap.stdout.splitlines() if b'"RECORD"' in line]
    extra = [r["record"]["_extra_fields"] for r in records if r["record"].get("_extra_fields")]
    assert extra == [{"SurpriseColumn": {"zone": {"code": "weu"}, "ids": [1, "2.5"], "on": True}}]

    targets = {
        "meltanolabs": postgres_target(meltano, postgres, "facts_meltanolabs", tmp_path),
        "pipelinewise": pipelinewise_target(meltano, postgres, "facts_pipelinewise", tmp_path),
    }
    for name, target in targets.items():
        loaded = subprocess.run(target, input=tap.stdout, env=env, capture_output=True, check=False)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        types = {
            (str(table), str(column)): str(kind)
            for table, column, kind in query(
                postgres,
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s",
                f"facts_{name}",
            )
        }
        assert {kind: types[where] for kind, where in COLUMNS.items()} == TYPES[name]

    # Every value as sent: money exactly (text, or numeric(38,18)), date-times as UTC wall
    # time (the tap writes UTC), the object and the array as JSON; pipelinewise stores an
    # empty string as NULL.
    assert differences(postgres, "facts_meltanolabs", records) == Counter()
    pipelinewise = differences(postgres, "facts_pipelinewise", records)
    assert set(pipelinewise) == {EMPTY_TEXT_TO_NULL}

    # BATCH: the tap's BATCH messages stop pipelinewise-target-postgres at the first one.
    batch = {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": (tmp_path / "batches").as_uri()},
    }
    tap = subprocess.run(
        tap_command(sandbox, tmp_path, batch_config=batch, **only),
        env=env,
        capture_output=True,
        check=False,
    )
    assert tap.returncode == 0, tap.stderr[-3000:]
    assert b'"type":"BATCH"' in tap.stdout
    refused = subprocess.run(
        pipelinewise_target(meltano, postgres, "facts_batch", tmp_path),
        input=tap.stdout,
        env=env,
        capture_output=True,
        check=False,
    )
    assert refused.returncode != 0
    assert b"Exception: Unknown message type BATCH" in refused.stderr
