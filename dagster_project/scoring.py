"""Batch scoring: one partition day at a time, streamed in Arrow record batches, each day replaced in one
transaction.

A day's feature rows are read from DuckDB as Arrow record batches of ``scoring.batch_rows`` rows, validated
(see validation.py), encoded and predicted batch by batch, and inserted back through Arrow, so peak memory
follows the batch size, not the partition. The day's previous predictions are deleted first and the inserts
follow in the same transaction: a failure or a killed process leaves the previous content of the day.

The predictions table has no primary key. DuckDB keeps a key's ART index in memory and maintains it on every
delete, insert and commit: replacing a scored day of 1M rows cost 40-60 s with the key against 2.5 s without
it (bench/RESULTS.md). (partition, entity) stays unique by construction (the day is deleted and its feature
rows, unique per the dbt test on the feature model, are inserted once, in one transaction) and by a check
before each commit (``DuplicateKeysError`` rolls the day back).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.registry import LoadedModel
from dagster_project.use_case import UseCase
from dagster_project.validation import (
    InputSchema,
    InvalidInputError,
    check_signature,
    describe_invalid,
    input_schema,
    training_ranges,
    validate_batch,
)
from dagster_project.warehouse import ensure_schema, transaction

# DuckDB caches every block it reads or writes up to its memory_limit (by default 80% of the machine's RAM):
# scoring a 10M-row day grew the process to 2.8 GiB, most of it cached feature blocks never read again.
# Scoring caps DuckDB's memory while it writes, so the process's peak follows the batch size, not the day;
# what does not fit (the uniqueness check's hash table on a very large day) spills to DuckDB's temp directory.
SCORING_MEMORY_LIMIT = "512MiB"

# The table always has at least this many reason-code slots, whatever scoring.reason_codes says, so its
# layout (and the dbt mart and on-run-start hook built on it, see dbt/macros) does not depend on the YAML;
# a larger k adds slots, k = 0 leaves them null.
MIN_REASON_SLOTS = 3


def reason_columns(slots: int) -> dict[str, str]:
    columns = {}
    for i in range(1, slots + 1):
        columns[f"reason_{i}_feature"] = "varchar"
        columns[f"reason_{i}_contribution"] = "double"
    return columns


def predictions_columns(uc: UseCase) -> dict[str, str]:
    """Column name -> DuckDB type of the predictions table (dbt/macros/create_predictions_source.sql mirrors it)."""
    return {
        uc.partition_column: "date not null",
        uc.entity_key: "varchar not null",
        "model_name": "varchar not null",
        "model_version": "integer not null",
        "scored_at": "timestamptz not null",
        "run_id": "varchar not null",
        "probability": "double not null",
        "decision": "boolean not null",
        "threshold": "double not null",
        **reason_columns(max(uc.reason_codes, MIN_REASON_SLOTS)),
    }


# Analyst marts built by dbt on the predictions (views in the warehouse) are published as tables with them:
# the published file holds no feature tables, so a view there would not resolve.
MARTS_SCHEMA = "marts"


def published_tables(con: duckdb.DuckDBPyConnection, uc: UseCase) -> list[str]:
    """What a scoring run publishes for readers: the predictions, the quarantine and every analyst mart."""
    marts = [
        f"{MARTS_SCHEMA}.{name}"
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by 1", [MARTS_SCHEMA]
        ).fetchall()
    ]
    return [uc.predictions_table, quarantine_table(uc), *marts]


def quarantine_table(uc: UseCase) -> str:
    """Rows that failed input validation. Not in schema `predictions`: readers take every table there for
    a predictions table (the monitoring app does)."""
    return f"quarantine.{uc.name}"


class DuplicateKeysError(RuntimeError):
    """A scored day would hold an entity twice: the day is rolled back (its previous predictions stay)."""


def ensure_predictions_table(con: duckdb.DuckDBPyConnection, uc: UseCase) -> None:
    """Create the predictions and quarantine tables (or add reason-code columns to an older one) and the view.

    A predictions table made before the key was dropped is rebuilt without it (see drop_primary_key).
    """
    ensure_schema(con, "predictions")
    columns = predictions_columns(uc)
    body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    con.execute(f"create table if not exists {uc.predictions_table} ({body})")
    drop_primary_key(con, uc.predictions_table)
    for name, kind in reason_columns(max(uc.reason_codes, MIN_REASON_SLOTS)).items():
        con.execute(f"alter table {uc.predictions_table} add column if not exists {name} {kind}")
    ensure_schema(con, "quarantine")
    con.execute(
        f"create table if not exists {quarantine_table(uc)} ("
        f"{uc.partition_column} date not null, {uc.entity_key} varchar not null, column_name varchar, "
        "failed_check varchar not null, value varchar, run_id varchar not null, quarantined_at timestamptz not null, "
        "partition_rejected boolean not null)"
    )
    con.execute(f"create or replace view {uc.predictions_table}_latest as {latest_view_sql(uc)}")


def drop_primary_key(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Rebuild ``table`` without its primary key, keeping its rows, columns, types and NOT NULLs; True if it had one.

    DuckDB cannot drop a constraint, so a copy is made and swapped in, all in one transaction: a failure
    leaves the original table. Views on the table bind by name, so they read the new one.
    """
    schema, name = table.split(".")
    (has_key,) = con.execute(
        "select count(*) > 0 from duckdb_constraints() where schema_name = ? and table_name = ? "
        "and constraint_type = 'PRIMARY KEY'",
        [schema, name],
    ).fetchone()
    if not has_key:
        return False
    layout = con.execute(
        "select column_name, data_type, is_nullable from duckdb_columns() where schema_name = ? and table_name = ? "
        "order by column_index",
        [schema, name],
    ).fetchall()
    body = ", ".join(f"{column} {kind}{'' if nullable else ' not null'}" for column, kind, nullable in layout)
    rebuilt = f"{schema}.{name}__without_key"
    with transaction(con):
        con.execute(f"drop table if exists {rebuilt}")
        con.execute(f"create table {rebuilt} ({body})")
        con.execute(f"insert into {rebuilt} select * from {table}")
        con.execute(f"drop table {table}")
        con.execute(f"alter table {rebuilt} rename to {name}")
    return True


def latest_view_sql(uc: UseCase) -> str:
    """The analysts' `latest` view: the newest scored day (tomorrow's entities once the evening batch ran)."""
    return (
        f"select * from {uc.predictions_table} where {uc.partition_column} = "
        f"(select max({uc.partition_column}) from {uc.predictions_table})"
    )


def days(start: date, end: date) -> Iterator[date]:
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


@dataclass(frozen=True)
class ScoredDay:
    day: date
    rows: int
    mean_probability: float | None
    quarantined_rows: int = 0
    unseen_levels: dict[str, int] = field(default_factory=dict)
    batches: int = 0


@dataclass
class BackfillProgress:
    """Days done, rows and rows per second of a run over ``total_days`` days, one line per day scored."""

    total_days: int
    started: float = field(default_factory=time.monotonic)
    days_done: int = 0
    rows: int = 0

    def day_done(self, scored: ScoredDay) -> str:
        self.days_done += 1
        self.rows += scored.rows
        elapsed = max(time.monotonic() - self.started, 1e-9)
        remaining = elapsed / self.days_done * (self.total_days - self.days_done)
        return (
            f"{scored.day}: {scored.rows:,} rows"
            f"{f', {scored.quarantined_rows:,} quarantined' if scored.quarantined_rows else ''}; "
            f"{self.days_done}/{self.total_days} days, {self.rows:,} rows in {elapsed:,.1f} s "
            f"({self.rows / elapsed:,.0f} rows/s), ETA {remaining:,.0f} s"
        )


def top_contributions(contributions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indexes and values of the ``k`` largest contributions of each row by absolute value, largest first.

    ``contributions`` holds one column per feature (no bias). Ties keep the feature order (stable sort).
    """
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(contributions, order, axis=1)


def predict_batch(model: LoadedModel, frame: pl.DataFrame, uc: UseCase) -> pa.Table:
    """Probabilities, decisions and (with ``scoring.reason_codes`` > 0) the top reason codes of one batch.

    Contributions are LightGBM's SHAP values (``pred_contrib``) on the raw log-odds scale, before calibration.
    """
    # Row-major: polars hands out a column-major matrix, which LightGBM predicts about 30% slower (it walks
    # each row across columns); the copy costs about 1% of the prediction.
    matrix = np.ascontiguousarray(model.signature.matrix(frame))
    probability = model.scorer.calibrator.apply(model.scorer.booster.predict(matrix))
    columns = {
        uc.partition_column: frame.get_column(uc.partition_column).to_arrow(),
        uc.entity_key: frame.get_column(uc.entity_key).to_arrow(),
        "probability": pa.array(probability, pa.float64()),
        "decision": pa.array(probability >= model.threshold, pa.bool_()),
    }
    k = min(uc.reason_codes, len(model.signature.features))
    if k:
        contributions = model.scorer.booster.predict(matrix, pred_contrib=True)[:, :-1]  # last column: bias
        order, values = top_contributions(contributions, k)
        names = pa.array(model.signature.features, pa.string())
        for i in range(k):
            columns[f"reason_{i + 1}_feature"] = pa.DictionaryArray.from_arrays(
                pa.array(order[:, i].astype(np.int32)), names
            ).cast(pa.string())
            columns[f"reason_{i + 1}_contribution"] = pa.array(values[:, i], pa.float64())
    return pa.table(columns)


def _insert(
    con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, constants: dict[str, tuple[object, str]]
) -> None:
    """Insert Arrow rows by name, adding columns that are the same on every row as SQL parameters."""
    extra = ", ".join(f"?::{kind} as {name}" for name, (_, kind) in constants.items())
    # Read through DuckDB's scan of a Python variable, not con.register(): inside a transaction a registered
    # (then unregistered) view keeps its Arrow table alive until the commit, so every batch of the day stayed
    # in memory (860 against 450 MiB writing 10M rows, bench/RESULTS.md).
    _scored_batch = rows  # noqa: F841 (read by name in the SQL below)
    con.execute(
        f"insert into {table} by name select *{', ' + extra if extra else ''} from _scored_batch",
        [value for value, _ in constants.values()],
    )


def _feature_sql(uc: UseCase, features: list[str]) -> str:
    columns = ", ".join(dict.fromkeys(features))
    # No `order by`: sorting would hold the whole day before the first batch; the rows' order does not matter.
    return (
        f"select {uc.entity_key}::varchar as {uc.entity_key}, {uc.partition_column}, {columns} "
        f"from {uc.feature_model} where {uc.partition_column} = ?"
    )


def score_day(
    con: duckdb.DuckDBPyConnection,
    uc: UseCase,
    model: LoadedModel,
    day: date,
    run_id: str,
    schema: InputSchema | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ScoredDay:
    """Validate and score every entity of ``day`` with ``model``, replacing that day's predictions atomically.

    Invalid rows go to the quarantine table instead; above ``scoring.max_invalid_share`` of the day nothing
    is written (InvalidInputError) except the quarantine evidence. ``schema`` may be built once per run;
    ``on_batch`` is called with the rows written so far after each batch's insert (progress).
    """
    check_signature(con, uc, model.signature)
    if schema is None:
        schema = input_schema(uc, model, training_ranges(con, uc, model))
    features = [c for c in model.signature.features if c not in (uc.entity_key, uc.partition_column)]
    (total,) = con.execute(f"select count(*) from {uc.feature_model} where {uc.partition_column} = ?", [day]).fetchone()
    scored_at = datetime.now(UTC)
    constants = {
        "model_name": (model.model_name, "varchar"),
        "model_version": (model.version, "integer"),
        "scored_at": (scored_at, "timestamptz"),
        "run_id": (run_id, "varchar"),
        "threshold": (model.threshold, "double"),
    }
    failures: list[pl.DataFrame] = []
    invalid = rows = batches = 0
    probability_sum = 0.0
    unseen: Counter[str] = Counter()
    # A second connection reads while this one writes: a new query on the writing connection would end the
    # open result. It reads committed feature rows; the writes stay in this connection's transaction.
    reader = con.cursor()
    with closing(reader), duckdb_memory_limit(con, SCORING_MEMORY_LIMIT):
        batches_in = reader.execute(_feature_sql(uc, features), [day]).to_arrow_reader(uc.batch_rows)
        try:
            with transaction(con):
                con.execute(f"delete from {uc.predictions_table} where {uc.partition_column} = ?", [day])
                for batch in batches_in:
                    checked = validate_batch(schema, pl.from_arrow(batch))
                    batches += 1
                    unseen.update(checked.unseen_levels)
                    if checked.invalid_rows:
                        invalid += checked.invalid_rows
                        failures.append(checked.failures)
                        if invalid > uc.max_invalid_share * total:
                            raise InvalidInputError(
                                describe_invalid(schema, day, pl.concat(failures), invalid, total, uc.max_invalid_share)
                            )
                    if checked.valid.height:
                        scored = predict_batch(model, checked.valid, uc)
                        probability_sum += float(pc.sum(scored["probability"]).as_py())
                        rows += scored.num_rows
                        _insert(con, uc.predictions_table, scored, constants)
                    if on_batch is not None:
                        on_batch(rows)
                _check_unique(con, uc, day, rows)
                # The day's quarantine then lists exactly the rows its current predictions left out.
                con.execute(f"delete from {quarantine_table(uc)} where {uc.partition_column} = ?", [day])
                _quarantine(con, uc, day, failures, run_id, scored_at, rejected=False)
        except InvalidInputError:
            # Evidence of the refused run, in its own transaction: the predictions of the day were rolled back.
            with transaction(con):
                _quarantine(con, uc, day, failures, run_id, scored_at, rejected=True)
            raise
    return ScoredDay(
        day,
        rows,
        probability_sum / rows if rows else None,
        quarantined_rows=invalid,
        unseen_levels={c: n for c, n in unseen.items() if n},
        batches=batches,
    )


def score_days(
    con: duckdb.DuckDBPyConnection,
    uc: UseCase,
    model: LoadedModel,
    targets: list[date],
    run_id: str,
    on_day: Callable[[ScoredDay, str], None] | None = None,
) -> tuple[list[ScoredDay], InputSchema]:
    """Score ``targets`` one day per transaction (a crash keeps the days done) and return each day's result.

    The signature is checked and the input schema built once, before any day is touched. ``on_day`` gets
    each day's result and its progress line (days done, rows per second, ETA) as soon as the day commits.
    """
    ensure_predictions_table(con, uc)
    # A renamed or missing column fails here, before any day is touched.
    check_signature(con, uc, model.signature)
    schema = input_schema(uc, model, training_ranges(con, uc, model))
    progress = BackfillProgress(len(targets))
    results = []
    for day in targets:
        scored = score_day(con, uc, model, day, run_id, schema)
        results.append(scored)
        line = progress.day_done(scored)
        if on_day is not None:
            on_day(scored, line)
    return results, schema


@contextmanager
def duckdb_memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """Run the block with DuckDB's memory_limit set to ``limit`` (a database-wide setting), then restore it."""
    (previous,) = con.execute("select current_setting('memory_limit')").fetchone()
    con.execute(f"set memory_limit = '{limit}'")
    try:
        yield
    finally:
        # DuckDB shows the setting rounded to 0.1 GiB: setting that text back would drift run after run, so
        # the default is restored exactly and only a limit the caller had set is set back from its text.
        con.execute("reset memory_limit")
        if con.execute("select current_setting('memory_limit')").fetchone()[0] != previous:
            con.execute(f"set memory_limit = '{previous}'")


def _check_unique(con: duckdb.DuckDBPyConnection, uc: UseCase, day: date, rows: int) -> None:
    """Fail (and so roll the day back) unless the day holds exactly the ``rows`` written, each entity once."""
    (stored, distinct) = con.execute(
        f"select count(*), count(distinct {uc.entity_key}) from {uc.predictions_table} where {uc.partition_column} = ?",
        [day],
    ).fetchone()
    if stored != rows or distinct != rows:
        raise DuplicateKeysError(
            f"{uc.predictions_table} would hold {stored} rows for {day} ({distinct} distinct {uc.entity_key}) "
            f"after writing {rows}: {uc.feature_model} has an entity twice that day, or another writer added rows. "
            "Nothing was written for the day; fix the feature table (its unique test) and rerun."
        )


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    uc: UseCase,
    day: date,
    failures: list[pl.DataFrame],
    run_id: str,
    at: datetime,
    rejected: bool,
) -> None:
    if not failures:
        return
    rows = pl.concat(failures).to_arrow()
    constants = {
        uc.partition_column: (day, "date"),
        "run_id": (run_id, "varchar"),
        "quarantined_at": (at, "timestamptz"),
        "partition_rejected": (rejected, "boolean"),
    }
    _insert(con, quarantine_table(uc), rows, constants)
