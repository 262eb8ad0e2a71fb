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


def error_alerts_since(published: Path, opened_after: str) -> list[tuple[str, str, str]]:
    """(alert_id, opened_at, message) of error alerts opened after the cursor, from the published file."""
    if not published.exists():
        return []
    with duckdb.connect(str(published), read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'monitoring' and table_name = 'alerts'"
        ).fetchone()[0]
        if not exists:
            return []
        return con.execute(
            "select alert_id, opened_at::varchar, message from monitoring.alerts where severity = 'error' "
            "and opened_at > ?::timestamptz order by opened_at",
            [opened_after],
        ).fetchall()


@dg.sensor(job=training_job, minimum_interval_seconds=300)
def retrain_on_alert_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Start a retraining when monitoring opens an error alert, at most once per cooldown.

    It reads the published file, so it never takes the warehouse's lock; the cursor is the newest alert seen
    and the time of the last retraining it requested.
    """
    cursor = json.loads(context.cursor) if context.cursor else {"alert": "1970-01-01 00:00:00+00", "requested_at": None}
    alerts = error_alerts_since(Path(warehouse.published_path), cursor["alert"])
    if not alerts:
        return dg.SkipReason("no new error alert")
    cursor["alert"] = alerts[-1][1]
    now = datetime.now(UTC)
    cooldown = timedelta(days=USE_CASE.retraining_cooldown_days)
    last = datetime.fromisoformat(cursor["requested_at"]) if cursor["requested_at"] else None
    if last is not None and now - last < cooldown:
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(
            f"{len(alerts)} new error alert(s), but the last retraining was requested at {last}, "
            f"within the cooldown of {USE_CASE.retraining_cooldown_days} days"
        )
    cursor["requested_at"] = now.isoformat()
    context.update_cursor(json.dumps(cursor))
    as_of = now.date().isoformat()
    return dg.RunRequest(
        run_key=f"alert-retrain-{alerts[-1][0]}",
        run_config=training_run_config(as_of),
        tags={"trigger": "alert", "alert": alerts[-1][0], "alert_message": alerts[-1][2][:200]},
    )
