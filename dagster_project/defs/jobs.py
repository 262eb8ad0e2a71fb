"""Jobs and the evening schedules of production."""

from datetime import timedelta

import dagster as dg

from dagster_project.defs.analysis import feature_data_profile, raw_data_profile
from dagster_project.defs.features import warehouse_dbt_models
from dagster_project.defs.ingest import RAW_ASSETS
from dagster_project.defs.monitoring import daily_monitoring
from dagster_project.defs.resources import USE_CASE
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
