"""Daily monitoring of a scored partition: realised performance once labels landed, and PSI drift of every
feature and of the score against the training reference of the model that scored the day."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import pyarrow as pa

from dagster_project.dataset import relation_columns
from dagster_project.drift_sql import feature_drift, prediction_drift
from dagster_project.metrics import binary_metrics
from dagster_project.registry import load_model, version_row
from dagster_project.use_case import UseCase, check_columns
from dagster_project.warehouse import ensure_schema, insert_rows, transaction

PERFORMANCE_TABLE = "monitoring.performance_daily"
DRIFT_TABLE = "monitoring.feature_drift_daily"
ALERTS_TABLE = "monitoring.alerts"


def ensure_monitoring_tables(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schema(con, "monitoring")
    con.execute(
        f"create table if not exists {PERFORMANCE_TABLE} (partition_date date not null, model_name varchar, "
        "model_version integer, n_scored integer, n_labelled integer, base_rate double, mean_prediction double, "
        "roc_auc double, brier double, log_loss double, status varchar not null, computed_at timestamptz, "
        "primary key (partition_date, model_name))"
    )
    con.execute(
        f"create table if not exists {DRIFT_TABLE} (partition_date date not null, model_name varchar, "
        "model_version integer, feature varchar not null, kind varchar not null, psi double, threshold double, "
        "drifted boolean, n_rows bigint, null_share double, unseen_share double, js_distance double, "
        "wasserstein_normed double, computed_at timestamptz, "
        "primary key (partition_date, model_name, feature))"
    )
    for column, kind in (
        ("null_share", "double"),
        ("unseen_share", "double"),
        ("js_distance", "double"),
        ("wasserstein_normed", "double"),
    ):
        con.execute(f"alter table {DRIFT_TABLE} add column if not exists {column} {kind}")
    con.execute(
        f"create table if not exists {ALERTS_TABLE} (alert_id varchar primary key, partition_date date not null, "
        "opened_at timestamptz not null, closed_at timestamptz, severity varchar not null, kind varchar not null, "
        "subject varchar not null, value double, threshold double, model_name varchar, model_version integer, "
        "message varchar)"
    )


@dataclass(frozen=True)
class DayMonitoring:
    day: date
    model_version: int | None
    status: str
    roc_auc: float | None
    drifted_features: list[str]


def _scored(con: duckdb.DuckDBPyConnection, uc: UseCase, day: date) -> pl.DataFrame:
    return con.execute(
        f"select p.{uc.entity_key}, p.model_name, p.model_version, p.probability, l.{uc.label}::double as label "
        f"from {uc.predictions_table} p left join {uc.label_model} l "
        f"on p.{uc.entity_key} = l.{uc.entity_key} and l.{uc.label_available_at} <= ? "
        f"where p.{uc.partition_column} = ? and p.model_name = ?",
        [datetime.now(UTC).replace(tzinfo=None), day, uc.model_name],
    ).pl()


def monitor_day(con: duckdb.DuckDBPyConnection, uc: UseCase, day: date) -> DayMonitoring:
    """Compute and replace the day's performance and drift rows (one transaction for both tables)."""
    scored = _scored(con, uc, day)
    computed_at = datetime.now(UTC)
    if scored.height == 0:
        _replace_day(con, uc, day, [], [])
        return DayMonitoring(day, None, "not_scored", None, [])
    versions = scored.get_column("model_version").unique().to_list()
    if len(versions) != 1:
        raise ValueError(
            f"{uc.predictions_table}: day {day} was scored by several versions {versions}; "
            f"rescore the day before monitoring it"
        )
    version = int(versions[0])
    model = load_model(version_row(con, uc.model_name, version))

    labelled = scored.filter(pl.col("label").is_not_null())
    metrics = binary_metrics(labelled.get_column("label").to_numpy(), labelled.get_column("probability").to_numpy())
    status = metrics["status"]
    if status == "ok" and labelled.height < uc.min_rows:
        status = "insufficient_data"
    performance = {
        "partition_date": day,
        "model_name": uc.model_name,
        "model_version": version,
        "n_scored": scored.height,
        "n_labelled": labelled.height,
        "base_rate": metrics["base_rate"],
        "mean_prediction": float(scored.get_column("probability").mean()),
        "roc_auc": metrics["roc_auc"],
        "brier": metrics["brier"],
        "log_loss": metrics["log_loss"],
        "status": status,
        "computed_at": computed_at,
    }

    drift_rows = [
        row
        | {
            "partition_date": day,
            "model_name": uc.model_name,
            "model_version": version,
            "threshold": uc.psi_threshold,
            "drifted": row["psi"] is not None and row["psi"] > uc.psi_threshold,
            "computed_at": computed_at,
        }
        for row in day_drift(con, uc, day, version, model.signature).to_pylist()
    ]
    # Daily ROC-AUC is compared with the model's mean daily ROC-AUC on its test window, not with the
    # window-wide figure, which is higher by construction (older versions lack it: then the window-wide one).
    test_metrics = json.loads(version_row(con, uc.model_name, version)["metrics"])
    test_roc_auc = test_metrics.get("daily_roc_auc", test_metrics.get("roc_auc"))
    _replace_day(con, uc, day, [performance], drift_rows, test_roc_auc)
    drifted = [r["feature"] for r in drift_rows if r["drifted"]]
    return DayMonitoring(day, version, status, metrics["roc_auc"], drifted)


def day_drift(con: duckdb.DuckDBPyConnection, uc: UseCase, day: date, version: int, signature) -> pa.Table:
    """PSI, Jensen-Shannon and normed Wasserstein of every input of the day and of its scores, in DuckDB,
    against the reference stored when the scoring model was trained."""
    numeric = [f for f in signature.numeric if f not in uc.drift_exclude]
    categorical = [f for f in signature.categorical_levels if f not in uc.drift_exclude]
    check_columns(
        uc, uc.feature_model, relation_columns(con, uc.feature_model), {"the model's features": numeric + categorical}
    )
    features = feature_drift(
        con,
        f"select * from {uc.feature_model} where {uc.partition_column} = date '{day.isoformat()}'",
        uc.model_name,
        version,
        numeric,
        categorical,
    )
    scores = prediction_drift(
        con,
        f"select probability from {uc.predictions_table} where {uc.partition_column} = "
        f"date '{day.isoformat()}' and model_name = '{uc.model_name}'",
        "probability",
        uc.model_name,
        version,
    )
    kinds = pa.array(["prediction"] * scores.num_rows)
    scores = scores.set_column(scores.schema.get_field_index("kind"), "kind", kinds)
    return pa.concat_tables([features, scores])


def day_alerts(
    con: duckdb.DuckDBPyConnection, uc: UseCase, day: date, drift: list[dict], test_roc_auc: float | None
) -> list[dict]:
    """The day's alerts: the rolling ROC-AUC far below the model's test ROC-AUC (error), many drifted features
    or a drifted score (warn)."""
    if not drift:
        return []
    version = drift[0]["model_version"]
    alerts = []

    def alert(severity: str, kind: str, subject: str, value: float, threshold: float, message: str) -> None:
        alerts.append(
            {
                "alert_id": f"{uc.model_name}:{day}:{kind}:{subject}",
                "partition_date": day,
                "opened_at": datetime.now(UTC),
                "severity": severity,
                "kind": kind,
                "subject": subject,
                "value": value,
                "threshold": threshold,
                "model_name": uc.model_name,
                "model_version": version,
                "message": message,
            }
        )

    rolling, days = con.execute(
        f"select avg(roc_auc), count(*) from {PERFORMANCE_TABLE} where model_name = ? and model_version = ? "
        "and status = 'ok' and partition_date between ? and ?",
        [uc.model_name, version, day - timedelta(days=uc.rolling_days - 1), day],
    ).fetchone()
    if test_roc_auc is not None and rolling is not None and days >= uc.rolling_days // 2 + 1:
        floor = test_roc_auc - uc.max_auc_drop
        if rolling < floor:
            alert(
                "error",
                "performance",
                "roc_auc",
                rolling,
                floor,
                f"{uc.rolling_days}-day mean daily ROC-AUC {rolling:.3f} is below the model's mean daily ROC-AUC "
                f"on its test window {test_roc_auc:.3f} minus {uc.max_auc_drop}",
            )
    features = [r for r in drift if r["kind"] != "prediction"]
    share = sum(r["drifted"] for r in features) / max(len(features), 1)
    if share >= uc.max_drifted_share:
        alert(
            "warn",
            "feature_drift",
            "drifted_share",
            share,
            uc.max_drifted_share,
            f"{share:.0%} of features have PSI above {uc.psi_threshold}",
        )
    for r in drift:
        if r["kind"] == "prediction" and r["drifted"]:
            alert(
                "warn",
                "prediction_drift",
                r["feature"],
                r["psi"],
                r["threshold"],
                f"score PSI {r['psi']:.3f} above {r['threshold']}",
            )
    return alerts


def _replace_day(
    con: duckdb.DuckDBPyConnection,
    uc: UseCase,
    day: date,
    performance: list[dict],
    drift: list[dict],
    test_roc_auc: float | None = None,
) -> None:
    """Replace the day's rows of the monitoring tables, its alerts included, in one transaction."""
    with transaction(con):
        for table, rows in ((PERFORMANCE_TABLE, performance), (DRIFT_TABLE, drift)):
            con.execute(f"delete from {table} where partition_date = ? and model_name = ?", [day, uc.model_name])
            insert_rows(con, table, pa.Table.from_pylist(rows))
        con.execute(f"delete from {ALERTS_TABLE} where partition_date = ? and model_name = ?", [day, uc.model_name])
        insert_rows(con, ALERTS_TABLE, pa.Table.from_pylist(day_alerts(con, uc, day, drift, test_roc_auc)))
