"""Training, evaluation, the validation gate and the registry."""

import dagster as dg

from dagster_project.defs.resources import USE_CASE, WAREHOUSE_POOL, WarehouseResource
from dagster_project.lifecycle import gate_candidate, train_and_register
from dagster_project.registry import ModelIntegrityError, champion_row, load_model

REGISTRY_TABLES = ["ml.model_versions", "ml.model_history"]
FEATURE_KEYS = [dg.AssetKey(USE_CASE.feature_model.split(".")), dg.AssetKey(USE_CASE.label_model.split("."))]


def _metric_table(metrics: dict, baseline: dict, champion: dict | None = None) -> dg.MetadataValue:
    lines = ["| metric | candidate | baseline | champion |", "|---|---|---|---|"]
    for name in (
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
        "base_rate",
        "mean_prediction",
        "precision",
        "recall",
        "f1",
        "n_rows",
    ):

        def cell(source: dict | None, key: str = name) -> str:
            value = None if source is None else source.get(key)
            return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

        lines.append(f"| {name} | {cell(metrics)} | {cell(baseline)} | {cell(champion)} |")
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(deps=FEATURE_KEYS, group_name="training", pool=WAREHOUSE_POOL, kinds={"lightgbm"})
def candidate_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """A LightGBM model trained on the use case's training window and measured on its validation window,
    registered as a candidate (model file, metadata with SHA-256, training reference profile)."""
    uc = warehouse.use_case()
    with warehouse.connection() as con:
        registered = train_and_register(
            con, uc, warehouse.settings.models_dir, context.run_id, actor=f"dagster run {context.run_id}"
        )
        warehouse.publish(con, REGISTRY_TABLES, context.run_id)
    row = registered.row
    return dg.MaterializeResult(
        metadata={
            "model_name": uc.model_name,
            "version": registered.version,
            "artifact_path": dg.MetadataValue.path(row["artifact_path"]),
            "artifact_sha256": row["artifact_sha256"],
            "train_window": f"{uc.train.start} .. {uc.train.end}",
            "validation_window": f"{uc.validation.start} .. {uc.validation.end}",
            "train_rows": registered.train_rows,
            "validation_rows": registered.validation_rows,
            "threshold": row["threshold"],
            "roc_auc": registered.metrics["roc_auc"],
            "baseline_roc_auc": registered.baseline_metrics["roc_auc"],
            "metrics": _metric_table(registered.metrics, registered.baseline_metrics),
            "code_version": row["code_version"],
        }
    )


@dg.asset(deps=[candidate_model], group_name="training", pool=WAREHOUSE_POOL, kinds={"duckdb"})
def champion_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The live model. The newest candidate replaces it only if it beats the baseline by the configured
    margin and does not fall behind the current champion on the same validation rows."""
    uc = warehouse.use_case()
    with warehouse.connection() as con:
        newest = con.execute(
            "select max(version) from ml.model_versions where model_name = ? and status = 'candidate'",
            [uc.model_name],
        ).fetchone()[0]
        if newest is None:
            raise ValueError(
                f"ml.model_versions: no candidate of {uc.model_name} to judge; materialise candidate_model first"
            )
        decision, previous = gate_candidate(
            con, uc, newest, actor=f"gate in dagster run {context.run_id}", run_id=context.run_id
        )
        champion = champion_row(con, uc.model_name)
        warehouse.publish(con, REGISTRY_TABLES, context.run_id)
    if decision.passed:
        context.log.info(f"v{newest} promoted: {'; '.join(decision.reasons)}")
    else:
        context.log.warning(
            f"v{newest} rejected, champion stays "
            f"{'none' if champion is None else 'v' + str(champion['version'])}: "
            f"{'; '.join(decision.reasons)}"
        )
    return dg.MaterializeResult(
        metadata={
            "candidate_version": newest,
            "gate_passed": decision.passed,
            "gate_reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            "champion_version": "none" if champion is None else champion["version"],
            "previous_champion_version": "none" if previous is None else previous["version"],
            **{k: v for k, v in decision.values.items() if v is not None},
        }
    )


@dg.asset_check(asset=champion_model, blocking=True, description="The champion's files match their SHA-256.")
def champion_artifact_is_intact(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    uc = warehouse.use_case()
    with warehouse.connection() as con:
        row = champion_row(con, uc.model_name)
        if row is None:
            return dg.AssetCheckResult(passed=False, metadata={"reason": "no champion"})
        try:
            load_model(row)
        except ModelIntegrityError as error:
            return dg.AssetCheckResult(passed=False, metadata={"version": row["version"], "error": str(error)})
    return dg.AssetCheckResult(passed=True, metadata={"version": row["version"], "sha256": row["artifact_sha256"]})
