"""Read-only queries of the published DuckDB file behind the monitoring page, and the figures derived from them.

Every reader takes the file's path and opens its own short-lived read-only connection, so nothing here can
block the pipeline's writer; the derived figures are pure functions of the frames read, so everything is
testable without Streamlit.
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
# dbt marts over the monitoring tables (dbt/models/monitoring), published as tables, and one monitoring table.
DAILY_SUMMARY = "monitoring.daily_summary"
DRIFT_HEATMAP = "monitoring.drift_heatmap"
ALERT_LIST = "monitoring.alert_list"
PERFORMANCE_SEGMENTS = "monitoring.performance_segments_daily"
MONITORING_TABLES = (DAILY_SUMMARY, DRIFT_HEATMAP, ALERT_LIST, PERFORMANCE_SEGMENTS)

# Drift kinds as the monitoring step writes them: distribution drift of a feature or of the score, and the
# data-quality shares tracked as features of their own.
DISTRIBUTION_KINDS = ("numeric", "categorical", "prediction")
QUALITY_KINDS = ("null_share", "unseen_share")
# Days whose realised figures are missing or not trusted; shown and marked on the page, never dropped.
FLAGGED_STATUSES = ("awaiting_labels", "insufficient_data", "single_class")


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
    summary: pd.DataFrame
    heatmap: pd.DataFrame
    alerts: pd.DataFrame
    segments: pd.DataFrame
    freshness: pd.DataFrame
    missing_tables: tuple[str, ...]


@dataclass(frozen=True)
class Headline:
    """The page's first row: latest monitored day, open alerts, recent realised against estimated ROC-AUC."""

    latest_day: pd.Timestamp | None
    window_start: pd.Timestamp | None
    open_errors: int
    open_warnings: int
    realised_roc_auc: float | None
    realised_days: int
    estimated_roc_auc: float | None
    estimated_days: int


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
            -- what the performance alert compares the monitored days with: the mean of the test days' ROC-AUCs
            coalesce({_metric("metrics", "daily_roc_auc")}, {_metric("metrics", "roc_auc")}) as daily_roc_auc,
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


def _summary(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select
            partition_date, model_version, n_scored, n_labelled, status, insufficient_data,
            roc_auc, est_roc_auc, est_roc_auc_error, base_rate, mean_prediction,
            n_features, n_drifted, drifted_share, drifted_share_threshold, dataset_drifted, drifted_features,
            prediction_drifted, missing_features, n_error_alerts, n_warn_alerts
        from {DAILY_SUMMARY}
        where model_name = ?
        order by partition_date
        """,
        [model_name],
    ).df()


def _heatmap(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select
            partition_date, model_version, feature, kind, method, value, threshold, value_over_threshold,
            drifted, insufficient_data
        from {DRIFT_HEATMAP}
        where model_name = ?
        order by partition_date, kind, feature
        """,
        [model_name],
    ).df()


def _alerts(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select
            alert_id, state, severity, kind, subject, opened_on, last_firing_on, closed_on, days_firing,
            duration_days, opened_value, value, threshold, opened_by_version, model_version, message
        from {ALERT_LIST}
        where model_name = ?
        order by alert_id
        """,
        [model_name],
    ).df()


def _segments(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    return con.execute(
        f"""
        select
            partition_date, model_version, segment_column, segment_value, n_scored, n_labelled, status,
            insufficient_data, roc_auc, est_roc_auc, est_roc_auc_error
        from {PERFORMANCE_SEGMENTS}
        where model_name = ?
        order by partition_date, segment_column, segment_value
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
            DAILY_SUMMARY: _summary,
            DRIFT_HEATMAP: _heatmap,
            ALERT_LIST: _alerts,
            PERFORMANCE_SEGMENTS: _segments,
        }
        frames = {
            table: read(con, model_name) if table in present else pd.DataFrame() for table, read in readers.items()
        }
        freshness = _freshness(con, predictions_tables(con), model_name)
    return ModelPage(
        model_name=model_name,
        versions=frames[MODEL_VERSIONS],
        history=frames[MODEL_HISTORY],
        summary=frames[DAILY_SUMMARY],
        heatmap=frames[DRIFT_HEATMAP],
        alerts=frames[ALERT_LIST],
        segments=frames[PERFORMANCE_SEGMENTS],
        freshness=freshness,
        missing_tables=tuple(sorted(set(readers) - present)),
    )


def champion(versions: pd.DataFrame) -> pd.Series | None:
    """The live version (status 'champion'), or None when no version has been promoted."""
    if versions.empty:
        return None
    live = versions[versions["status"] == "champion"]
    return None if live.empty else live.sort_values("version").iloc[-1]


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return None if values.empty else float(values.mean())


def recent(frame: pd.DataFrame, days: int) -> pd.DataFrame:
    """Rows of the last ``days`` calendar days up to the frame's latest ``partition_date``."""
    if frame.empty:
        return frame
    start = frame["partition_date"].max() - pd.Timedelta(days=days - 1)
    return frame[frame["partition_date"] >= start]


def headline(summary: pd.DataFrame, alerts: pd.DataFrame, recent_days: int = 7) -> Headline:
    """Open alerts by severity and the last ``recent_days`` days' mean daily ROC-AUC, realised (days with status
    ok) and estimated (every day with an estimate, labels or not)."""
    open_alerts = alerts[alerts["state"] == "open"] if not alerts.empty else alerts
    counts = open_alerts["severity"].value_counts() if not open_alerts.empty else pd.Series(dtype=int)
    if summary.empty:
        return Headline(None, None, int(counts.get("error", 0)), int(counts.get("warn", 0)), None, 0, None, 0)
    window = recent(summary, recent_days)
    realised = window.loc[window["status"] == "ok", "roc_auc"].dropna()
    estimated = window["est_roc_auc"].dropna()
    return Headline(
        latest_day=summary["partition_date"].max(),
        window_start=window["partition_date"].min(),
        open_errors=int(counts.get("error", 0)),
        open_warnings=int(counts.get("warn", 0)),
        realised_roc_auc=_mean(realised),
        realised_days=len(realised),
        estimated_roc_auc=_mean(estimated),
        estimated_days=len(estimated),
    )


def estimate_error(summary: pd.DataFrame) -> tuple[float | None, int]:
    """Mean absolute error of the estimated daily ROC-AUC against the realised one, over the days whose
    realised value is trusted (status ok), and how many such days there are."""
    if summary.empty:
        return None, 0
    errors = summary.loc[summary["status"] == "ok", "est_roc_auc_error"].dropna().abs()
    return _mean(errors), len(errors)


def flagged_days(summary: pd.DataFrame) -> pd.DataFrame:
    """Days whose realised figures are missing or not trusted: awaiting labels, too few rows, a single class."""
    if summary.empty:
        return summary
    flagged = summary["status"].isin(FLAGGED_STATUSES) | summary["insufficient_data"].fillna(False).astype(bool)
    return summary[flagged]


def version_changes(summary: pd.DataFrame) -> pd.DataFrame:
    """The first monitored day of each run of days scored by one model version (the first day included)."""
    if summary.empty:
        return pd.DataFrame(columns=["partition_date", "model_version"])
    ordered = summary.sort_values("partition_date")
    changed = ordered["model_version"].ne(ordered["model_version"].shift())
    return ordered.loc[changed, ["partition_date", "model_version"]].reset_index(drop=True)


def drift_label(feature: str, kind: str) -> str:
    """A heatmap row's name: the feature, the score, or which share of the feature is watched."""
    name = "model score" if feature == PREDICTION_FEATURE else feature
    suffix = {"null_share": " · missing values", "unseen_share": " · unseen levels"}.get(kind, "")
    return name + suffix


def heatmap_cells(heatmap: pd.DataFrame, kinds: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The heatmap's cells of the chosen kinds, each with its row label; rows ordered worst first (the
    largest value over threshold on any day), in column `row_order`."""
    cells = heatmap[heatmap["kind"].isin(kinds)].copy() if not heatmap.empty else heatmap.copy()
    if cells.empty:
        return cells.assign(label=pd.Series(dtype=str), row_order=pd.Series(dtype=int))
    cells["label"] = [drift_label(f, k) for f, k in zip(cells["feature"], cells["kind"], strict=True)]
    worst = cells.groupby("label")["value_over_threshold"].max().fillna(float("-inf"))
    order = {label: rank for rank, label in enumerate(worst.sort_values(ascending=False, kind="stable").index)}
    cells["row_order"] = cells["label"].map(order)
    return cells.sort_values(["row_order", "partition_date"]).reset_index(drop=True)


def ordered_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Open alerts first, then closed; errors before warnings; the most recently opened first."""
    if alerts.empty:
        return alerts
    ranked = alerts.assign(
        _open=(alerts["state"] != "open").astype(int), _severity=(alerts["severity"] != "error").astype(int)
    )
    ranked = ranked.sort_values(["_open", "_severity", "opened_on", "kind", "subject"], ascending=[1, 1, 0, 1, 1])
    return ranked.drop(columns=["_open", "_severity"]).reset_index(drop=True)


def segment_performance(segments: pd.DataFrame, days: int | None) -> pd.DataFrame:
    """Per segment column and value over the last ``days`` monitored calendar days (all when None): days
    monitored, rows scored and labelled, mean daily realised and estimated ROC-AUC, the days flagged
    insufficient_data and whether any was. Ordered by column, then most rows first."""
    columns = [
        "segment_column",
        "segment_value",
        "days",
        "n_scored",
        "n_labelled",
        "roc_auc",
        "est_roc_auc",
        "days_insufficient",
        "insufficient_data",
    ]
    if segments.empty:
        return pd.DataFrame(columns=columns)
    window = segments if days is None else recent(segments, days)
    table = (
        window.assign(insufficient_data=window["insufficient_data"].astype(bool))
        .groupby(["segment_column", "segment_value"], as_index=False)
        .agg(
            days=("partition_date", "nunique"),
            n_scored=("n_scored", "sum"),
            n_labelled=("n_labelled", "sum"),
            roc_auc=("roc_auc", "mean"),
            est_roc_auc=("est_roc_auc", "mean"),
            days_insufficient=("insufficient_data", "sum"),
            insufficient_data=("insufficient_data", "any"),
        )
    )
    table = table.sort_values(["segment_column", "n_scored", "segment_value"], ascending=[True, False, True])
    return table[columns].reset_index(drop=True)
