"""Train, register and gate a model version: the plain-Python steps behind the training assets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from dagster_project.dataset import check_feature_model, labelled_rows
from dagster_project.metrics import binary_metrics
from dagster_project.registry import (
    champion_row,
    code_version,
    ensure_registry,
    load_model,
    next_version,
    promote,
    record_gate,
    register,
    reject,
    version_row,
    write_artifacts,
)
from dagster_project.training import GateDecision, judge, train_candidate
from dagster_project.use_case import UseCase


@dataclass(frozen=True)
class Registered:
    version: int
    row: dict
    metrics: dict
    baseline_metrics: dict
    train_rows: int
    validation_rows: int


def train_and_register(
    con: duckdb.DuckDBPyConnection, uc: UseCase, models_dir: Path, run_id: str, actor: str
) -> Registered:
    """Train on the train window, measure on the validation window, store the version as a candidate."""
    check_feature_model(con, uc)
    ensure_registry(con)
    as_of = uc.training_cutoff
    train = labelled_rows(con, uc, uc.train.start, uc.train.end, as_of)
    validation = labelled_rows(con, uc, uc.validation.start, uc.validation.end, as_of)
    candidate = train_candidate(uc, train, validation)
    version = next_version(con, uc.model_name)
    created_at = datetime.now(UTC)
    code = code_version()
    metadata = {
        "model_name": uc.model_name,
        "version": version,
        "use_case": uc.name,
        "created_at": created_at,
        "signature": candidate.signature.to_dict(),
        "threshold": candidate.threshold,
        "threshold_rule": uc.threshold_rule,
        "params": uc.params,
        "num_boost_round": uc.num_boost_round,
        "train_window": [uc.train.start, uc.train.end],
        "validation_window": [uc.validation.start, uc.validation.end],
        "training_cutoff": as_of,
        "train_rows": candidate.train_rows,
        "train_base_rate": candidate.train_base_rate,
        "metrics": candidate.metrics,
        "baseline_metrics": candidate.baseline_metrics,
        "code_version": code,
        "dagster_run_id": run_id,
    }
    folder, sha = write_artifacts(
        models_dir, uc.model_name, version, candidate.booster, metadata, candidate.reference_profile
    )
    row = {
        "model_name": uc.model_name,
        "version": version,
        "status": "candidate",
        "created_at": created_at,
        "train_start": uc.train.start,
        "train_end": uc.train.end,
        "validation_start": uc.validation.start,
        "validation_end": uc.validation.end,
        "params": json.dumps(uc.params | {"num_boost_round": uc.num_boost_round}),
        "metrics": json.dumps(candidate.metrics),
        "baseline_metrics": json.dumps(candidate.baseline_metrics),
        "threshold": candidate.threshold,
        "artifact_path": str(folder),
        "artifact_sha256": sha,
        "code_version": code,
        "dagster_run_id": run_id,
    }
    register(con, row, actor)
    return Registered(
        version, row, candidate.metrics, candidate.baseline_metrics, candidate.train_rows, validation.height
    )


def champion_metrics_on_window(con: duckdb.DuckDBPyConnection, uc: UseCase, champion: dict) -> dict:
    """Score the validation window with the champion, so both models are judged on the same rows."""
    model = load_model(champion)
    rows = labelled_rows(con, uc, uc.validation.start, uc.validation.end, uc.training_cutoff)
    scores = model.booster.predict(model.signature.matrix(rows))
    return binary_metrics(rows.get_column(uc.label).to_numpy(), scores)


def gate_candidate(
    con: duckdb.DuckDBPyConnection, uc: UseCase, version: int, actor: str, run_id: str
) -> tuple[GateDecision, dict | None]:
    """Promote the candidate if it passes the gate, otherwise reject it; the champion stays on failure."""
    row = version_row(con, uc.model_name, version)
    champion = champion_row(con, uc.model_name)
    if champion is not None and champion["version"] == version:
        raise ValueError(f"{uc.model_name} v{version} is already the champion")
    champion_metrics = None if champion is None else champion_metrics_on_window(con, uc, champion)
    decision = judge(uc, json.loads(row["metrics"]), json.loads(row["baseline_metrics"]), champion_metrics)
    record_gate(
        con,
        uc.model_name,
        version,
        decision.passed,
        decision.reasons,
        None if champion is None else champion["version"],
        champion_metrics,
    )
    reason = "; ".join(decision.reasons)
    if decision.passed:
        promote(con, uc.model_name, version, actor, f"gate passed: {reason}", run_id)
    else:
        reject(con, uc.model_name, version, actor, f"gate failed: {reason}", run_id)
    return decision, champion
