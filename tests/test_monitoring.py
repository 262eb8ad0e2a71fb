"""Monitoring: estimated performance, the day's status flags, alerts that open and close, label arrival,
missing features, reruns, the asset checks and the dbt marts, on real DuckDB files and real Dagster runs."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import auc, roc_auc_score

from dagster_project.metrics import estimated_metrics
from tests.conftest import REPLAY, Pipeline

DAY = REPLAY[0] + timedelta(days=2)


# ---- confidence-based estimation ------------------------------------------------------------------------------


def _expected_roc_curve_auc(p: np.ndarray) -> float:
    """NannyML's construction, written independently: sort by score, cumulate p and 1 - p at each distinct
    score, and take the trapezoid area under (FPR, TPR)."""
    levels = np.unique(p)[::-1]
    true_pos = np.array([p[p == level].sum() for level in levels])
    false_pos = np.array([(1 - p[p == level]).sum() for level in levels])
    tpr = np.r_[0, np.cumsum(true_pos)] / p.sum()
    fpr = np.r_[0, np.cumsum(false_pos)] / (1 - p).sum()
    return float(auc(fpr, tpr))


def test_estimated_roc_auc_by_hand_and_against_the_expected_roc_curve():
    # Two rows: positive pairs (0.9 > 0.1) weigh 0.9 * 0.9; the ties count half: (0.81 + 0.045 + 0.045) / 1.
    assert estimated_metrics(np.array([0.9, 0.1]), 0.5)["roc_auc"] == pytest.approx(0.9)
    rng = np.random.default_rng(7)
    p = np.round(rng.beta(2, 5, 3_000), 2)  # rounded: many ties, as isotonic calibration gives
    assert estimated_metrics(p, 0.3)["roc_auc"] == pytest.approx(_expected_roc_curve_auc(p), abs=1e-12)


def test_estimated_precision_and_recall_by_hand():
    p = np.array([0.8, 0.6, 0.3, 0.1])
    estimate = estimated_metrics(p, threshold=0.5)
    assert estimate["precision"] == pytest.approx((0.8 + 0.6) / 2)  # E[TP] / flagged rows
    assert estimate["recall"] == pytest.approx((0.8 + 0.6) / 1.8)  # E[TP] / E[positives]
    assert estimate["base_rate"] == pytest.approx(1.8 / 4)
    assert estimated_metrics(np.array([0.2, 0.3]), threshold=0.5)["precision"] is None  # nothing flagged
    assert estimated_metrics(np.array([]), threshold=0.5)["roc_auc"] is None


def test_on_calibrated_probabilities_the_estimate_matches_realised_auc_on_average():
    rng = np.random.default_rng(11)
    p = rng.beta(2, 6, 1_000)
    realised = [roc_auc_score(rng.random(p.size) < p, p) for _ in range(300)]
    assert estimated_metrics(p, 0.3)["roc_auc"] == pytest.approx(np.mean(realised), abs=0.005)


# ---- one day's performance row ---------------------------------------------------------------------------------


def test_a_single_class_day_has_no_roc_auc_and_says_why(use_case):
    from dagster_project.monitoring import performance_row

    frame = pl.DataFrame({"probability": np.linspace(0.05, 0.6, 300), "label": [0.0] * 300})
    row = performance_row(use_case, frame, threshold=0.3)
    assert row["status"] == "single_class" and row["roc_auc"] is None and "same label" in row["status_reason"]
    assert row["brier"] is not None and row["est_roc_auc"] is not None and row["est_roc_auc_error"] is None


def test_a_small_day_is_computed_and_flagged_insufficient_data(use_case):
    from dagster_project.monitoring import performance_row

    rows = use_case.min_rows // 2
    frame = pl.DataFrame({"probability": np.linspace(0.05, 0.9, rows), "label": [0.0, 1.0] * (rows // 2)})
    row = performance_row(use_case, frame, threshold=0.3)
    assert row["status"] == "insufficient_data" and row["insufficient_data"]
    assert row["roc_auc"] is not None and row["est_roc_auc_error"] == pytest.approx(row["est_roc_auc"] - row["roc_auc"])


def test_a_day_without_labels_has_the_estimate_only(use_case):
    from dagster_project.monitoring import performance_row

    frame = pl.DataFrame(
        {"probability": np.linspace(0.05, 0.9, 200), "label": [None] * 200}, schema_overrides={"label": pl.Float64}
    )
    row = performance_row(use_case, frame, threshold=0.3)
    assert row["status"] == "awaiting_labels" and row["n_labelled"] == 0
    assert not row["insufficient_data"]  # 200 scored rows: enough for the estimate, which is all there is
    assert row["roc_auc"] is None and row["precision"] is None and 0.5 < row["est_roc_auc"] < 1


# ---- alerts: episodes of firing checks ------------------------------------------------------------------------


def test_alerts_open_on_the_first_firing_day_and_close_on_the_first_clear_one(tmp_path: Path):
    from dagster_project.monitoring import ALERTS_TABLE, CHECKS_TABLE, ensure_monitoring_tables, rebuild_alerts

    con = duckdb.connect(str(tmp_path / "alerts.duckdb"))
    ensure_monitoring_tables(con)
    firing = {"roc_auc": [True, True, False, None, True, True], "drifted_share": [False, True, True, True, True, False]}
    for subject, days in firing.items():
        kind = "performance" if subject == "roc_auc" else "dataset_drift"
        for offset, fires in enumerate(days):
            if fires is None:  # not evaluated that day (no labels yet): does not close the episode
                continue
            con.execute(
                f"insert into {CHECKS_TABLE} values (?, 'm', 1, ?, ?, 'error', ?, ?, 0.6, 'msg', ?)",
                [date(2013, 7, 1 + offset), kind, subject, fires, 0.5 + offset / 100, datetime(2013, 7, 2 + offset)],
            )
    rebuild_alerts(con, "m")
    alerts = con.execute(
        f"select subject, state, opened_on, last_firing_on, closed_on, days_firing, opened_value, value "
        f"from {ALERTS_TABLE} order by subject, opened_on"
    ).fetchall()
    assert alerts == [
        ("drifted_share", "closed", date(2013, 7, 2), date(2013, 7, 5), date(2013, 7, 6), 4, 0.51, 0.54),
        ("roc_auc", "closed", date(2013, 7, 1), date(2013, 7, 2), date(2013, 7, 3), 2, 0.50, 0.51),
        ("roc_auc", "open", date(2013, 7, 5), date(2013, 7, 6), None, 2, 0.54, 0.55),
    ]
    rebuild_alerts(con, "m")  # a rebuild is idempotent
    assert con.execute(f"select count(*) from {ALERTS_TABLE}").fetchone() == (3,)
    # Closing only after two clear evaluations in a row: roc_auc's single clear day no longer splits it, and
    # neither episode has had two clear evaluations since its last firing one.
    rebuild_alerts(con, "m", close_after=2)
    alerts = con.execute(
        f"select subject, state, opened_on, last_firing_on, closed_on, days_firing from {ALERTS_TABLE} order by subject"
    ).fetchall()
    assert alerts == [
        ("drifted_share", "open", date(2013, 7, 2), date(2013, 7, 5), None, 4),
        ("roc_auc", "open", date(2013, 7, 1), date(2013, 7, 6), None, 4),
    ]


# ---- the pipeline's monitoring: real Dagster runs on a copy of the session warehouse -----------------------------


@pytest.fixture(scope="module")
def monitored(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the session warehouse and published file, with the Dagster resource pointing at it."""
    from dagster_project.defs.resources import WarehouseResource

    root = tmp_path_factory.mktemp("monitoring")
    shutil.copy(pipeline.settings.warehouse_path, root / "warehouse.duckdb")
    shutil.copy(pipeline.settings.published_path, root / "published.duckdb")
    return WarehouseResource(
        warehouse_path=str(root / "warehouse.duckdb"),
        published_path=str(root / "published.duckdb"),
        models_dir=str(pipeline.settings.models_dir),
        use_case_path=str(pipeline.settings.use_case_path),
        source_dir=str(pipeline.settings.source_dir),
    )


def _monitor(warehouse, instance: dg.DagsterInstance, first: date, last: date, labels_as_of: str | None = None):
    from dagster_project.defs.monitoring import daily_monitoring

    return dg.materialize(
        [daily_monitoring],
        resources={"warehouse": warehouse},
        instance=instance,
        tags={"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)},
        run_config={"ops": {"daily_monitoring": {"config": {"labels_as_of": labels_as_of}}}},
    )


def _query(path: str, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_the_replay_fills_every_monitoring_table_and_the_app_marts(pipeline: Pipeline, published_db: Path):
    days = (REPLAY[1] - REPLAY[0]).days + 1
    counts = dict(
        _query(
            str(published_db),
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'monitoring'",
        )
    )
    for table in ("performance_daily", "dataset_drift_daily", "daily_summary"):
        assert _query(
            str(published_db), f"select count(distinct partition_date), count(*) from monitoring.{table}"
        ) == [(days, days)], table
    assert {
        "performance_segments_daily",
        "feature_drift_daily",
        "checks_daily",
        "alerts",
        "drift_heatmap",
        "alert_list",
    } <= set(counts)
    # The marts are the tables reshaped, not recomputed: the heatmap has a cell per drift row.
    assert _query(str(published_db), "select count(*) from monitoring.drift_heatmap") == _query(
        str(published_db), "select count(*) from monitoring.feature_drift_daily"
    )
    segments = _query(
        str(published_db),
        "select segment_column, count(distinct segment_value), sum(n_scored) "
        "from monitoring.performance_segments_daily "
        "group by 1 order by 1",
    )
    scored = _query(
        str(published_db),
        "select count(*) from predictions.flight_delay where flight_date between ? and ?",
        list(REPLAY),
    )[0][0]
    assert [(c, n > 1, total) for c, n, total in segments] == [("carrier", True, scored), ("origin", True, scored)]
    summary = _query(
        str(published_db),
        "select count(*) filter (status = 'ok'), count(est_roc_auc), count(est_roc_auc_error), "
        "max(abs(est_roc_auc_error)) from monitoring.daily_summary",
    )[0]
    assert summary[:3] == (days, days, days) and summary[3] < 0.15


def test_monitoring_runs_carry_warn_and_error_asset_checks(pipeline: Pipeline):
    evaluations = {e.check_name: e for e in pipeline.stage("monitor").get_asset_check_evaluations()}
    assert {name: e.severity for name, e in evaluations.items()} == {
        "realised_performance_within_tolerance": dg.AssetCheckSeverity.ERROR,
        "all_model_features_present": dg.AssetCheckSeverity.ERROR,
        "estimated_performance_within_tolerance": dg.AssetCheckSeverity.WARN,
        "drift_within_thresholds": dg.AssetCheckSeverity.WARN,
    }
    assert evaluations["all_model_features_present"].passed


def test_labels_landing_rerun_monitoring_of_the_days_that_lacked_them(monitored, pipeline: Pipeline):
    from dagster_project.defs.jobs import monitor_on_labels_sensor

    instance = dg.DagsterInstance.ephemeral()
    # The evening DAY is monitored its outcomes have not landed: only the estimate exists.
    assert _monitor(monitored, instance, DAY, DAY, labels_as_of=f"{DAY} 20:00:00").success
    before = _query(
        monitored.published_path,
        "select status, n_labelled, roc_auc, est_roc_auc from monitoring.performance_daily where partition_date = ?",
        [DAY],
    )
    assert before[0][:3] == ("awaiting_labels", 0, None) and before[0][3] > 0.5

    # Labels land: the label model is materialised again (here: the event the dbt asset would record).
    label_key = dg.AssetKey(["features", "flight_labels"])
    instance.report_runless_asset_event(dg.AssetMaterialization(label_key))
    context = dg.build_sensor_context(instance=instance, resources={"warehouse": monitored})
    request = monitor_on_labels_sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert (
        request.tags["dagster/asset_partition_range_start"]
        == request.tags["dagster/asset_partition_range_end"]
        == str(DAY)
    )

    from dagster_project.defs.monitoring import daily_monitoring

    assert dg.materialize(
        [daily_monitoring], resources={"warehouse": monitored}, instance=instance, tags=request.tags
    ).success
    after = _query(
        monitored.published_path,
        "select status, n_labelled = n_scored, roc_auc, est_roc_auc, est_roc_auc_error "
        "from monitoring.performance_daily where partition_date = ?",
        [DAY],
    )[0]
    assert after[:2] == ("ok", True) and after[3] == pytest.approx(before[0][3])
    assert after[4] == pytest.approx(after[3] - after[2])
    # The same materialisation is not acted on twice.
    again = dg.build_sensor_context(instance=instance, resources={"warehouse": monitored}, cursor=context.cursor)
    assert isinstance(monitor_on_labels_sensor(again), dg.SkipReason)


def test_rerunning_a_day_replaces_its_rows(monitored):
    instance = dg.DagsterInstance.ephemeral()
    tables = (
        "performance_daily",
        "performance_segments_daily",
        "feature_drift_daily",
        "dataset_drift_daily",
        "checks_daily",
    )

    def counts() -> list[int]:
        return [
            _query(monitored.warehouse_path, f"select count(*) from monitoring.{t} where partition_date = ?", [DAY])[0][
                0
            ]
            for t in tables
        ]

    first = counts()
    assert _monitor(monitored, instance, DAY, DAY).success
    assert counts() == first and all(first)
    duplicates = _query(
        monitored.warehouse_path,
        "select count(*) from (select partition_date, feature, kind from monitoring.feature_drift_daily "
        "group by all having count(*) > 1)",
    )
    assert duplicates == [(0,)]


def test_a_missing_feature_opens_an_error_alert_naming_it_without_crashing(monitored, use_case):
    from dagster_project.monitoring import monitor_day

    con = duckdb.connect(monitored.warehouse_path)
    try:
        con.execute(
            "create or replace table features.flight_features as select * exclude (origin_wind_gust) "
            "from features.flight_features"
        )
        result = monitor_day(con, use_case, DAY)
        assert result.missing_features == ("origin_wind_gust",)
        assert ("error", "missing_feature", "origin_wind_gust") in result.firing
        alert = con.execute(
            "select severity, state, message from monitoring.alerts where kind = 'missing_feature'"
        ).fetchall()
        assert len(alert) == 1 and alert[0][:2] == ("error", "open") and "origin_wind_gust" in alert[0][2]
        drift = {
            f
            for (f,) in con.execute(
                "select feature from monitoring.feature_drift_daily where partition_date = ?", [DAY]
            ).fetchall()
        }
        assert "origin_wind_gust" not in drift and "origin_temp" in drift  # the others are still monitored
        assert con.execute(
            "select missing_features from monitoring.dataset_drift_daily where partition_date = ?", [DAY]
        ).fetchone() == ("origin_wind_gust",)
    finally:
        con.close()


def test_the_dbt_hook_creates_the_monitoring_tables_exactly_as_python_does(pipeline: Pipeline, tmp_path: Path):
    from dagster_project.monitoring import ensure_monitoring_tables

    layout = (
        "select table_name, column_name, data_type, is_nullable from duckdb_columns() "
        "where schema_name = 'monitoring' and table_name in (select table_name from duckdb_tables() "
        "where schema_name = 'monitoring' and not contains(table_name, '__')) order by all"
    )
    keys = (
        "select table_name, constraint_type, constraint_column_names from duckdb_constraints() "
        "where schema_name = 'monitoring' and not contains(table_name, '__') order by all"
    )
    with duckdb.connect(str(tmp_path / "fresh.duckdb")) as fresh:
        ensure_monitoring_tables(fresh)
        python = fresh.execute(layout).fetchall(), fresh.execute(keys).fetchall()
    # dbt ran before the first monitoring in the session: its on-run-start hook created the tables.
    with duckdb.connect(str(pipeline.settings.warehouse_path), read_only=True) as con:
        created_by_dbt = con.execute(layout).fetchall(), con.execute(keys).fetchall()
        # Python found them as it wanted them: nothing was set aside as an older layout.
        assert con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'monitoring' and contains(table_name, '__')"
        ).fetchone() == (0,)
    assert created_by_dbt == python and len({t for t, *_ in python[0]}) == 6


def test_a_monitoring_table_of_an_older_layout_is_set_aside_and_recreated(tmp_path: Path):
    from dagster_project.monitoring import ensure_monitoring_tables

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("create schema monitoring")
    con.execute("create table monitoring.alerts (alert_id varchar primary key, partition_date date, severity varchar)")
    con.execute("insert into monitoring.alerts values ('a1', '2013-07-01', 'warn')")
    con.execute("create view monitoring.alert_list as select alert_id, severity from monitoring.alerts")
    ensure_monitoring_tables(con)
    ensure_monitoring_tables(con)  # the second call finds every table as it wants it
    tables = {
        t for (t,) in con.execute("select table_name from duckdb_tables() where schema_name = 'monitoring'").fetchall()
    }
    backups = [t for t in tables if t.startswith("alerts__before_")]
    assert len(tables) == 7 and len(backups) == 1  # six tables and the old rows, kept
    assert con.execute(f"select alert_id from monitoring.{backups[0]}").fetchall() == [("a1",)]
    assert "state" in {
        c for (c,) in con.execute("select column_name from duckdb_columns() where table_name = 'alerts'").fetchall()
    }
    assert con.execute("select count(*) from monitoring.alert_list").fetchone() == (0,)  # the view binds to the new one
