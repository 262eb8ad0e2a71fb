"""Daily monitoring: realised performance and per-feature PSI drift, written to the monitoring schema."""

import dagster as dg

from dagster_project.defs.resources import USE_CASE, WAREHOUSE_POOL, WarehouseResource
from dagster_project.defs.scoring import DAILY, daily_predictions, partition_days
from dagster_project.monitoring import (
    ALERTS_TABLE,
    DRIFT_TABLE,
    PERFORMANCE_TABLE,
    ensure_monitoring_tables,
    monitor_day,
)


@dg.asset(
    deps=[daily_predictions, dg.AssetKey(USE_CASE.label_model.split("."))],
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="monitoring",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)
def daily_monitoring(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Per scored day: ROC-AUC, Brier, log loss, base rate and mean prediction once labels landed, and the
    PSI of every feature and of the score against the scoring model's training reference."""
    uc = warehouse.use_case()
    results = []
    with warehouse.connection() as con:
        ensure_monitoring_tables(con)
        for day in partition_days(context):
            result = monitor_day(con, uc, day)
            results.append(result)
            if result.status == "not_scored":
                context.log.info(f"{day}: not scored yet; nothing to monitor")
        warehouse.publish(con, [PERFORMANCE_TABLE, DRIFT_TABLE, ALERTS_TABLE], context.run_id)
    aucs = [r.roc_auc for r in results if r.roc_auc is not None]
    drifted = sorted({f for r in results for f in r.drifted_features})
    if drifted:
        days_drifted = sum(bool(r.drifted_features) for r in results)
        context.log.warning(f"PSI above {uc.psi_threshold} on {days_drifted} of {len(results)} days for {drifted}")
    return dg.MaterializeResult(
        metadata={
            "days": len(results),
            "days_with_labels": sum(r.status in ("ok", "insufficient_data") for r in results),
            "mean_roc_auc": sum(aucs) / len(aucs) if aucs else None,
            "min_roc_auc": min(aucs) if aucs else None,
            "drifted_features": ", ".join(drifted) or "none",
            "status_counts": dg.MetadataValue.json(
                {s: sum(r.status == s for r in results) for s in {r.status for r in results}}
            ),
        }
    )
