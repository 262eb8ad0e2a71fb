"""Daily monitoring of a scored partition, computed in the warehouse and replaced day by day in one transaction.

For each scored day and the model version that scored it:

- ``monitoring.performance_daily`` and ``monitoring.performance_segments_daily``: realised metrics once labels
  landed (ROC-AUC, PR-AUC, log loss, Brier, calibration error, precision and recall at the model's threshold,
  base rate against mean prediction), overall and per level of ``monitoring.segment_columns``; before that, and
  beside it, the confidence-based estimate from the calibrated probabilities (metrics.estimated_metrics), and
  the estimate's error once the realised value exists.
- ``monitoring.feature_drift_daily``: per feature PSI, Jensen-Shannon (base 2) and normed Wasserstein against
  the scoring version's training reference (drift_sql.py), the YAML's rule deciding ``drifted``; the score
  against the validation window's scores (kind ``prediction``); the null share against the reference's and
  the unseen-level share of every feature as features of their own (kinds ``null_share``, ``unseen_share``).
- ``monitoring.dataset_drift_daily``: the share of drifted features against ``monitoring.drift.max_drifted_share``.
- ``monitoring.checks_daily``: every alert rule evaluated on the day (firing or not), and
  ``monitoring.alerts``: the episodes of consecutive firing days of each rule, open until the first evaluated
  day on which the rule no longer fires. Alerts are rebuilt from the checks in the same transaction, so a rerun
  of any day (labels landing late) leaves the alerts as if the days had been monitored in order.

A day with fewer rows than ``monitoring.min_rows`` is computed and flagged ``insufficient_data``; a feature
missing from the day's data is left out of drift and opens an error alert naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from dagster_project.dataset import relation_columns
from dagster_project.drift_sql import PROFILE_TABLE, feature_drift, prediction_drift
from dagster_project.metrics import (
    binary_metrics,
    decision_metrics,
    estimated_metrics,
    expected_calibration_error,
)
from dagster_project.registry import load_model, version_row
from dagster_project.use_case import UseCase
from dagster_project.warehouse import ensure_schema, insert_rows, transaction

PERFORMANCE_TABLE = "monitoring.performance_daily"
SEGMENTS_TABLE = "monitoring.performance_segments_daily"
DRIFT_TABLE = "monitoring.feature_drift_daily"
DATASET_DRIFT_TABLE = "monitoring.dataset_drift_daily"
CHECKS_TABLE = "monitoring.checks_daily"
ALERTS_TABLE = "monitoring.alerts"
MONITORING_TABLES = [PERFORMANCE_TABLE, SEGMENTS_TABLE, DRIFT_TABLE, DATASET_DRIFT_TABLE, CHECKS_TABLE, ALERTS_TABLE]

# Alert kinds and their severities. Only `performance` errors retrain (a missing feature needs a fix, not a
# new model: training would fail on the same missing column).
SEVERITY = {
    "performance": "error",
    "missing_feature": "error",
    "estimated_performance": "warn",
    "dataset_drift": "warn",
    "prediction_drift": "warn",
    "data_quality": "warn",
}
RETRAIN_KINDS = ("performance",)

_METRIC_COLUMNS = """
    n_scored integer not null, n_labelled integer not null, label_share double, threshold double,
    base_rate double, mean_prediction double, roc_auc double, pr_auc double, log_loss double, brier double,
    ece double, precision double, recall double,
    est_roc_auc double, est_precision double, est_recall double,
    est_roc_auc_error double, est_precision_error double, est_recall_error double,
    status varchar not null, status_reason varchar, insufficient_data boolean not null,
    labels_as_of timestamp, computed_at timestamptz not null"""

DDL = {
    PERFORMANCE_TABLE: (
        f"partition_date date not null, model_name varchar not null, model_version integer not null, {_METRIC_COLUMNS}",
        ("partition_date", "model_name"),
    ),
    SEGMENTS_TABLE: (
        "partition_date date not null, model_name varchar not null, model_version integer not null, "
        f"segment_column varchar not null, segment_value varchar not null, {_METRIC_COLUMNS}",
        ("partition_date", "model_name", "segment_column", "segment_value"),
    ),
    DRIFT_TABLE: (
        "partition_date date not null, model_name varchar not null, model_version integer not null, "
        "feature varchar not null, kind varchar not null, n_rows bigint, null_share double, "
        "reference_null_share double, unseen_share double, psi double, js_distance double, "
        "wasserstein_normed double, method varchar not null, value double, threshold double not null, "
        "drifted boolean not null, insufficient_data boolean not null, computed_at timestamptz not null",
        ("partition_date", "model_name", "feature", "kind"),
    ),
    DATASET_DRIFT_TABLE: (
        "partition_date date not null, model_name varchar not null, model_version integer not null, "
        "n_rows bigint not null, n_features integer not null, n_drifted integer not null, drifted_share double, "
        "threshold double not null, dataset_drifted boolean not null, drifted_features varchar, "
        "prediction_drifted boolean, missing_features varchar, insufficient_data boolean not null, "
        "computed_at timestamptz not null",
        ("partition_date", "model_name"),
    ),
    CHECKS_TABLE: (
        "partition_date date not null, model_name varchar not null, model_version integer not null, "
        "kind varchar not null, subject varchar not null, severity varchar not null, firing boolean not null, "
        "value double, threshold double, message varchar not null, computed_at timestamptz not null",
        ("partition_date", "model_name", "kind", "subject"),
    ),
    ALERTS_TABLE: (
        "alert_id varchar not null, model_name varchar not null, kind varchar not null, subject varchar not null, "
        "severity varchar not null, state varchar not null, opened_on date not null, last_firing_on date not null, "
        "closed_on date, opened_at timestamptz not null, closed_at timestamptz, days_firing integer not null, "
        "opened_value double, value double, threshold double, opened_by_version integer not null, "
        "model_version integer not null, message varchar not null",
        ("alert_id",),
    ),
}


def ensure_monitoring_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the monitoring tables. A table of an older layout is renamed ``<table>__before_<date>`` (kept,
    never dropped) and created anew: its rows are derived data, so rerun monitoring over the scored days."""
    ensure_schema(con, "monitoring")
    for table, (body, key) in DDL.items():
        ddl = f"({body}, primary key ({', '.join(key)}))"
        schema, name = table.split(".")
        old = con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
        if not old:
            con.execute(f"create table {table} {ddl}")
            continue
        old_key = con.execute(
            "select constraint_column_names from duckdb_constraints() where schema_name = ? and table_name = ? "
            "and constraint_type = 'PRIMARY KEY'",
            [schema, name],
        ).fetchall()
        wanted = [part.split()[0] for part in body.split(",")]
        if sorted(c for (c,) in old) == sorted(wanted) and old_key and tuple(old_key[0][0]) == key:
            continue
        with transaction(con):
            con.execute(f"alter table {table} rename to {name}__before_{datetime.now(UTC):%Y%m%d%H%M%S}")
            con.execute(f"create table {table} {ddl}")


@dataclass(frozen=True)
class DayMonitoring:
    day: date
    model_version: int | None
    status: str
    roc_auc: float | None
    est_roc_auc: float | None = None
    drifted_features: tuple[str, ...] = ()
    missing_features: tuple[str, ...] = ()
    firing: tuple[tuple[str, str, str], ...] = ()  # (severity, kind, subject) of the checks firing on the day


def _scored(
    con: duckdb.DuckDBPyConnection, uc: UseCase, day: date, labels_as_of: datetime, segments: list[str]
) -> pl.DataFrame:
    """The day's predictions with the labels known at ``labels_as_of`` and the segment columns."""
    segment_select = "".join(f", f.{c}::varchar as {c}" for c in segments)
    return con.execute(
        f"select p.{uc.entity_key}, p.model_version, p.probability, p.threshold, "
        f"l.{uc.label}::double as label{segment_select} "
        f"from {uc.predictions_table} p left join {uc.label_model} l "
        f"on p.{uc.entity_key} = l.{uc.entity_key}::varchar and l.{uc.label_available_at} <= ? "
        f"left join {uc.feature_model} f on f.{uc.entity_key}::varchar = p.{uc.entity_key} "
        f"and f.{uc.partition_column} = p.{uc.partition_column} "
        f"where p.{uc.partition_column} = ? and p.model_name = ?",
        [labels_as_of, day, uc.model_name],
    ).pl()


def performance_row(uc: UseCase, frame: pl.DataFrame, threshold: float) -> dict:
    """Realised metrics on the labelled rows, the CBPE estimate on all rows, and the estimate's error."""
    p_all = frame.get_column("probability").to_numpy()
    labelled = frame.filter(pl.col("label").is_not_null())
    y, p = labelled.get_column("label").to_numpy(), labelled.get_column("probability").to_numpy()
    realised = binary_metrics(y, p)
    estimate = estimated_metrics(p_all, threshold)
    row = {
        "n_scored": frame.height,
        "n_labelled": labelled.height,
        "label_share": labelled.height / frame.height if frame.height else None,
        "threshold": threshold,
        "base_rate": realised["base_rate"],
        "mean_prediction": float(p_all.mean()) if p_all.size else None,
        "roc_auc": realised["roc_auc"],
        "pr_auc": realised["pr_auc"],
        "log_loss": realised["log_loss"],
        "brier": realised["brier"],
        "ece": expected_calibration_error(y, p, uc.reliability_bins) if y.size else None,
        "precision": None,
        "recall": None,
        "est_roc_auc": estimate["roc_auc"],
        "est_precision": estimate["precision"],
        "est_recall": estimate["recall"],
    }
    if y.size:
        decided = decision_metrics(y, p, threshold)
        row["precision"] = decided["precision"] if np.any(p >= threshold) else None
        row["recall"] = decided["recall"] if np.any(y == 1) else None
    for name in ("roc_auc", "precision", "recall"):
        known = row[name] is not None and row[f"est_{name}"] is not None
        row[f"est_{name}_error"] = row[f"est_{name}"] - row[name] if known else None
    if labelled.height == 0:
        status, reason = "awaiting_labels", "no label of the day has landed yet; the estimate stands in"
    elif realised["status"] == "single_class":
        status, reason = "single_class", f"every labelled row has the same label ({int(y[0])}): no ROC-AUC, PR-AUC"
    elif labelled.height < uc.min_rows:
        status, reason = (
            "insufficient_data",
            f"{labelled.height} labelled rows, below monitoring.min_rows {uc.min_rows}",
        )
    else:
        status, reason = "ok", None
    if status == "ok" and labelled.height < frame.height:
        reason = f"{frame.height - labelled.height} of {frame.height} scored rows have no label yet"
    row |= {
        "status": status,
        "status_reason": reason,
        # Too few rows to trust a figure: the scored rows (the estimate), or the labels once some landed.
        "insufficient_data": frame.height < uc.min_rows or 0 < labelled.height < uc.min_rows,
    }
    return row


def monitor_day(
    con: duckdb.DuckDBPyConnection, uc: UseCase, day: date, labels_as_of: datetime | None = None
) -> DayMonitoring:
    """Compute the day's monitoring rows and replace them, with the model's alerts, in one transaction.

    ``labels_as_of`` (naive, the label model's clock) defaults to now: the labels known when monitoring runs.
    """
    labels_as_of = labels_as_of or datetime.now(UTC).replace(tzinfo=None)
    computed_at = datetime.now(UTC)
    available = set(relation_columns(con, uc.feature_model))
    segments = [c for c in uc.monitoring_segments if c in available]
    scored = _scored(con, uc, day, labels_as_of, segments)
    if scored.height == 0:
        _replace_day(con, uc, day, {})
        return DayMonitoring(day, None, "not_scored", None)
    versions = scored.get_column("model_version").unique().to_list()
    if len(versions) != 1:
        raise ValueError(
            f"{uc.predictions_table}: day {day} was scored by several versions {versions}; "
            f"rescore the day before monitoring it"
        )
    version = int(versions[0])
    model = load_model(version_row(con, uc.model_name, version))
    key = {"partition_date": day, "model_name": uc.model_name, "model_version": version}
    stamp = {"labels_as_of": labels_as_of, "computed_at": computed_at}

    performance = key | performance_row(uc, scored, model.threshold) | stamp
    segment_rows = [
        key
        | {"segment_column": column, "segment_value": str(value)}
        | performance_row(uc, part, model.threshold)
        | stamp
        for column in segments
        for (value,), part in scored.filter(pl.col(column).is_not_null()).group_by(column, maintain_order=True)
    ]

    model_features = [
        f for f in [*model.signature.numeric, *model.signature.categorical_levels] if f not in uc.drift_exclude
    ]
    missing = tuple(f for f in model_features if f not in available)
    drift = [
        key | row | {"computed_at": computed_at} for row in day_drift(con, uc, day, version, model.signature, missing)
    ]
    features = [r for r in drift if r["kind"] in ("numeric", "categorical")]
    drifted = tuple(r["feature"] for r in features if r["drifted"])
    share = len(drifted) / len(features) if features else None
    prediction = next((r for r in drift if r["kind"] == "prediction"), None)
    dataset = key | {
        "n_rows": scored.height,
        "n_features": len(features),
        "n_drifted": len(drifted),
        "drifted_share": share,
        "threshold": uc.max_drifted_share,
        "dataset_drifted": share is not None and share >= uc.max_drifted_share,
        "drifted_features": ", ".join(drifted) or None,
        "prediction_drifted": None if prediction is None else prediction["drifted"],
        "missing_features": ", ".join(missing) or None,
        "insufficient_data": scored.height < uc.min_rows,
        "computed_at": computed_at,
    }
    rows = {
        PERFORMANCE_TABLE: [performance],
        SEGMENTS_TABLE: segment_rows,
        DRIFT_TABLE: drift,
        DATASET_DRIFT_TABLE: [dataset],
    }
    checks = _replace_day(con, uc, day, rows, performance=performance, dataset=dataset, missing=missing)
    return DayMonitoring(
        day,
        version,
        performance["status"],
        performance["roc_auc"],
        performance["est_roc_auc"],
        drifted,
        missing,
        tuple((c["severity"], c["kind"], c["subject"]) for c in checks if c["firing"]),
    )


def day_drift(
    con: duckdb.DuckDBPyConnection, uc: UseCase, day: date, version: int, signature, missing: tuple[str, ...] = ()
) -> list[dict]:
    """Drift rows of the day: every present input feature and the score (PSI, Jensen-Shannon, normed
    Wasserstein, decided by the YAML's rule for the kind), then each feature's null share and each categorical
    feature's unseen-level share as features of their own."""
    numeric = [f for f in signature.numeric if f not in uc.drift_exclude and f not in missing]
    categorical = [f for f in signature.categorical_levels if f not in uc.drift_exclude and f not in missing]
    features = feature_drift(
        con,
        f"select * from {uc.feature_model} where {uc.partition_column} = date '{day.isoformat()}'",
        uc.model_name,
        version,
        numeric,
        categorical,
    ).to_pylist()
    scores = prediction_drift(
        con,
        f"select probability from {uc.predictions_table} where {uc.partition_column} = "
        f"date '{day.isoformat()}' and model_name = '{uc.model_name}'",
        "probability",
        uc.model_name,
        version,
    ).to_pylist()
    for row in scores:
        row["kind"] = "prediction"
    reference_nulls = dict(
        con.execute(
            f"select feature, null_share from {PROFILE_TABLE} where model_name = ? and version = ?",
            [uc.model_name, version],
        ).fetchall()
    )
    rows = []
    for row in [*features, *scores]:
        rule = uc.drift_rules[row["kind"]]
        value = row[rule.method]
        reference_null = reference_nulls.get(row["feature"]) if row["kind"] != "prediction" else None
        rows.append(
            row
            | {
                "reference_null_share": reference_null,
                "method": rule.method,
                "value": value,
                "threshold": rule.threshold,
                "drifted": value is not None and value >= rule.threshold,
                "insufficient_data": row["n_rows"] < uc.min_rows,
            }
        )
    for row in features:
        quality = {"n_rows": row["n_rows"], "insufficient_data": row["n_rows"] < uc.min_rows}
        reference_null = reference_nulls.get(row["feature"]) or 0.0
        increase = (row["null_share"] or 0.0) - reference_null
        rows.append(
            quality
            | {
                "feature": row["feature"],
                "kind": "null_share",
                "null_share": row["null_share"],
                "reference_null_share": reference_null,
                "method": "null_share_increase",
                "value": increase,
                "threshold": uc.max_null_share_increase,
                "drifted": increase >= uc.max_null_share_increase,
            }
        )
        if row["kind"] == "categorical":
            unseen = row["unseen_share"] or 0.0
            rows.append(
                quality
                | {
                    "feature": row["feature"],
                    "kind": "unseen_share",
                    "unseen_share": unseen,
                    "method": "unseen_share",
                    "value": unseen,
                    "threshold": uc.max_unseen_share,
                    "drifted": unseen >= uc.max_unseen_share,
                }
            )
    return rows


def day_checks(
    con: duckdb.DuckDBPyConnection,
    uc: UseCase,
    day: date,
    performance: dict,
    dataset: dict,
    missing: tuple[str, ...],
    drift: list[dict],
) -> list[dict]:
    """Every alert rule evaluated on the day, firing or not. The performance rules compare the rolling mean
    of the last ``monitoring.rolling_days`` days' daily ROC-AUC (realised: error; estimated: warn) with the
    version's mean daily ROC-AUC on its test window minus ``monitoring.max_auc_drop``."""
    version = performance["model_version"]
    checks = []

    def check(kind: str, subject: str, firing: bool, value: float | None, threshold: float | None, message: str):
        checks.append(
            {
                "partition_date": day,
                "model_name": uc.model_name,
                "model_version": version,
                "kind": kind,
                "subject": subject,
                "severity": SEVERITY[kind],
                "firing": bool(firing),
                "value": value,
                "threshold": threshold,
                "message": message,
                "computed_at": performance["computed_at"],
            }
        )

    test_metrics = json.loads(version_row(con, uc.model_name, version)["metrics"])
    test_roc_auc = test_metrics.get("daily_roc_auc", test_metrics.get("roc_auc"))
    if test_roc_auc is not None:
        floor = test_roc_auc - uc.max_auc_drop
        first = day - timedelta(days=uc.rolling_days - 1)
        for kind, column, where, current in (
            (
                "performance",
                "roc_auc",
                "status = 'ok'",
                performance["roc_auc"] if performance["status"] == "ok" else None,
            ),
            ("estimated_performance", "est_roc_auc", "not insufficient_data", performance["est_roc_auc"]),
        ):
            # The day's own row is not written yet: the window is the earlier days plus the day's value.
            total, days = con.execute(
                f"select coalesce(sum({column}), 0), count({column}) from {PERFORMANCE_TABLE} where model_name = ? "
                f"and model_version = ? and {where} and partition_date between ? and ?",
                [uc.model_name, version, first, day - timedelta(days=1)],
            ).fetchone()
            if current is None:
                continue
            rolling = (total + current) / (days + 1)
            if days + 1 < uc.rolling_days // 2 + 1:
                continue
            label = "realised" if kind == "performance" else "estimated"
            check(
                kind,
                "roc_auc",
                rolling < floor,
                rolling,
                floor,
                f"{uc.rolling_days}-day mean {label} daily ROC-AUC {rolling:.3f} over {days + 1} days; floor = the "
                f"model's mean daily ROC-AUC on its test window {test_roc_auc:.3f} minus {uc.max_auc_drop}",
            )
    for feature in missing:
        check(
            "missing_feature",
            feature,
            True,
            None,
            None,
            f"{uc.feature_model} has no column {feature} on {day}, but model version {version} uses it; "
            "restore the column (dbt) before the next scoring",
        )
    if dataset["drifted_share"] is not None and not dataset["insufficient_data"]:
        check(
            "dataset_drift",
            "drifted_share",
            dataset["dataset_drifted"],
            dataset["drifted_share"],
            dataset["threshold"],
            f"{dataset['n_drifted']} of {dataset['n_features']} features drifted"
            + (f": {dataset['drifted_features']}" if dataset["drifted_features"] else ""),
        )
    for row in drift:
        if row["insufficient_data"]:
            continue
        if row["kind"] == "prediction":
            check(
                "prediction_drift",
                row["feature"],
                row["drifted"],
                row["value"],
                row["threshold"],
                f"score {row['method']} {row['value']:.3f} against the validation window "
                f"(threshold {row['threshold']})",
            )
        elif row["kind"] in ("null_share", "unseen_share"):
            check(
                "data_quality",
                f"{row['feature']}:{row['kind']}",
                row["drifted"],
                row["value"],
                row["threshold"],
                f"{row['feature']}: {row['method'].replace('_', ' ')} {row['value']:.3f} "
                f"(threshold {row['threshold']})",
            )
    return checks


# Episodes of firing evaluations of each (kind, subject). Evaluations are numbered per rule; a firing one starts
# a new episode unless the rule's previous firing evaluation is fewer than $close_after evaluations back, and an
# episode closes on its $close_after-th clear evaluation after the last firing one (1: the first clear day).
_ALERTS_SQL = f"""
with evaluated as (
    select *, row_number() over (partition by kind, subject order by partition_date) as seq
    from {CHECKS_TABLE} where model_name = $model_name
),
gaps as (
    select *, seq - lag(seq) over (partition by kind, subject order by seq) as since_previous
    from evaluated where firing
),
firing as (
    select *,
        sum(case when coalesce(since_previous, $close_after + 1) > $close_after then 1 else 0 end)
            over (partition by kind, subject order by seq rows unbounded preceding) as episode
    from gaps
),
episodes as (
    select kind, subject, episode, max(seq) as last_seq,
        min(partition_date) as opened_on, max(partition_date) as last_firing_on, count(*) as days_firing,
        arg_min(computed_at, partition_date) as opened_at, arg_min(value, partition_date) as opened_value,
        arg_max(value, partition_date) as value, arg_max(threshold, partition_date) as threshold,
        arg_max(severity, partition_date) as severity, arg_min(model_version, partition_date) as opened_by_version,
        arg_max(model_version, partition_date) as model_version, arg_max(message, partition_date) as message
    from firing group by kind, subject, episode
)
select $model_name || ':' || e.kind || ':' || e.subject || ':' || e.opened_on::varchar as alert_id,
    $model_name as model_name, e.kind, e.subject, e.severity,
    case when closing.partition_date is null then 'open' else 'closed' end as state,
    e.opened_on, e.last_firing_on, closing.partition_date as closed_on, e.opened_at,
    closing.computed_at as closed_at, e.days_firing, e.opened_value, e.value, e.threshold,
    e.opened_by_version, e.model_version, e.message
from episodes e
left join evaluated closing
    on closing.kind = e.kind and closing.subject = e.subject and closing.seq = e.last_seq + $close_after
"""


def rebuild_alerts(con: duckdb.DuckDBPyConnection, model_name: str, close_after: int = 1) -> None:
    """Replace the model's alerts with the episodes of its checks (call inside the day's transaction).

    An alert closes after ``close_after`` consecutive clear evaluations; a rule firing again sooner continues it.
    """
    con.execute(f"delete from {ALERTS_TABLE} where model_name = ?", [model_name])
    con.execute(
        f"insert into {ALERTS_TABLE} by name {_ALERTS_SQL}", {"model_name": model_name, "close_after": close_after}
    )


def _replace_day(
    con: duckdb.DuckDBPyConnection,
    uc: UseCase,
    day: date,
    rows: dict[str, list[dict]],
    performance: dict | None = None,
    dataset: dict | None = None,
    missing: tuple[str, ...] = (),
) -> list[dict]:
    """Replace the day's rows of every monitoring table and rebuild the model's alerts, in one transaction."""
    with transaction(con):
        for table in (PERFORMANCE_TABLE, SEGMENTS_TABLE, DRIFT_TABLE, DATASET_DRIFT_TABLE, CHECKS_TABLE):
            con.execute(f"delete from {table} where partition_date = ? and model_name = ?", [day, uc.model_name])
        checks = []
        if performance is not None:
            checks = day_checks(con, uc, day, performance, dataset, missing, rows[DRIFT_TABLE])
        for table, table_rows in (rows | {CHECKS_TABLE: checks}).items():
            insert_rows(con, table, pa.Table.from_pylist(table_rows))
        rebuild_alerts(con, uc.model_name, uc.alert_close_after_days)
    return checks
