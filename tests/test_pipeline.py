"""The whole asset graph materialised for real (DuckDB file, dbt, Dagster) over a short window."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.conftest import AS_OF, REPLAY, Pipeline


def _query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_every_stage_succeeded_and_every_dbt_check_passed(pipeline: Pipeline):
    assert list(pipeline.results) == [
        "extract",
        "raw_profile",
        "dbt",
        "feature_profile",
        "train 2013-04-01",
        "score 2013-04-01",
        "monitor 2013-04-01",
    ]
    assert all(result.success for result in pipeline.results.values())
    evaluations = pipeline.results["dbt"].get_asset_check_evaluations()
    assert len(evaluations) >= 20, "dbt tests should surface as Dagster asset checks"
    failed_errors = [e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert failed_errors == []
    # The two documented mess checks (unknown destinations and tail numbers) warn rather than pass.
    warned = {e.check_name for e in evaluations if not e.passed}
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in evaluations if e.check_name in warned)


def test_python_asset_checks_ran_and_passed(pipeline: Pipeline):
    checks = {
        e.check_name: e.passed
        for stage in ("train", "score")
        for e in pipeline.stage(stage).get_asset_check_evaluations()
    }
    assert checks == {
        "passes_gate": True,
        "champion_artifact_is_intact": True,
        "predictions_cover_each_scored_day_once": True,
    }


def test_raw_tables_carry_load_metadata_and_availability(pipeline: Pipeline):
    warehouse = pipeline.settings.warehouse_path
    loads = _query(warehouse, "select table_name, rows from raw._loads order by table_name")
    assert [t for t, _ in loads] == [
        "raw.airlines",
        "raw.airports",
        "raw.flights",
        "raw.planes",
        "raw.weather",
    ]
    assert (
        _query(
            warehouse,
            "select count(*) from raw.flights where outcome_available_at "
            "<> make_date(year, month, day)::timestamp + interval 1 day",
        )[0][0]
        == 0
    )
    flights = dict(loads)["raw.flights"]
    assert flights == _query(warehouse, "select count(*) from features.flight_features")[0][0]


def test_every_raw_and_feature_table_is_profiled(pipeline: Pipeline, published_db: Path):
    rows = _query(
        published_db,
        "select table_name, count(*), min(row_count), max(null_share) "
        "from analysis.table_profiles group by 1 order by 1",
    )
    tables = {t for t, *_ in rows}
    assert {
        "raw.flights",
        "raw.weather",
        "raw.planes",
        "raw.airports",
        "raw.airlines",
        "features.flight_features",
        "features.flight_labels",
    } <= tables
    # Cancelled flights have no departure time: the profile must see nulls there.
    dep_time = _query(
        published_db,
        "select null_share, distinct_count, min_value, max_value from "
        "analysis.table_profiles where table_name = 'raw.flights' and "
        "column_name = 'dep_time'",
    )[0]
    expected = _query(
        pipeline.settings.warehouse_path,
        "select avg((dep_time is null)::int), count(distinct dep_time), min(dep_time)::varchar, "
        "max(dep_time)::varchar from raw.flights",
    )[0]
    assert dep_time[0] > 0
    assert dep_time[0] == pytest.approx(expected[0])
    assert dep_time[1:] == expected[1:]


def test_registry_holds_a_verified_first_version_better_than_both_baselines(pipeline: Pipeline, published_db: Path):
    ((metrics, baselines, sha, path, gate_passed, code, manifest, as_of, test_end, n_trials),) = _query(
        published_db,
        "select metrics, baseline_metrics, artifact_sha256, artifact_path, gate_passed, code_version, "
        "dbt_manifest_sha256, as_of, test_end, n_trials from ml.model_versions where version = 1",
    )
    assert gate_passed and as_of == AS_OF and test_end < AS_OF
    metrics, baselines = json.loads(metrics), json.loads(baselines)
    assert set(baselines) == {"baseline_route", "baseline_rate"}
    assert baselines["baseline_rate"]["roc_auc"] == 0.5
    assert metrics["roc_auc"] > max(b["roc_auc"] for b in baselines.values()) + 0.02
    assert {"pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1", "threshold"} <= set(metrics)
    # what daily monitoring compares with: the mean of the test window's daily ROC-AUCs
    assert 0.5 < metrics["daily_roc_auc"] < 1
    folder = Path(path)
    assert hashlib.sha256((folder / "model.txt").read_bytes()).hexdigest() == sha
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["model_sha256"] == sha
    assert (
        metadata["files_sha256"]["calibration.json"]
        == hashlib.sha256((folder / "calibration.json").read_bytes()).hexdigest()
    )
    assert json.loads((folder / "calibration.json").read_text())["x"], "isotonic knots are stored as JSON"
    profile = json.loads((folder / "reference_profile.json").read_text())
    assert "route_late_rate_28d" in profile and "__prediction__" in profile
    card = (folder / "model_card.md").read_text()
    assert "## Gate decision: passed" in card and sha in card
    assert code and len(manifest) == 64 and n_trials == 3
    assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.pickle"))
    events = _query(published_db, "select event from ml.model_history where version = 1 order by event_at limit 2")
    assert [e for (e,) in events] == ["registered", "promoted"]
    trials = _query(published_db, "select count(*), count(value) from ml.tuning_trials where version = 1")
    assert trials[0][0] == 3 and trials[0][1] >= 1
    segments = _query(published_db, "select distinct segment_column from ml.model_segment_metrics where version = 1")
    assert {s for (s,) in segments} == {"carrier", "origin", "month"}


def test_every_flight_of_each_replayed_day_is_scored_once(pipeline: Pipeline, published_db: Path):
    scored = _query(
        published_db,
        "select flight_date, count(*), count(distinct flight_id), "
        "count(distinct run_id), min(model_version) from predictions.flight_delay "
        "where flight_date between ? and ? group by 1 order by 1",
        list(REPLAY),
    )
    expected = _query(
        pipeline.settings.warehouse_path,
        "select flight_date, count(*) from features.flight_features where flight_date between ? "
        "and ? group by 1 order by 1",
        list(REPLAY),
    )
    assert [(d, n) for d, n, *_ in scored] == expected
    assert all(n == distinct and runs == 1 and version == 1 for _, n, distinct, runs, version in scored)
    # The backfill of five days was one run (other tests rescore single days with runs of their own).
    runs = _query(
        published_db,
        "select count(distinct run_id) from predictions.flight_delay where flight_date between ? and ? and run_id = ?",
        [*REPLAY, pipeline.stage("score").run_id],
    )
    assert runs == [(1,)]
    newest = _query(published_db, "select max(flight_date) from predictions.flight_delay")[0][0]
    latest = _query(published_db, "select min(flight_date), max(flight_date) from predictions.flight_delay_latest")
    assert latest == [(newest, newest)]


def test_monitoring_has_performance_and_drift_for_each_day(pipeline: Pipeline, published_db: Path):
    performance = _query(
        published_db,
        "select partition_date, n_scored, n_labelled, roc_auc, status "
        "from monitoring.performance_daily where partition_date between ? and ? "
        "order by 1",
        list(REPLAY),
    )
    assert [p[0] for p in performance] == [REPLAY[0].replace(day=d) for d in range(1, 6)]
    assert all(
        n_scored == n_labelled and status == "ok" and 0.5 < auc < 1
        for _, n_scored, n_labelled, auc, status in performance
    )
    drift = _query(
        published_db,
        "select feature, count(*), min(psi) from monitoring.feature_drift_daily "
        "where partition_date between ? and ? and kind in ('numeric', 'categorical', 'prediction') "
        "group by 1 order by 1",
        list(REPLAY),
    )
    features = {f for f, *_ in drift}
    assert "__prediction__" in features and "carrier" in features and "origin_temp" in features
    assert "day_of_week" not in features  # excluded in the YAML: constant within a day
    distances = _query(
        published_db,
        "select kind, count(*), count(js_distance), count(wasserstein_normed), "
        "max(null_share), count(*) filter (drifted = coalesce(value >= threshold, false)), "
        "count(distinct method) from monitoring.feature_drift_daily "
        "where partition_date between ? and ? group by 1 order by 1",
        list(REPLAY),
    )
    by_kind = {kind: rest for kind, *rest in distances}
    assert by_kind["numeric"][0] == by_kind["numeric"][1] == by_kind["numeric"][2] > 0
    assert by_kind["categorical"][0] == by_kind["categorical"][1] > 0 and by_kind["categorical"][2] == 0
    assert by_kind["prediction"][0] == 5 and by_kind["prediction"][2] == 5
    # Null shares of every monitored feature, unseen shares of the categorical ones, as features of their own.
    assert by_kind["null_share"][0] == by_kind["numeric"][0] + by_kind["categorical"][0]
    assert by_kind["unseen_share"][0] == by_kind["categorical"][0]
    # `drifted` is the YAML's rule: the method's value against its threshold, one method per kind.
    assert all(rest[0] == rest[4] and rest[5] == 1 for rest in by_kind.values())
    reference = _query(
        pipeline.settings.warehouse_path,
        "select count(distinct feature) from ml.reference_profile "
        "where model_name = 'flight_delay_lgbm' and version = 1",
    )
    assert reference == [(len(features) + 1,)]  # every input, day_of_week included, and the score
    assert all(n == 5 and low >= 0 for _, n, low in drift)
