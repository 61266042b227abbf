"""The real target-snowflake, loading into fakesnow (a Snowflake emulator on DuckDB).

``target-snowflake-emulator`` runs ``TargetSnowflake.cli()`` of the installed
meltanolabs-target-snowflake with ``snowflake.connector.connect`` patched to fakesnow, whose
DuckDB files live in ``$SNOWFLAKE_EMULATOR_DB_PATH``. ``snowflake-emulator-query`` runs SQL
(a JSON list of statements on stdin) against the same files and prints the rows as JSON.

Every statement target-snowflake issues reaches the emulator as the target wrote it (CREATE
SCHEMA, CREATE TABLE, ALTER TABLE, CREATE FILE FORMAT, the reflection queries and the MERGE
with its casts, join, update and insert lists) except these, which fakesnow 0.12.1 cannot
execute; each is adapted in the narrowest way, in :class:`EmulatorConnector`:

1. ``PUT … '@~/target-snowflake/<sync id>'``: fakesnow has no user stage (``@~``, quoted).
   The file goes to a named internal stage ``<DATABASE>.EMULATOR.USER_STAGE`` under the same
   path, unquoted.
2. The MERGE's source ``select $1:col::TYPE as COL … from '@~/…'(file_format => …)``:
   fakesnow cannot select from a staged file. After the PUT the staged file is copied with
   ``COPY INTO`` (the target's own file format) into a table of one VARIANT column,
   numbered in file order; the MERGE reads that table instead of the stage (``SRC:`` for
   ``$1:``), everything else in it as generated.
3. The MERGE's dedup ``QUALIFY ROW_NUMBER() OVER (PARTITION BY <aliases> ORDER BY SEQ8()
   DESC) = 1``: fakesnow cannot run ``SEQ8()`` inside a window, nor a QUALIFY on select-list
   aliases inside MERGE. ``SEQ8()`` becomes the file-order number of step 2 and each alias
   the expression it names (the same rows in Snowflake).
4. ``REMOVE '@~/target-snowflake/<sync id>/'``: not parsed by fakesnow. The files are
   deleted from the stage's folder and the table of step 2 is dropped.
5. ``DROP FILE FORMAT``: not parsed by fakesnow; skipped (the emulator keeps the format).

Two differences are in the session, not in a statement: a session that names a database and
no schema starts in PUBLIC, as Snowflake's do (fakesnow's start in none, and then cannot run
a MERGE); and statements run one at a time (fakesnow's connections share one DuckDB
connection, which refuses a second statement while one runs; the target drains streams in
threads).

Authentication is not emulated: fakesnow accepts any account and user. The target still
reads and converts the private key of key-pair auth before it connects, as it would for
Snowflake.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import threading
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

STAGE_SCHEMA = "EMULATOR"
STAGE = "USER_STAGE"
STAGE_LOCK = threading.Lock()
USER_STAGE = re.compile(r"'@~/target-snowflake/([^'/]+)/?'")


def _db_path() -> str:
    path = os.environ.get("SNOWFLAKE_EMULATOR_DB_PATH")
    if not path:
        sys.exit("SNOWFLAKE_EMULATOR_DB_PATH must name the emulator's folder")
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def _one_statement_at_a_time() -> None:
    from fakesnow.cursor import FakeSnowflakeCursor
    from fakesnow.instance import FakeSnow

    # fakesnow's connections share one DuckDB connection, which refuses a second statement
    # while one runs ("connection is busy"); the target drains several streams in threads.
    # The emulator runs one statement at a time, as a single-threaded server would.
    lock = threading.RLock()
    for name in ("execute", "executemany"):
        method = getattr(FakeSnowflakeCursor, name)

        def serialised(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with lock:
                return _method(*args, **kwargs)

        setattr(FakeSnowflakeCursor, name, serialised)

    # Snowflake starts a session that names a database but no schema in its PUBLIC schema;
    # fakesnow starts it in none, and then cannot run a MERGE (even a fully qualified one).
    connect = FakeSnow.connect

    def connect_in_public(
        self: FakeSnow, database: str | None = None, schema: str | None = None, **kwargs: object
    ) -> object:
        return connect(self, database, schema or ("PUBLIC" if database else None), **kwargs)

    FakeSnow.connect = connect_in_public


@contextmanager
def _emulator() -> Iterator[None]:
    import fakesnow

    _one_statement_at_a_time()
    with fakesnow.patch(db_path=_db_path()):
        yield


def _connector_class() -> type[Any]:
    """:class:`EmulatorConnector`, defined once target_snowflake is importable."""
    from sqlalchemy.sql import text
    from target_snowflake.connector import SnowflakeConnector

    class EmulatorConnector(SnowflakeConnector):  # type: ignore[misc]
        """target-snowflake's connector with the five adaptations of the module docstring."""

        def _stage(self) -> str:
            database = str(self.config["database"]).upper()
            return f"{database}.{STAGE_SCHEMA}.{STAGE}"

        def _staged_table(self, sync_id: str) -> str:
            database = str(self.config["database"]).upper()
            return f'{database}.{STAGE_SCHEMA}."STAGED_{sync_id}"'

        def _get_put_statement(self, sync_id: str, file_uri: str) -> tuple[Any, dict[str, Any]]:
            # Adaptation 1: a named stage instead of the user stage.
            statement, kwargs = super()._get_put_statement(sync_id, file_uri)
            named = f"@{self._stage()}/target-snowflake/\\1"
            return text(USER_STAGE.sub(named, statement.text)), kwargs

        def put_batches_to_stage(self, sync_id: str, files: Iterable[str]) -> None:
            database = str(self.config["database"]).upper()
            with STAGE_LOCK:  # once, before the first PUT of any stream
                if not self.__dict__.get("_stage_created"):
                    with self._connect() as conn, conn.begin():
                        schema = f"{database}.{STAGE_SCHEMA}"
                        conn.execute(text(f"create schema if not exists {schema}"))
                        conn.execute(text(f"create stage if not exists {self._stage()}"))
                    self.__dict__["_stage_created"] = True
            super().put_batches_to_stage(sync_id, files)
            # Adaptation 2: the staged file as a table, numbered in file order.
            raw = self._staged_table(sync_id + "_RAW")
            with self._connect() as conn, conn.begin():
                conn.execute(text(f"create table {raw} (SRC variant)"))
                conn.execute(
                    text(
                        f"copy into {raw} from @{self._stage()}/target-snowflake/{sync_id} "
                        f"file_format = (type = 'JSON')"
                    )
                )
                conn.execute(
                    text(
                        f"create table {self._staged_table(sync_id)} as "
                        f"select SRC, seq8() as SEQ from {raw}"
                    )
                )
                conn.execute(text(f"drop table {raw}"))

        def _get_merge_from_stage_statement(
            self,
            full_table_name: Any,
            schema: dict[str, Any],
            sync_id: str,
            file_format: str,
            key_properties: Iterable[str],
        ) -> tuple[Any, dict[str, Any]]:
            statement, kwargs = super()._get_merge_from_stage_statement(
                full_table_name, schema, sync_id, file_format, key_properties
            )
            return text(_adapt_merge(statement.text, self._staged_table(sync_id))), kwargs

        def remove_staged_files(self, sync_id: str) -> None:
            # Adaptation 4: REMOVE as a folder deletion, and the staged table dropped.
            from fakesnow.transforms.stage import internal_dir

            shutil.rmtree(
                internal_dir(self._stage(), f"target-snowflake/{sync_id}"), ignore_errors=True
            )
            with self._connect() as conn, conn.begin():
                conn.execute(text(f"drop table if exists {self._staged_table(sync_id)}"))

        def drop_file_format(self, file_format: str) -> None:
            # Adaptation 5: DROP FILE FORMAT is not parsed by fakesnow.
            del file_format

    return EmulatorConnector


SOURCE = re.compile(r"from '@~/target-snowflake/[^']+'\(file_format => [^)]+\)")
QUALIFY = re.compile(
    r"QUALIFY ROW_NUMBER\(\) OVER \(PARTITION BY (.+?) ORDER BY SEQ8\(\) DESC\) = 1"
)
SELECTED = re.compile(r"\$1:(.+?) as ([^\s,]+)")


def _adapt_merge(sql: str, staged_table: str) -> str:
    """Adaptations 2 and 3 applied to the MERGE text target-snowflake generated."""
    if not SOURCE.search(sql) or not QUALIFY.search(sql):
        msg = f"target-snowflake's MERGE changed shape; adapt the emulator harness:\n{sql}"
        raise RuntimeError(msg)
    expressions = {alias: f"SRC:{expr}" for expr, alias in SELECTED.findall(sql)}

    def partition(match: re.Match[str]) -> str:
        keys = [expressions[key.strip()] for key in match.group(1).split(",")]
        return f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} ORDER BY SEQ DESC) = 1"

    sql = QUALIFY.sub(partition, sql)
    sql = SOURCE.sub(f"from {staged_table}", sql)
    return sql.replace("$1:", "SRC:")


def main() -> None:
    """``target-snowflake-emulator``: the real target's CLI, against the emulator."""
    with _emulator():
        from target_snowflake.sinks import SnowflakeSink
        from target_snowflake.target import TargetSnowflake

        SnowflakeSink.connector_class = _connector_class()
        TargetSnowflake.cli()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (int, float, str, type(None))):
        return value
    return str(value)


def query() -> None:
    """``snowflake-emulator-query DATABASE``: answer requests until stdin closes.

    Each stdin line is a JSON list of statements; the answer is one stdout line, a JSON list
    of each statement's rows (Decimals as text), or ``{"error": message}``. The emulator's
    files are opened for each request and closed after it, so a target may load in between.
    """
    import warnings

    import snowflake.connector

    warnings.filterwarnings("ignore")
    for line in sys.stdin:
        statements = json.loads(line)
        try:
            with _emulator():
                conn = snowflake.connector.connect(database=sys.argv[1])
                cur = conn.cursor()
                results = []
                for statement in statements:
                    cur.execute(statement)
                    results.append([[_plain(v) for v in row] for row in cur.fetchall()])
                conn.close()
            answer: Any = results
        except Exception as err:
            answer = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
