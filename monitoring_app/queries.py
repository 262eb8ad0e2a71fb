"""Read-only queries of the published DuckDB file behind the monitoring page.

Every function takes the file's path and opens its own short-lived read-only connection, so nothing here
can block the pipeline's writer and everything is testable without Streamlit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

# The pipeline stores the model's score among the drift rows under this feature name.
PREDICTION_FEATURE = "__prediction__"

# Tables the page reads; the predictions table is discovered (schema `predictions`), never named here.
MODEL_VERSIONS = "ml.model_versions"
MODEL_HISTORY = "ml.model_history"
PERFORMANCE_DAILY = "monitoring.performance_daily"
FEATURE_DRIFT_DAILY = "monitoring.feature_drift_daily"


@dataclass(frozen=True)
class PredictionsTable:
    """A table of the `predictions` schema and the DATE column that partitions it."""

    schema: str
    name: str
    date_column: str

    @property
    def qualified(self) -> str:
        return f"{_quote(self.schema)}.{_quote(self.name)}"


@dataclass(frozen=True)
class ModelPage:
    """Everything the page shows for one model, read in one connection (one consistent state)."""

    model_name: str
    versions: pd.DataFrame
    history: pd.DataFrame
    performance: pd.DataFrame
    drift: pd.DataFrame
    freshness: pd.DataFrame
    missing_tables: tuple[str, ...]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@contextmanager
def open_published(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the published file, timestamps rendered in UTC; closed on exit."""
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        yield con


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Qualified names (schema.table) of the base tables in the file."""
    rows = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables where table_type = 'BASE TABLE'"
    ).fetchall()
    return {row[0] for row in rows}


def predictions_tables(con: duckdb.DuckDBPyConnection) -> list[PredictionsTable]:
    """Base tables of schema `predictions` (views such as `latest` skipped) and their first DATE column."""
    rows = con.execute(
        """
        select t.table_name, min_by(c.column_name, c.ordinal_position) as date_column
        from information_schema.tables as t
        inner join information_schema.columns as c
            on c.table_schema = t.table_schema and c.table_name = t.table_name
        where t.table_schema = 'predictions' and t.table_type = 'BASE TABLE' and c.data_type = 'DATE'
        group by t.table_name
        order by t.table_name
        """
    ).fetchall()
    return [PredictionsTable("predictions", name, date_column) for name, date_column in rows]


def model_names(path: Path) -> list[str]:
    """Registered model names: those with a live champion first, then the most recently trained."""
    with open_published(path) as con:
        if MODEL_VERSIONS not in existing_tables(con):
            return []
        rows = con.execute(
            f"""
            select model_name
            from {MODEL_VERSIONS}
            group by model_name
            order by bool_or(status = 'champion') desc, max(created_at) desc, model_name
            """
        ).fetchall()
    return [row[0] for row in rows]


def _metric(column: str, key: str) -> str:
    return f"try_cast(json_extract_string({column}, '$.{key}') as double)"


def _versions(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select
            version, status, created_at, promoted_at,
            train_start, train_end, test_start, test_end,
            {_metric("metrics", "roc_auc")} as roc_auc,
            -- the best of the naive baselines, scored on the same test days
            (select max(try_cast(json_extract_string(value, '$.roc_auc') as double))
             from json_each(baseline_metrics)) as baseline_roc_auc,
            champion_version,
            {_metric("champion_metrics", "roc_auc")} as champion_roc_auc,
            {_metric("metrics", "base_rate")} as test_base_rate,
            gate_passed, gate_reasons, threshold, code_version
        from {MODEL_VERSIONS}
        where model_name = ?
        order by version desc
        """,
        [model_name],
    ).df()


def _history(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select event_at, version, event, actor, reason
        from {MODEL_HISTORY}
        where model_name = ?
        order by event_at desc, version desc
        """,
        [model_name],
    ).df()


def _performance(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select partition_date, model_version, n_scored, n_labelled, base_rate, mean_prediction,
               roc_auc, brier, log_loss, status
        from {PERFORMANCE_DAILY}
        where model_name = ?
        order by partition_date
        """,
        [model_name],
    ).df()


def _drift(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select
            partition_date, model_version, feature, kind, psi, threshold,
            coalesce(drifted, false) as drifted
        from {FEATURE_DRIFT_DAILY}
        where model_name = ?
        order by partition_date, feature
        """,
        [model_name],
    ).df()


def _freshness(con: duckdb.DuckDBPyConnection, tables: list[PredictionsTable], model_name: str) -> pd.DataFrame:
    """Per predictions table: the latest scored partition, its rows, when and by which version."""
    frames = []
    for table in tables:
        day = _quote(table.date_column)
        frames.append(
            con.execute(
                f"""
                with model_rows as (
                    select * from {table.qualified} where model_name = ?
                )
                select
                    ? as table_name,
                    {day} as latest_partition,
                    count(*) as rows_latest,
                    max(scored_at) as scored_at,
                    string_agg(distinct model_version::varchar, ', ' order by model_version::varchar)
                        as model_versions,
                    (select count(*) from model_rows) as rows_total,
                    (select min({day}) from model_rows) as first_partition
                from model_rows
                where {day} = (select max({day}) from model_rows)
                group by {day}
                """,
                [model_name, f"{table.schema}.{table.name}"],
            ).df()
        )
    if not frames:
        return pd.DataFrame(
            columns=[
                "table_name",
                "latest_partition",
                "rows_latest",
                "scored_at",
                "model_versions",
                "rows_total",
                "first_partition",
            ]
        )
    return pd.concat(frames, ignore_index=True)


def load_model_page(path: Path, model_name: str) -> ModelPage:
    """Read every table the page shows for ``model_name``; tables not yet published come back empty."""
    with open_published(path) as con:
        present = existing_tables(con)
        readers = {
            MODEL_VERSIONS: _versions,
            MODEL_HISTORY: _history,
            PERFORMANCE_DAILY: _performance,
            FEATURE_DRIFT_DAILY: _drift,
        }
        frames = {
            table: read(con, model_name) if table in present else pd.DataFrame() for table, read in readers.items()
        }
        freshness = _freshness(con, predictions_tables(con), model_name)
    return ModelPage(
        model_name=model_name,
        versions=frames[MODEL_VERSIONS],
        history=frames[MODEL_HISTORY],
        performance=frames[PERFORMANCE_DAILY],
        drift=frames[FEATURE_DRIFT_DAILY],
        freshness=freshness,
        missing_tables=tuple(sorted(set(readers) - present)),
    )


def champion(versions: pd.DataFrame) -> pd.Series | None:
    """The live version (status 'champion'), or None when no version has been promoted."""
    if versions.empty:
        return None
    live = versions[versions["status"] == "champion"]
    return None if live.empty else live.sort_values("version").iloc[-1]


def drift_by_period(drift: pd.DataFrame, recent_days: int = 14) -> pd.DataFrame:
    """Mean daily PSI per feature and calendar month, plus the last ``recent_days`` days.

    One row per feature, worst (highest) PSI first; the columns are period labels, then `threshold`
    (the drift threshold the pipeline applied) and `feature`.
    """
    if drift.empty:
        return pd.DataFrame(columns=["feature", "threshold"])
    days = pd.to_datetime(drift["partition_date"])
    by_month = drift.assign(period=days.dt.to_period("M"))
    monthly = by_month.pivot_table(index="feature", columns="period", values="psi", aggfunc="mean")
    monthly = monthly.sort_index(axis=1)
    monthly.columns = [period.strftime("%b %Y") for period in monthly.columns]
    cutoff = days.max() - pd.Timedelta(days=recent_days - 1)
    recent = drift[days >= cutoff].groupby("feature")["psi"].mean().rename(f"Last {recent_days} days")
    table = monthly.join(recent)
    periods = list(table.columns)
    table["threshold"] = drift.groupby("feature")["threshold"].max()
    table = table.assign(_worst=table[periods].max(axis=1)).sort_values("_worst", ascending=False)
    return table.drop(columns="_worst").reset_index()


def latest_drift(drift: pd.DataFrame) -> pd.DataFrame:
    """The drift rows of the most recent monitored day."""
    if drift.empty:
        return drift
    return drift[drift["partition_date"] == drift["partition_date"].max()]
