"""Train, register, gate, promote and roll back model versions: the plain-Python steps behind the training
assets, the promotion job and the `mlops models` command line."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from dagster_project.dataset import check_feature_model, labelled_rows, labelled_rows_sql
from dagster_project.drift_sql import export_reference, store_prediction_reference, store_reference
from dagster_project.model_card import model_card
from dagster_project.registry import (
    CARD_FILE,
    ModelIntegrityError,
    RegistryError,
    champion_row,
    code_version,
    ensure_registry,
    insert_segment_metrics,
    load_model,
    next_version,
    previous_champion,
    promote,
    record_gate,
    register,
    reject,
    verify_files,
    version_row,
    write_artifacts,
)
from dagster_project.training import Candidate, GateDecision, evaluate, judge, segment_metrics, train_candidate
from dagster_project.use_case import UseCase, Windows
from dagster_project.warehouse import columns_of


@dataclass(frozen=True)
class Registered:
    version: int
    row: dict
    candidate: Candidate
    windows: Windows


def file_sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def window_rows(con: duckdb.DuckDBPyConnection, uc: UseCase, windows: Windows) -> dict[str, pl.DataFrame]:
    """Labelled rows of each window, with only the labels that had landed by the training date."""
    return {
        name: labelled_rows(con, uc, w.start, w.end, windows.as_of)
        for name, w in (("train", windows.train), ("validation", windows.validation), ("test", windows.test))
    }


def train_and_register(
    con: duckdb.DuckDBPyConnection,
    uc: UseCase,
    models_dir: Path,
    run_id: str,
    actor: str,
    as_of: date | None = None,
    manifest_sha256: str | None = None,
) -> Registered:
    """Tune, train and evaluate on the windows of ``as_of``; store the version as a candidate."""
    check_feature_model(con, uc)
    ensure_registry(con)
    windows = uc.windows(as_of)
    frames = window_rows(con, uc, windows)
    candidate = train_candidate(
        uc, frames["train"], frames["validation"], frames["test"], dict(columns_of(con, uc.feature_model))
    )
    version = next_version(con, uc.model_name)
    created_at = datetime.now(UTC)
    tuning = {
        "n_trials": len(candidate.tuning.trials),
        "seconds": candidate.tuning.seconds,
        "best_value": candidate.tuning.best_value,
        "best_iteration": candidate.tuning.best_iteration,
        "best_params": candidate.tuning.best_params,
    }
    row = {
        "model_name": uc.model_name,
        "version": version,
        "status": "candidate",
        "created_at": created_at,
        "as_of": windows.as_of,
        "train_start": windows.train.start,
        "train_end": windows.train.end,
        "validation_start": windows.validation.start,
        "validation_end": windows.validation.end,
        "test_start": windows.test.start,
        "test_end": windows.test.end,
        "params": json.dumps(uc.params),
        "best_params": json.dumps(candidate.tuning.best_params | {"num_boost_round": tuning["best_iteration"]}),
        "n_trials": tuning["n_trials"],
        "tuning_seconds": tuning["seconds"],
        "calibration": uc.calibration,
        "metrics": json.dumps(candidate.metrics),
        "validation_metrics": json.dumps(candidate.validation_metrics),
        "baseline_metrics": json.dumps(candidate.baseline_metrics),
        "threshold": candidate.threshold,
        "code_version": code_version(),
        "dbt_manifest_sha256": manifest_sha256,
        "dagster_run_id": run_id,
    }
    metadata = row | {
        "use_case": uc.name,
        "rows": candidate.rows,
        "train_base_rate": candidate.train_base_rate,
        "tuning": tuning,
        "reliability": candidate.reliability,
        "threshold_rule": uc.threshold_rule,
    }

    def card(sha: str) -> str:
        return model_card(
            uc,
            version,
            windows,
            row | {"n_train": candidate.rows["train"], "artifact_sha256": sha},
            candidate.metrics,
            candidate.validation_metrics,
            candidate.baseline_metrics,
            candidate.segment_metrics,
            candidate.reliability,
            tuning,
        )

    profile = store_reference_profile(con, uc, windows, version, candidate)
    folder, sha = write_artifacts(models_dir, uc.model_name, version, candidate.scorer, metadata, profile, card)
    row |= {"artifact_path": str(folder), "artifact_sha256": sha}
    register(con, row, candidate.tuning.trials, candidate.segment_metrics, actor)
    return Registered(version, row, candidate, windows)


def store_reference_profile(
    con: duckdb.DuckDBPyConnection, uc: UseCase, windows: Windows, version: int, candidate: Candidate
) -> dict:
    """Profile the training rows and the validation scores into the warehouse (drift is always computed
    against the data the scoring model learned from); return the same profile for the version's folder."""
    training_rows = labelled_rows_sql(uc, windows.train.start, windows.train.end, windows.as_of)
    store_reference(
        con, training_rows, uc.numeric_features, uc.categorical_features, uc.model_name, version, bins=uc.psi_bins
    )
    con.register("_validation_scores", pa.table({"score": candidate.validation_scores}))
    try:
        store_prediction_reference(
            con, "select score from _validation_scores", "score", uc.model_name, version, bins=uc.psi_bins
        )
    finally:
        con.unregister("_validation_scores")
    return export_reference(con, uc.model_name, version)


def schema_problems(con: duckdb.DuckDBPyConnection, uc: UseCase, model_signature, frame: pl.DataFrame) -> list[str]:
    """Where the model's input schema differs from what the scoring asset will feed it."""
    current = dict(columns_of(con, uc.feature_model))
    problems = []
    for feature in model_signature.features:
        trained = model_signature.dtypes.get(feature)
        if feature not in current:
            problems.append(f"{feature} is missing from {uc.feature_model}")
        elif trained and current[feature] != trained:
            problems.append(f"{feature} is {current[feature]} in {uc.feature_model}, the model learned {trained}")
    for column, levels in model_signature.categorical_levels.items():
        if not levels:
            problems.append(f"{column} has no categorical levels")
            continue
        values = frame.get_column(column).drop_nulls().cast(pl.String)
        unseen = float((~values.is_in(levels)).mean() or 0.0) if values.len() else 0.0
        if unseen > uc.max_unseen_level_share:
            problems.append(
                f"{column}: {unseen:.1%} of test rows have levels the model never saw "
                f"(limit {uc.max_unseen_level_share:.0%})"
            )
    return problems


def _segments(con: duckdb.DuckDBPyConnection, model_name: str, version: int, scorer: str) -> list[dict]:
    cursor = con.execute(
        "select * from ml.model_segment_metrics where model_name = ? and version = ? and scorer = ?",
        [model_name, version, scorer],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


@dataclass(frozen=True)
class Judged:
    decision: GateDecision
    champion_version: int | None
    champion_metrics: dict | None


def gate_candidate(con: duckdb.DuckDBPyConnection, uc: UseCase, version: int, actor: str, run_id: str) -> Judged:
    """Judge a candidate against the baselines and the champion scored on the same test rows; record the
    decision, and reject the candidate if it fails (the champion stays). Promotion is a separate step."""
    row = version_row(con, uc.model_name, version)
    candidate = load_model(row)
    windows = uc.windows(row["as_of"])
    test = labelled_rows(con, uc, windows.test.start, windows.test.end, windows.as_of)
    y = test.get_column(uc.label).to_numpy()
    champion = champion_row(con, uc.model_name)
    champion_metrics, champion_segments = None, None
    if champion is not None and champion["version"] != version:
        held = load_model(champion)
        scores = held.scorer.predict(test)
        champion_metrics = evaluate(uc, y, scores, held.threshold)
        champion_segments = segment_metrics(uc, test, y, {"champion": scores}, {"champion": held.threshold})
        insert_segment_metrics(con, uc.model_name, version, champion_segments)
    decision = judge(
        uc,
        json.loads(row["metrics"]),
        json.loads(row["baseline_metrics"]),
        champion_metrics,
        _segments(con, uc.model_name, version, "candidate"),
        champion_segments,
        schema_problems(con, uc, candidate.signature, test),
    )
    record_gate(
        con,
        uc.model_name,
        version,
        decision.passed,
        decision.reasons,
        None if champion is None else champion["version"],
        champion_metrics,
    )
    if not decision.passed:
        reject(con, uc.model_name, version, actor, "gate failed: " + "; ".join(decision.reasons), run_id)
    _append_decision(row, decision)
    return Judged(decision, None if champion is None else champion["version"], champion_metrics)


def _append_decision(row: dict, decision: GateDecision) -> None:
    card = Path(row["artifact_path"]) / CARD_FILE
    if card.exists():
        text = card.read_text().split("\n## Gate decision")[0].rstrip("\n")
        verdict = "passed" if decision.passed else "failed"
        card.write_text(
            f"{text}\n\n## Gate decision: {verdict}\n\n" + "\n".join(f"- {r}" for r in decision.reasons) + "\n"
        )


DANGER = {
    "rejected": "it failed the validation gate ({reasons}); scoring with it may be worse than the baseline or "
    "the current champion",
    "tampered": "its files do not match the SHA-256 recorded at registration ({reasons}); the scoring asset "
    "will refuse it until the files are restored",
}


def promote_version(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    version: int,
    actor: str,
    reason: str,
    force: bool = False,
    run_id: str | None = None,
) -> int | None:
    """Promote any version by hand. A rejected or tampered version needs ``force``: the error says why."""
    row = version_row(con, model_name, version)
    if row["status"] == "champion":
        raise RegistryError(f"{model_name} v{version} is already the champion")
    dangers = []
    if row["status"] == "rejected":
        dangers.append(DANGER["rejected"].format(reasons=row["gate_reasons"]))
    try:
        verify_files(row)
    except ModelIntegrityError as error:
        dangers.append(DANGER["tampered"].format(reasons=error))
    if dangers and not force:
        raise RegistryError(
            f"refusing to promote {model_name} v{version}: "
            + " and ".join(dangers)
            + ". Pass --force (force=True) to promote it anyway."
        )
    note = reason + (f" (forced: {' and '.join(dangers)})" if dangers else "")
    return promote(con, model_name, version, actor, note, run_id)


def rollback(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    actor: str,
    reason: str,
    to_version: int | None = None,
    run_id: str | None = None,
) -> tuple[int | None, int]:
    """Put the previous champion (or ``to_version``) back; the current one is recorded as rolled back."""
    target = to_version if to_version is not None else previous_champion(con, model_name)
    if target is None:
        raise RegistryError(f"{model_name}: there is no earlier champion to roll back to")
    row = version_row(con, model_name, target)
    verify_files(row)  # a rollback target must be usable now, not at the next scoring run
    return promote(con, model_name, target, actor, f"rollback: {reason}", run_id, event="rollback"), target
