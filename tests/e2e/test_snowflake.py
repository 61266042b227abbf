"""The real target-snowflake (meltanolabs-target-snowflake 0.20.4) loading into fakesnow.

fakesnow 0.12.1 is a Snowflake emulator on DuckDB. The ``target-snowflake-emulator`` loader
is the real target-snowflake, with its declared config, run by the harness
``tests/snowflake_emulator`` that patches fakesnow in; it is test-only
(``tests/snowflake_emulator/meltano-plugin.yml``), added to the tests' copy of the project.
Every statement the target issues reaches the emulator as the target wrote it, except these
five, each adapted in the narrowest way (the harness's docstring has the details; docs/snowflake.md
lists them too):

1. ``PUT`` to the user stage ``'@~/…'``: to a named internal stage, same path (fakesnow has
   no user stage).
2. The MERGE's source, a SELECT from the staged file: the staged file is copied (``COPY
   INTO``, one VARIANT column, numbered in file order) into a table the MERGE reads instead.
3. The MERGE's ``QUALIFY ROW_NUMBER() OVER (PARTITION BY <aliases> ORDER BY SEQ8() DESC)``:
   the aliases become the expressions they name, ``SEQ8()`` the file order number.
4. ``REMOVE`` of the staged files: deleted from the emulator's stage folder.
5. ``DROP FILE FORMAT``: skipped.

And in the session: no schema named means PUBLIC (as in Snowflake; fakesnow has none), and
one statement runs at a time (fakesnow cannot run two at once; the target uses threads).

Not emulated: authentication (the target still loads the key-pair private key), warehouses,
roles, and Snowflake's own query engine (DuckDB runs the statements). fakesnow's ``SUM`` over
NUMBER goes through DOUBLE, so sums cast to ``number(38,18)`` first, and every live value is
also fetched and summed here as a Decimal.

Through ``meltano run``: the whole ledger (full load, rerun with state, re-issue + shrinking
snapshot, month roll-over) and the column types of docs/snowflake.md. Direct pipes: a rerun without
state, and the BATCH route.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.e2e.conftest import MeltanoProject, sandbox_env, tap_command, tap_into_target
from tests.e2e.ledger import (
    KEYS,
    Warehouse,
    assert_warehouse_equals_sandbox,
    run_ledger_scenario,
)
from tests.e2e.services import ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tap_partner_billing.sandbox.server import SandboxServer

pytestmark = pytest.mark.e2e
EMULATOR = "target-snowflake-emulator"
DATABASE = "BILLING"  # the emulator loader's database (its meltano-plugin.yml)


@dataclass
class Emulator:
    """One emulated Snowflake account (a folder of DuckDB files) and how to load it."""

    meltano: MeltanoProject
    db_path: Path
    key_path: Path
    server: subprocess.Popen[str] | None = None

    def env(self, schema: str) -> dict[str, str]:
        """What the sandbox environment's emulator loader reads, loading into ``schema``."""
        return {
            "SNOWFLAKE_EMULATOR_DB_PATH": str(self.db_path),
            "PARTNER_BILLING_SANDBOX_SNOWFLAKE_KEY_PATH": str(self.key_path),
            "TARGET_SNOWFLAKE_EMULATOR_DEFAULT_TARGET_SCHEMA": schema,
        }

    def bin(self, name: str) -> str:
        return str(self.meltano.root / f".meltano/loaders/{EMULATOR}/venv/bin/{name}")

    def target_command(self, schema: str, folder: Path) -> list[str]:
        """The emulator target with exactly the config ``meltano run`` would give it."""
        printed = self.meltano.run(
            "--environment=sandbox", "config", "print", EMULATOR, env=self.env(schema)
        )
        config = folder / f"snowflake-{schema}.json"
        config.write_text(printed.stdout)
        return [self.bin(EMULATOR), "--config", str(config)]

    def query(self, *statements: str) -> list[list[list[Any]]]:
        """Rows of each statement, run by fakesnow on the emulator's files (Decimals as text).

        One ``snowflake-emulator-query`` process answers every query of a test (it opens the
        files per request, so targets load in between).
        """
        if self.server is None:
            self.server = subprocess.Popen(
                [self.bin("snowflake-emulator-query"), DATABASE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, **self.env("")},
            )
        assert self.server.stdin is not None
        assert self.server.stdout is not None
        self.server.stdin.write(json.dumps(statements) + "\n")
        self.server.stdin.flush()
        answer = json.loads(self.server.stdout.readline())
        assert isinstance(answer, list), answer
        return answer

    def close(self) -> None:
        if self.server is not None:
            self.server.communicate(timeout=60)  # closes stdin: the server ends

    def warehouse(self, schema: str) -> Warehouse:
        """The ledger scenario's view of one schema."""

        def live(table: str, key: str, money: str) -> dict[str, tuple[int, Decimal]]:
            sums, values = self.query(
                f"select {key}, count(*), sum({money}::number(38,18)) from {schema}.{table} "
                f"where _sdc_deleted_at is null group by {key}",
                f"select {key}, {money} from {schema}.{table} where _sdc_deleted_at is null",
            )
            totals = {str(k): (int(n), Decimal(total)) for k, n, total in sums}
            # The sums again from every value, never through a float.
            by_key: dict[str, Decimal] = {}
            with localcontext() as ctx:
                ctx.prec = 80
                for k, value in values:
                    by_key[str(k)] = by_key.get(str(k), Decimal(0)) + Decimal(value)
            assert by_key == {k: total for k, (_, total) in totals.items()}
            return totals

        def invoices() -> list[tuple[Any, ...]]:
            rows = self.query(f"select id, total_charges, billing_month from {schema}.invoices")
            return [tuple(row) for row in rows[0]]

        def row_count() -> int:
            counts = self.query(*(f"select count(*) from {schema}.{table}" for table in KEYS))
            return sum(int(rows[0][0]) for rows in counts)

        return Warehouse(live, invoices, row_count)

    def duplicate_keys(self, schema: str) -> dict[str, int]:
        """Per table, how many keys are held by more than one row."""
        tables = list(KEYS)
        results = self.query(
            *(
                f"select count(*) from (select {', '.join(KEYS[t])} from {schema}.{t} "
                f"group by {', '.join(KEYS[t])} having count(*) > 1)"
                for t in tables
            )
        )
        return {t: int(rows[0][0]) for t, rows in zip(tables, results, strict=True)}


@pytest.fixture
def emulator(meltano: MeltanoProject, snowflake_key: Path, tmp_path: Path) -> Iterator[Emulator]:
    em = Emulator(meltano, tmp_path / "snowflake", snowflake_key)
    yield em
    em.close()


def documented_columns() -> tuple[dict[str, dict[str, str]], dict[str, tuple[str, int]]]:
    """docs/snowflake.md's column table: {table: {column: type}}, {table: (type, count)}.

    The second is the type of "every other column" and how many there are.
    """
    text = (ROOT / "docs" / "snowflake.md").read_text(encoding="utf-8")
    section = text.split("<!-- snowflake-columns:start -->")[1].split(
        "<!-- snowflake-columns:end -->"
    )[0]
    typed: dict[str, dict[str, str]] = {}
    others: dict[str, tuple[str, int]] = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].isupper():
            continue
        table, sql_type, columns = cells
        if match := re.fullmatch(r"every other column \((\d+)\)", columns):
            others[table] = (sql_type, int(match.group(1)))
        else:
            for column in re.split(r"`?, `?", columns):
                typed.setdefault(table, {})[column] = sql_type
    return typed, others


def assert_columns_as_documented(emulator: Emulator, schema: str) -> None:
    """information_schema types, NOT NULL and primary keys equal docs/snowflake.md's table."""
    columns, keys = emulator.query(
        "select table_name, column_name, data_type, numeric_precision, numeric_scale, "
        f"is_nullable from information_schema.columns where table_schema = '{schema.upper()}'",
        f"show primary keys in schema {schema}",
    )
    typed, others = documented_columns()
    assert set(typed) == set(others) == {t.upper() for t in KEYS}
    found: dict[str, dict[str, str]] = {}
    other_count = dict.fromkeys(others, 0)
    for table, column, data_type, precision, scale, nullable in columns:
        sql_type = f"NUMBER({precision},{scale})" if data_type == "NUMBER" else data_type
        if nullable == "NO":
            sql_type += " NOT NULL"
        if column not in typed[table] and sql_type == others[table][0]:
            other_count[table] += 1
        else:
            found.setdefault(table, {})[column] = sql_type
    assert found == typed
    assert other_count == {table: count for table, (_, count) in others.items()}
    primary: dict[str, list[str]] = {}
    for row in keys:  # created_on, database, schema, table, column, key_sequence, …
        primary.setdefault(row[3], []).append(row[4])
    assert primary == {t.upper(): [k.upper() for k in KEYS[t]] for t in KEYS}


def test_target_snowflake_resolves_at_the_pinned_version(meltano: MeltanoProject) -> None:
    """The declared target-snowflake installs, and every declared setting is one it has."""
    about = json.loads(meltano.run("invoke", "target-snowflake", "--about", "--format=json").stdout)
    assert about["name"] == "target-snowflake"
    assert about["version"] == "0.20.4"
    declared = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (loader,) = [p for p in declared["plugins"]["loaders"] if p["name"] == "target-snowflake"]
    names = {s["name"] for s in loader["settings"]}
    assert names <= set(about["settings"]["properties"]), names - set(
        about["settings"]["properties"]
    )
    assert set(loader["config"]) <= names
    sensitive = {s["name"] for s in loader["settings"] if s.get("sensitive")}
    assert sensitive == {"private_key", "private_key_passphrase", "password"}


def test_whole_ledger_via_meltano_into_snowflake(
    sandbox: SandboxServer, meltano: MeltanoProject, emulator: Emulator
) -> None:
    schema = "ledger"
    env = {**sandbox_env(sandbox), **emulator.env(schema)}

    def run() -> None:
        meltano.run(
            "--environment=sandbox",
            "run",
            "--state-id-suffix=snowflake",
            "tap-partner-billing",
            EMULATOR,
            env=env,
        )

    run_ledger_scenario(run, emulator.warehouse(schema), sandbox.sandbox)
    assert_columns_as_documented(emulator, schema)
    assert emulator.duplicate_keys(schema) == dict.fromkeys(KEYS, 0)


def test_rerun_without_state_leaves_no_duplicate_key(
    sandbox: SandboxServer, emulator: Emulator, tmp_path: Path
) -> None:
    schema = "no_state"
    tap = tap_command(sandbox, tmp_path)
    target = emulator.target_command(schema, tmp_path)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(sandbox.tls.ca_bundle)}
    env.update(emulator.env(schema))
    wh = emulator.warehouse(schema)
    tap_into_target(tap, target, env, None)
    rows = wh.row_count()
    tap_into_target(tap, target, env, None)  # no --state: every line again
    assert wh.row_count() == rows
    assert emulator.duplicate_keys(schema) == dict.fromkeys(KEYS, 0)
    assert_warehouse_equals_sandbox(wh, sandbox.sandbox)


def test_batch_route_into_snowflake(
    sandbox: SandboxServer, emulator: Emulator, tmp_path: Path
) -> None:
    """BATCH files (gzip JSONL) staged and merged by target-snowflake: the same exact sums."""
    schema = "from_batch"
    batch = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}/batches", "prefix": "sf-"},
    }
    tap = tap_command(sandbox, tmp_path, batch_config=batch)
    target = emulator.target_command(schema, tmp_path)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(sandbox.tls.ca_bundle)}
    env.update(emulator.env(schema))
    _, records, _ = tap_into_target(tap, target, env, None)
    assert records == []  # every record went through a BATCH file
    assert_warehouse_equals_sandbox(emulator.warehouse(schema), sandbox.sandbox)
    assert emulator.duplicate_keys(schema) == dict.fromkeys(KEYS, 0)
