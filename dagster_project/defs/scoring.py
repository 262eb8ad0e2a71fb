"""Daily batch predictions with the champion, written back to the warehouse one day per transaction."""

import time

import dagster as dg

from dagster_project.defs.resources import USE_CASE, WAREHOUSE_POOL, WarehouseResource
from dagster_project.defs.training import FEATURE_KEYS, champion_model
from dagster_project.registry import load_champion
from dagster_project.scoring import days, ensure_predictions_table, latest_view_sql, score_day

# end_offset=2: the partition of tomorrow exists today, because the evening batch scores tomorrow.
DAILY = dg.DailyPartitionsDefinition(
    start_date=USE_CASE.partitions_start.isoformat(), end_offset=2, timezone=USE_CASE.schedule_timezone
)


def partition_days(context: dg.AssetExecutionContext) -> list:
    window = context.partition_time_window
    return list(days(window.start.date(), window.end.date()))[:-1]


@dg.asset(
    deps=[champion_model, FEATURE_KEYS[0]],
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="scoring",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "lightgbm"},
)
def daily_predictions(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per entity per day: the champion's probability, the decision at its stored threshold, the
    model version, the run id and scored_at. A rerun replaces the day's rows; a backfill is one run."""
    uc = warehouse.use_case()
    started = time.monotonic()
    total = 0
    with warehouse.connection() as con:
        model = load_champion(con, uc.model_name)
        ensure_predictions_table(con, uc)
        targets = partition_days(context)
        for done, day in enumerate(targets, start=1):
            scored = score_day(con, uc, model, day, context.run_id)
            total += scored.rows
            if scored.rows == 0:
                context.log.info(f"{day}: no rows to score; nothing written")
            if done % 10 == 0 or done == len(targets):
                rate = total / max(time.monotonic() - started, 1e-9)
                context.log.info(f"scored {done}/{len(targets)} days, {total} rows, {rate:,.0f} rows/s")
        warehouse.publish(
            con,
            [uc.predictions_table],
            context.run_id,
            views={f"{uc.predictions_table}_latest": latest_view_sql(uc)},
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "days": len(targets),
            "model_version": model.version,
            "first_day": str(targets[0]),
            "last_day": str(targets[-1]),
        }
    )


@dg.asset_check(asset=daily_predictions, description="One row per entity per scored day, and every entity scored.")
def predictions_cover_each_scored_day_once(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    uc = warehouse.use_case()
    with warehouse.connection() as con:
        duplicates, missing, extra = con.execute(
            f"""
            with scored as (select {uc.partition_column} as day, {uc.entity_key} as key from {uc.predictions_table}),
            expected as (
                select f.{uc.partition_column} as day, f.{uc.entity_key} as key from {uc.feature_model} f
                where f.{uc.partition_column} in (select distinct day from scored)
            )
            select
                (select count(*) from (select day, key from scored group by all having count(*) > 1)),
                (select count(*) from (select * from expected except select * from scored)),
                (select count(*) from (select * from scored except select * from expected))
            """
        ).fetchone()
    return dg.AssetCheckResult(
        passed=duplicates == missing == extra == 0,
        metadata={"duplicate_keys": duplicates, "entities_not_scored": missing, "rows_without_entity": extra},
    )
