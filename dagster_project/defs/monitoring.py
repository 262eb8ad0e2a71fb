"""Daily monitoring: realised and estimated performance, drift, checks and alerts, in the monitoring schema."""

from datetime import datetime

import dagster as dg

from dagster_project.defs.resources import USE_CASE, WAREHOUSE_POOL, WarehouseResource
from dagster_project.defs.scoring import DAILY, daily_predictions, partition_days
from dagster_project.monitoring import MONITORING_TABLES, ensure_monitoring_tables, monitor_day

# (check name, severity, alert kinds it covers, description)
MONITORING_CHECKS = (
    (
        "realised_performance_within_tolerance",
        dg.AssetCheckSeverity.ERROR,
        ("performance",),
        "The rolling mean daily ROC-AUC stays above the model's mean daily test ROC-AUC minus "
        "monitoring.max_auc_drop on every monitored day (an error alert retrains).",
    ),
    (
        "all_model_features_present",
        dg.AssetCheckSeverity.ERROR,
        ("missing_feature",),
        "Every feature the scoring model uses is a column of the feature table.",
    ),
    (
        "estimated_performance_within_tolerance",
        dg.AssetCheckSeverity.WARN,
        ("estimated_performance",),
        "The same rule on the confidence-based estimate of ROC-AUC, which exists before labels land.",
    ),
    (
        "drift_within_thresholds",
        dg.AssetCheckSeverity.WARN,
        ("dataset_drift", "prediction_drift", "data_quality"),
        "The share of drifted features, the score's drift, and null and unseen-level shares stay under the "
        "YAML's monitoring.drift thresholds.",
    ),
)


class MonitoringConfig(dg.Config):
    labels_as_of: str | None = None
    """Labels known at this time (label model's clock, 'YYYY-MM-DD HH:MM:SS'); unset: now. For replays."""


@dg.asset(
    deps=[daily_predictions, dg.AssetKey(USE_CASE.label_model.split("."))],
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="monitoring",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec(name, asset="daily_monitoring", description=description)
        for name, _, _, description in MONITORING_CHECKS
    ],
)
def daily_monitoring(
    context: dg.AssetExecutionContext, config: MonitoringConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Per scored day: realised metrics once labels landed and their confidence-based estimate before, overall
    and per segment; drift of every feature, of its null and unseen shares and of the score against the
    scoring version's reference; the alert rules evaluated, and the alerts they open and close."""
    uc = warehouse.use_case()
    labels_as_of = datetime.fromisoformat(config.labels_as_of) if config.labels_as_of else None
    results = []
    with warehouse.connection() as con:
        ensure_monitoring_tables(con)
        for day in partition_days(context):
            result = monitor_day(con, uc, day, labels_as_of)
            results.append(result)
            if result.status == "not_scored":
                context.log.info(f"{day}: not scored yet; nothing to monitor")
            for feature in result.missing_features:
                context.log.error(f"{day}: feature {feature} is missing from {uc.feature_model}")
        reports = [
            f"monitoring.{name}"
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'monitoring' "
                "and table_type = 'VIEW' order by 1"
            ).fetchall()
        ]
        open_alerts = con.execute(
            "select severity, kind, subject, opened_on::varchar, value, threshold from monitoring.alerts "
            "where model_name = ? and state = 'open' order by severity, kind, subject",
            [uc.model_name],
        ).fetchall()
        warehouse.publish(con, [*MONITORING_TABLES, *reports], context.run_id)
    monitored = [r for r in results if r.status != "not_scored"]
    check_results = []
    for name, severity, kinds, _ in MONITORING_CHECKS:
        firing = [(str(r.day), subject) for r in monitored for _, kind, subject in r.firing if kind in kinds]
        check_results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not firing,
                severity=severity,
                metadata={
                    "days_monitored": len(monitored),
                    "days_firing": len({day for day, _ in firing}),
                    "firing": dg.MetadataValue.json([f"{day}: {subject}" for day, subject in firing[:50]]),
                },
            )
        )
    aucs = [r.roc_auc for r in monitored if r.roc_auc is not None]
    estimates = [r.est_roc_auc for r in monitored if r.est_roc_auc is not None]
    drifted = sorted({f for r in monitored for f in r.drifted_features})
    return dg.MaterializeResult(
        metadata={
            "days": len(results),
            "days_monitored": len(monitored),
            "status_counts": dg.MetadataValue.json(
                {s: sum(r.status == s for r in results) for s in sorted({r.status for r in results})}
            ),
            "mean_roc_auc": sum(aucs) / len(aucs) if aucs else None,
            "mean_estimated_roc_auc": sum(estimates) / len(estimates) if estimates else None,
            "drifted_features": ", ".join(drifted) or "none",
            "open_alerts": dg.MetadataValue.json(
                [
                    {"severity": s, "kind": k, "subject": subj, "opened_on": o, "value": v, "threshold": t}
                    for s, k, subj, o, v, t in open_alerts
                ]
            ),
            "published_reports": ", ".join(reports) or "none",
        },
        check_results=check_results,
    )
