"""Jobs and the evening schedules of production."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from dagster_project.defs.analysis import feature_data_profile, raw_data_profile
from dagster_project.defs.features import warehouse_dbt_models
from dagster_project.defs.ingest import RAW_ASSETS
from dagster_project.defs.monitoring import daily_monitoring
from dagster_project.defs.resources import USE_CASE, WarehouseResource
from dagster_project.defs.scoring import DAILY, daily_predictions
from dagster_project.defs.training import candidate_model, champion_model
from dagster_project.monitoring import ALERTS_TABLE, PERFORMANCE_TABLE, RETRAIN_KINDS

# One process per run: a step costs about 2 s instead of 5 s with the multiprocess executor (STACK.md), and
# the warehouse allows one writer at a time anyway.
warehouse_job = dg.define_asset_job(
    "warehouse_job",
    selection=dg.AssetSelection.assets(*RAW_ASSETS, raw_data_profile, warehouse_dbt_models, feature_data_profile),
    executor_def=dg.in_process_executor,
    description="Extract the sources, profile them, build and test the dbt features, profile the features.",
)
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(candidate_model, champion_model),
    executor_def=dg.in_process_executor,
    description="Train a candidate, evaluate it, and promote it if it passes the gate.",
)
scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets(daily_predictions),
    partitions_def=DAILY,
    executor_def=dg.in_process_executor,
    description="Score a day (or a range, as one run) with the champion.",
)
monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.assets(daily_monitoring),
    partitions_def=DAILY,
    executor_def=dg.in_process_executor,
    description="Compute performance and drift of scored days.",
)


@dg.schedule(job=warehouse_job, cron_schedule=USE_CASE.warehouse_cron, execution_timezone=USE_CASE.schedule_timezone)
def evening_warehouse_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Each evening before scoring, reload the sources and rebuild the features and labels: tomorrow's schedule
    appears, and the outcomes that landed since yesterday become labels (which wakes monitor_on_labels_sensor)."""
    return dg.RunRequest(run_key=f"warehouse-{context.scheduled_execution_time:%Y-%m-%d}")


@dg.schedule(job=scoring_job, cron_schedule=USE_CASE.schedule_cron, execution_timezone=USE_CASE.schedule_timezone)
def evening_scoring_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Each evening, score tomorrow: its schedule is known, its outcomes are not."""
    tomorrow = (context.scheduled_execution_time + timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"score-{tomorrow}", partition_key=tomorrow)


@dg.schedule(job=monitoring_job, cron_schedule=USE_CASE.schedule_cron, execution_timezone=USE_CASE.schedule_timezone)
def evening_monitoring_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Each evening, monitor yesterday: its outcomes landed at midnight, so its labels are known."""
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"monitor-{yesterday}", partition_key=yesterday)


def training_run_config(as_of: str) -> dict:
    return {"ops": {"candidate_model": {"config": {"as_of": as_of}}}}


@dg.schedule(job=training_job, cron_schedule=USE_CASE.retraining_cron, execution_timezone=USE_CASE.schedule_timezone)
def retraining_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Retrain at the YAML's cadence on the data available that day (labels up to the day before)."""
    as_of = context.scheduled_execution_time.date().isoformat()
    return dg.RunRequest(run_key=f"retrain-{as_of}", run_config=training_run_config(as_of))


def _published_rows(published: Path, table: str, sql: str, params: list) -> list[tuple]:
    """Rows of ``sql`` on the published file; none while the file or ``table`` does not exist yet."""
    if not published.exists():
        return []
    schema, name = table.split(".")
    with duckdb.connect(str(published), read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchone()[0]
        return con.execute(sql, params).fetchall() if exists else []


def open_error_alerts(published: Path, model_name: str) -> list[tuple[str, str, str]]:
    """(alert_id, opened_on, message) of the open error alerts whose kind a retraining can fix."""
    kinds = ", ".join(f"'{kind}'" for kind in RETRAIN_KINDS)
    return _published_rows(
        published,
        ALERTS_TABLE,
        f"select alert_id, opened_on::varchar, message from {ALERTS_TABLE} where model_name = ? "
        f"and severity = 'error' and state = 'open' and kind in ({kinds}) order by opened_on",
        [model_name],
    )


@dg.sensor(job=training_job, minimum_interval_seconds=300)
def retrain_on_alert_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Start a retraining while monitoring holds an open error alert that a new model can fix (the realised
    performance rule), at most once per ``retraining.cooldown_days``: a new alert retrains at once (outside the
    cooldown), and an alert still open after the cooldown (the candidate was rejected, or did not help) retrains
    again. It reads the published file, so it never takes the warehouse's lock; the cursor holds the time of
    the last retraining it requested.
    """
    cursor = json.loads(context.cursor) if context.cursor else {}
    alerts = open_error_alerts(Path(warehouse.published_path), USE_CASE.model_name)
    if not alerts:
        return dg.SkipReason("no open error alert")
    now = datetime.now(UTC)
    cooldown = timedelta(days=USE_CASE.retraining_cooldown_days)
    last = datetime.fromisoformat(cursor["requested_at"]) if cursor.get("requested_at") else None
    if last is not None and now - last < cooldown:
        return dg.SkipReason(
            f"{len(alerts)} open error alert(s), but the last retraining was requested at {last}, "
            f"within the cooldown of {USE_CASE.retraining_cooldown_days} days"
        )
    context.update_cursor(json.dumps({"requested_at": now.isoformat()}))
    alert_id, _, message = alerts[-1]
    return dg.RunRequest(
        run_key=f"alert-retrain-{alert_id}-{now:%Y%m%dT%H%M%S}",
        run_config=training_run_config(now.date().isoformat()),
        tags={"trigger": "alert", "alert": alert_id, "alert_message": message[:200]},
    )


def days_awaiting_labels(published: Path, model_name: str, window_days: int) -> list[str]:
    """Monitored days whose labels were not all known, within ``window_days`` of the newest monitored day."""
    rows = _published_rows(
        published,
        PERFORMANCE_TABLE,
        f"select partition_date::varchar from {PERFORMANCE_TABLE} where model_name = ? and n_labelled < n_scored "
        f"and partition_date > (select max(partition_date) from {PERFORMANCE_TABLE} where model_name = ?) - ? "
        "order by 1",
        [model_name, model_name, window_days],
    )
    return [day for (day,) in rows]


@dg.sensor(job=monitoring_job, minimum_interval_seconds=300)
def monitor_on_labels_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """When the label model is materialised again (labels landed), re-run monitoring, as one run, over the
    monitored days that still lacked labels (``monitoring.relabel_days`` back at most), so realised metrics and
    the estimate's error appear without anyone asking. The cursor is the label materialisation last acted on.
    """
    label_key = dg.AssetKey(USE_CASE.label_model.split("."))
    records = context.instance.fetch_materializations(label_key, limit=1, ascending=False).records
    event = records[0] if records else None
    if event is None:
        return dg.SkipReason(f"{label_key.to_user_string()} was never materialised")
    if context.cursor and int(context.cursor) >= event.storage_id:
        return dg.SkipReason(f"no new materialisation of {label_key.to_user_string()}")
    context.update_cursor(str(event.storage_id))
    due = days_awaiting_labels(Path(warehouse.published_path), USE_CASE.model_name, USE_CASE.relabel_days)
    if not due:
        return dg.SkipReason("labels landed, and every monitored day already had all of its labels")
    return dg.RunRequest(
        run_key=f"relabel-{event.storage_id}",
        tags={
            "dagster/asset_partition_range_start": due[0],
            "dagster/asset_partition_range_end": due[-1],
            "trigger": "labels",
        },
    )
