"""Daily batch predictions with the champion, written back to the warehouse one day per transaction."""

import dagster as dg

from dagster_project.defs.resources import USE_CASE, WAREHOUSE_POOL, WarehouseResource
from dagster_project.defs.training import FEATURE_KEYS, champion_model
from dagster_project.registry import load_champion
from dagster_project.scoring import (
    MARTS_SCHEMA,
    ScoredDay,
    days,
    latest_view_sql,
    published_tables,
    quarantine_table,
    score_days,
)

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
    targets = partition_days(context)

    def report(scored: ScoredDay, progress: str) -> None:
        if scored.quarantined_rows:
            context.log.warning(
                f"{scored.day}: {scored.quarantined_rows} row(s) failed input validation and were quarantined in "
                f"{quarantine_table(uc)}, not scored"
            )
        if scored.rows == 0 and scored.quarantined_rows == 0:
            context.log.info(f"{scored.day}: no rows to score; nothing written")
        context.log.info(progress)

    with warehouse.connection() as con:
        model = load_champion(con, uc.model_name)
        results, schema = score_days(con, uc, model, targets, context.run_id, on_day=report)
        total = sum(r.rows for r in results)
        quarantined = sum(r.quarantined_rows for r in results)
        unseen = {str(r.day): r.unseen_levels for r in results if r.unseen_levels}
        tables = published_tables(con, uc)
        warehouse.publish(
            con,
            tables,
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
            "reason_codes": uc.reason_codes,
            "batch_rows": uc.batch_rows,
            "quarantined_rows": quarantined,
            # Unseen categorical levels are scored as missing (as LightGBM treats them), not quarantined.
            "unseen_levels": dg.MetadataValue.json(unseen),
            "unseen_level_rows": sum(n for per_day in unseen.values() for n in per_day.values()),
            "input_schema": dg.MetadataValue.json(schema.describe()),
            "published_marts": ", ".join(t for t in tables if t.startswith(f"{MARTS_SCHEMA}.")) or "none",
        }
    )


@dg.asset_check(
    asset=daily_predictions,
    description="One row per entity per scored day, and every entity either scored or quarantined.",
)
def predictions_cover_each_scored_day_once(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    uc = warehouse.use_case()
    with warehouse.connection() as con:
        duplicates, missing, extra = con.execute(
            f"""
            with scored as (select {uc.partition_column} as day, {uc.entity_key} as key from {uc.predictions_table}),
            quarantined as (
                select distinct {uc.partition_column} as day, {uc.entity_key} as key from {quarantine_table(uc)}
                where not partition_rejected
            ),
            expected as (
                select f.{uc.partition_column} as day, f.{uc.entity_key}::varchar as key from {uc.feature_model} f
                where f.{uc.partition_column} in (select distinct day from scored)
                except select * from quarantined
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
