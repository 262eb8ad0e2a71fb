"""Training with tuning, the validation gate as a blocking asset check, the registry, promotion and rollback."""

from datetime import date
from typing import Literal

import dagster as dg

from dagster_project.defs.resources import DBT_PROJECT, USE_CASE, WAREHOUSE_POOL, WarehouseResource
from dagster_project.lifecycle import file_sha256, gate_candidate, promote_version, rollback, train_and_register
from dagster_project.model_card import metrics_table
from dagster_project.registry import CARD_FILE, REGISTRY_TABLES, ModelIntegrityError, champion_row, load_model

FEATURE_KEYS = [dg.AssetKey(USE_CASE.feature_model.split(".")), dg.AssetKey(USE_CASE.label_model.split("."))]
GATE_CHECK = "passes_gate"


class TrainingConfig(dg.Config):
    """Run-time knobs of a training run."""

    as_of: str | None = None  # training date YYYY-MM-DD (labels up to the day before); default windows.initial_as_of


@dg.asset(
    deps=FEATURE_KEYS,
    group_name="training",
    pool=WAREHOUSE_POOL,
    kinds={"lightgbm", "optuna"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="candidate_model",
            blocking=True,
            description="Beats the best baseline by the margin, does not trail the champion on the same test rows "
            "(overall and per segment), and has the input schema the scoring asset feeds.",
        )
    ],
)
def candidate_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """A LightGBM model tuned with Optuna on consecutive train / validation windows, calibrated, and judged on
    the later test window; registered as a candidate (model, calibration, metadata with SHA-256, reference
    profile, model card). A failed gate records it as rejected and blocks its promotion."""
    uc = warehouse.use_case()
    as_of = date.fromisoformat(config.as_of) if config.as_of else None
    actor = f"dagster run {context.run_id}"
    with warehouse.connection() as con:
        registered = train_and_register(
            con,
            uc,
            warehouse.settings.models_dir,
            context.run_id,
            actor,
            as_of=as_of,
            manifest_sha256=file_sha256(DBT_PROJECT.manifest_path),
        )
        judged = gate_candidate(con, uc, registered.version, f"gate in {actor}", context.run_id)
        warehouse.publish(con, REGISTRY_TABLES, context.run_id)
    row, candidate, windows = registered.row, registered.candidate, registered.windows
    decision = judged.decision
    context.log.info(
        f"v{registered.version}: gate {'passed' if decision.passed else 'FAILED'}: " + "; ".join(decision.reasons)
    )
    gate_metadata: dict = {
        "checks": dg.MetadataValue.md(
            "| check | passed | value | threshold | detail |\n|---|---|---|---|---|\n"
            + "\n".join(f"| {c.name} | {c.passed} | {c.value} | {c.threshold} | {c.detail} |" for c in decision.checks)
        )
    }
    for c in decision.checks:
        gate_metadata[f"{c.name}_value"] = c.value if isinstance(c.value, int | float) else str(c.value)
        gate_metadata[f"{c.name}_threshold"] = c.threshold if isinstance(c.threshold, int | float) else str(c.threshold)
    gate_metadata["champion_version"] = judged.champion_version if judged.champion_version is not None else "none"
    return dg.MaterializeResult(
        metadata={
            "version": registered.version,
            "as_of": str(windows.as_of),
            "windows": f"train {windows.train.start}..{windows.train.end}, validation {windows.validation.start}.."
            f"{windows.validation.end}, test {windows.test.start}..{windows.test.end}",
            "rows": dg.MetadataValue.json(candidate.rows),
            "test_roc_auc": candidate.metrics["roc_auc"],
            "threshold": row["threshold"],
            "trials": len(candidate.tuning.trials),
            "tuning_seconds": round(candidate.tuning.seconds, 1),
            "best_params": dg.MetadataValue.json(candidate.tuning.best_params),
            "metrics": dg.MetadataValue.md(
                metrics_table(
                    {"candidate": candidate.metrics, "champion (same rows)": judged.champion_metrics or {}}
                    | candidate.baseline_metrics
                )
            ),
            "artifact_path": dg.MetadataValue.path(row["artifact_path"]),
            "artifact_sha256": row["artifact_sha256"],
            "model_card": dg.MetadataValue.md(
                (warehouse.settings.models_dir / uc.model_name / f"v{registered.version}" / CARD_FILE).read_text()
            ),
            "status": "candidate" if decision.passed else "rejected",
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE_CHECK,
                passed=decision.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=gate_metadata,
            )
        ],
    )


@dg.asset(deps=[candidate_model], group_name="training", pool=WAREHOUSE_POOL, kinds={"duckdb"})
def champion_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The live model: the newest candidate that passed the gate (this step does not run when it failed)."""
    uc = warehouse.use_case()
    with warehouse.connection() as con:
        passed = con.execute(
            "select max(version) from ml.model_versions where model_name = ? and status = 'candidate' and gate_passed",
            [uc.model_name],
        ).fetchone()[0]
        if passed is None:
            raise ValueError(
                f"ml.model_versions: no candidate of {uc.model_name} passed the gate; nothing to "
                "promote (materialise candidate_model first)"
            )
        previous = promote_version(
            con, uc.model_name, passed, f"gate in dagster run {context.run_id}", "gate passed", run_id=context.run_id
        )
        warehouse.publish(con, REGISTRY_TABLES, context.run_id)
    context.log.info(f"v{passed} promoted (previous champion: {previous})")
    return dg.MaterializeResult(
        metadata={"champion_version": passed, "previous_champion_version": previous if previous is not None else "none"}
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


class ChampionChange(dg.Config):
    """Promote a version, or roll back to the previous champion (or to ``version``)."""

    action: Literal["promote", "rollback"]
    version: int | None = None
    force: bool = False  # needed to promote a rejected or tampered version
    reason: str = "requested in Dagster"


@dg.op(pool=WAREHOUSE_POOL)
def change_champion(context: dg.OpExecutionContext, config: ChampionChange, warehouse: WarehouseResource) -> None:
    """The same registry operations as `mlops models promote|rollback`, writing the same history."""
    uc = warehouse.use_case()
    actor = f"dagster run {context.run_id}"
    with warehouse.connection() as con:
        if config.action == "rollback":
            previous, version = rollback(con, uc.model_name, actor, config.reason, config.version, context.run_id)
        else:
            if config.version is None:
                raise ValueError("action 'promote' needs a version")
            version = config.version
            previous = promote_version(con, uc.model_name, version, actor, config.reason, config.force, context.run_id)
        warehouse.publish(con, REGISTRY_TABLES, context.run_id)
    context.log_event(
        dg.AssetMaterialization(
            asset_key="champion_model",
            metadata={
                "champion_version": version,
                "previous_champion_version": previous or "none",
                "action": config.action,
                "reason": config.reason,
            },
        )
    )


@dg.job(description="Promote or roll back a model version by hand (same history as the mlops command).")
def model_promotion_job() -> None:
    change_champion()
