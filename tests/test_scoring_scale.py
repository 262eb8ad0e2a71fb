"""Scoring at scale on copies of the session warehouse: streaming in batches, reason codes, input validation
and quarantine, a champion that does not match the feature table, a process killed mid-partition, and the
analysts' dbt mart."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest

from dagster_project.dataset import partition_rows
from dagster_project.registry import load_champion
from dagster_project.scoring import ensure_predictions_table, score_day
from dagster_project.settings import PROJECT_ROOT
from dagster_project.use_case import load_use_case
from tests.conftest import REPLAY, Pipeline, write_use_case
from tests.test_model_lifecycle import Copy, _copy

DAY = REPLAY[0]


def _fingerprint(path: str, day: date) -> tuple:
    """Count, distinct keys, run ids and a checksum of the day's predictions."""
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(
            "select count(*), count(distinct flight_id), list(distinct run_id order by run_id), "
            "sum(hash(flight_id, probability, model_version, reason_1_feature)) "
            "from predictions.flight_delay where flight_date = ?",
            [day],
        ).fetchone()


def _materialize(copy: Copy, day: date, check: bool = False) -> dg.ExecuteInProcessResult:
    from dagster_project.defs.scoring import daily_predictions, predictions_cover_each_scored_day_once

    return dg.materialize(
        [daily_predictions, *([predictions_cover_each_scored_day_once] if check else [])],
        resources={"warehouse": copy.warehouse},
        partition_key=day.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    error = result.get_step_failure_events()[0].step_failure_data.error
    return error.message + "".join(cause.message for cause in [error.cause] if cause)


@pytest.fixture
def copy(pipeline: Pipeline, tmp_path: Path) -> Copy:
    return _copy(pipeline, tmp_path)


def test_a_day_scored_in_small_batches_equals_one_batch(pipeline: Pipeline, copy: Copy):
    uc = load_use_case(pipeline.settings.use_case_path)
    results = {}
    with duckdb.connect(copy.warehouse.warehouse_path) as con:
        model = load_champion(con, uc.model_name)
        for batch_rows in (100, 1_000_000):
            scored = score_day(con, dataclasses.replace(uc, batch_rows=batch_rows), model, DAY, f"b{batch_rows}")
            results[batch_rows] = (
                scored,
                con.execute(
                    "select flight_id, probability, decision, reason_1_feature, reason_1_contribution "
                    "from predictions.flight_delay where flight_date = ? order by flight_id",
                    [DAY],
                ).fetchall(),
            )
    (small, small_rows), (one, one_rows) = results[100], results[1_000_000]
    assert small.rows == one.rows == len(one_rows) > 100
    assert small.batches == -(-one.rows // 100) and one.batches == 1
    assert small_rows == one_rows  # bit-identical probabilities and reason codes


def test_reason_codes_are_lightgbm_contributions_ranked_by_magnitude(pipeline: Pipeline):
    uc = load_use_case(pipeline.settings.use_case_path)
    assert uc.reason_codes == 3
    with duckdb.connect(str(pipeline.settings.warehouse_path), read_only=True) as con:
        model = load_champion(con, uc.model_name)
        stored = con.execute(
            "select flight_id, probability, reason_1_feature, reason_1_contribution, reason_2_feature, "
            "reason_2_contribution, reason_3_feature, reason_3_contribution from predictions.flight_delay "
            "where flight_date = ? order by flight_id limit 5",
            [DAY],
        ).fetchall()
        frame = partition_rows(con, uc, DAY, DAY, model.signature.features)
    keys = [row[0] for row in stored]
    frame = frame.filter(frame["flight_id"].is_in(keys)).sort("flight_id")
    matrix = model.signature.matrix(frame)
    contributions = model.scorer.booster.predict(matrix, pred_contrib=True)
    raw = model.scorer.booster.predict(matrix, raw_score=True)
    np.testing.assert_allclose(contributions.sum(axis=1), raw, rtol=0, atol=1e-9)  # features + bias = raw score
    names = model.signature.features
    for row, contribution in zip(stored, contributions[:, :-1], strict=True):
        expected = sorted(zip(names, contribution, strict=True), key=lambda fc: -abs(fc[1]))[:3]
        assert [row[2], row[4], row[6]] == [name for name, _ in expected]
        np.testing.assert_allclose([row[3], row[5], row[7]], [value for _, value in expected], atol=1e-12)
        assert abs(row[3]) >= abs(row[5]) >= abs(row[7])


def test_reason_codes_switched_off_leave_the_columns_null(pipeline: Pipeline, copy: Copy):
    uc = dataclasses.replace(load_use_case(pipeline.settings.use_case_path), reason_codes=0)
    with duckdb.connect(copy.warehouse.warehouse_path) as con:
        scored = score_day(con, uc, load_champion(con, uc.model_name), DAY, "no-reasons")
        nulls = con.execute(
            "select count(*) filter (where reason_1_feature is null and reason_3_contribution is null), count(*) "
            "from predictions.flight_delay where flight_date = ?",
            [DAY],
        ).fetchone()
    assert nulls == (scored.rows, scored.rows)


def test_invalid_rows_are_quarantined_and_the_others_scored(copy: Copy):
    keys = [
        k
        for (k,) in copy.query(
            "select flight_id from features.flight_features where flight_date = ? order by flight_id limit 2", [DAY]
        )
    ]
    total = copy.query("select count(*) from features.flight_features where flight_date = ?", [DAY])[0][0]
    copy.execute("update features.flight_features set distance = -100 where flight_id = ?", [keys[0]])
    copy.execute("update features.flight_features set origin_pressure = 1e6 where flight_id = ?", [keys[1]])

    result = _materialize(copy, DAY, check=True)

    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())  # scored + quarantined = the day
    quarantined = copy.query(
        "select flight_id, column_name, failed_check, value, partition_rejected, run_id "
        "from quarantine.flight_delay where flight_date = ? order by flight_id",
        [DAY],
    )
    assert [(k, c) for k, c, *_ in quarantined] == [(keys[0], "distance"), (keys[1], "origin_pressure")]
    assert all(check.startswith("in_range") and not rejected for _, _, check, _, rejected, _ in quarantined)
    assert {run for *_, run in quarantined} == {result.run_id}
    count, distinct, runs, _ = _fingerprint(copy.warehouse.warehouse_path, DAY)
    assert count == distinct == total - 2 and runs == [result.run_id]
    assert not copy.query("select 1 from predictions.flight_delay where flight_id in (?, ?)", keys)
    metadata = result.asset_materializations_for_node("daily_predictions")[0].metadata
    assert metadata["quarantined_rows"].value == 2


def test_too_many_invalid_rows_fail_the_day_and_keep_its_predictions(copy: Copy):
    before = _fingerprint(copy.warehouse.warehouse_path, DAY)
    total = copy.query("select count(*) from features.flight_features where flight_date = ?", [DAY])[0][0]
    bad = int(total * 0.02) + 1  # the limit is 1%
    copy.execute(
        "update features.flight_features set distance = -1 where flight_id in "
        "(select flight_id from features.flight_features where flight_date = ? order by flight_id limit ?)",
        [DAY, bad],
    )

    result = _materialize(copy, DAY)

    assert not result.success
    text = _failure_text(result)
    assert "features.flight_features" in text and "column 'distance'" in text
    assert f"of {total} rows" in text and "max_invalid_share = 1.00%" in text
    assert _fingerprint(copy.warehouse.warehouse_path, DAY) == before
    evidence = copy.query(
        "select count(*), bool_and(partition_rejected) from quarantine.flight_delay where flight_date = ?",
        [DAY],
    )[0]
    assert evidence[0] > 0 and evidence[1]


def test_a_champion_whose_features_are_missing_fails_before_scoring_naming_the_column(copy: Copy):
    before = _fingerprint(copy.warehouse.warehouse_path, DAY)
    copy.execute("alter table features.flight_features rename column origin_visib to origin_visibility")

    result = _materialize(copy, DAY)

    assert not result.success
    text = _failure_text(result)
    assert "['origin_visib']" in text and "missing" in text and "features.flight_features" in text
    assert _fingerprint(copy.warehouse.warehouse_path, DAY) == before


def test_a_process_killed_mid_partition_leaves_the_previous_predictions(pipeline: Pipeline, copy: Copy):
    use_case = write_use_case(copy.root / "use_case.yml", scoring={"batch_rows": 10})
    before = _fingerprint(copy.warehouse.warehouse_path, DAY)
    assert before[0] > 100
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.scoring_worker", copy.warehouse.warehouse_path, str(use_case), str(DAY)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)},
    )
    try:
        # The day's rows were deleted before the first batch; kill after a few batches were inserted.
        written = [worker.stdout.readline() for _ in range(5)]
        assert all(line.startswith("written") for line in written), (written, worker.stderr.read())
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()

    assert _fingerprint(copy.warehouse.warehouse_path, DAY) == before
    with duckdb.connect(copy.warehouse.warehouse_path) as con:  # opens read-write: the file is fine
        assert con.execute("select count(*) from ml.model_versions").fetchone()[0] >= 1


def test_the_dbt_hook_creates_the_predictions_table_exactly_as_python_does(pipeline: Pipeline, tmp_path: Path):
    # dbt ran before the first scoring in the session: its on-run-start hook created the table Python uses.
    uc = load_use_case(pipeline.settings.use_case_path)
    layout = (
        "select column_name, data_type, is_nullable from duckdb_columns() "
        "where schema_name = 'predictions' and table_name = 'flight_delay' order by column_index"
    )
    keys = (
        "select constraint_type, constraint_column_names from duckdb_constraints() "
        "where schema_name = 'predictions' and table_name = 'flight_delay' order by all"
    )
    with duckdb.connect(str(tmp_path / "fresh.duckdb")) as fresh:
        ensure_predictions_table(fresh, uc)
        python = fresh.execute(layout).fetchall(), fresh.execute(keys).fetchall()
    with duckdb.connect(str(pipeline.settings.warehouse_path), read_only=True) as con:
        created_by_dbt = con.execute(layout).fetchall(), con.execute(keys).fetchall()
    assert created_by_dbt == python
    assert {kind for kind, _ in python[1]} == {"NOT NULL"}  # no primary key: see scoring.py


def test_the_flight_predictions_mart_joins_outcomes_only_where_labelled(pipeline: Pipeline, copy: Copy):
    columns = [
        name
        for (name,) in copy.query(
            "select column_name from duckdb_columns() where schema_name = 'marts' and table_name = 'flight_predictions'"
        )
    ]
    for expected in (
        "flight_date",
        "flight_id",
        "carrier",
        "origin",
        "dest",
        "sched_dep_time",
        "probability",
        "decision",
        "model_version",
        "reason_1_feature",
        "reason_1_contribution",
        "is_labelled",
        "outcome",
        "is_late",
    ):
        assert expected in columns
    unlabelled = copy.query("select flight_id from predictions.flight_delay where flight_date = ? limit 3", [DAY])
    copy.execute("delete from features.flight_labels where flight_id in (?, ?, ?)", [k for (k,) in unlabelled])

    rows = copy.query(
        "select count(*), count(*) filter (where m.is_labelled), count(*) filter (where m.outcome is null), "
        "count(*) filter (where m.is_labelled and (l.flight_id is null or m.is_late <> l.is_late)), "
        "(select count(*) from predictions.flight_delay) "
        "from marts.flight_predictions m left join features.flight_labels l using (flight_id)"
    )[0]
    count, labelled, without_outcome, mismatched, predictions = rows
    assert count == predictions > 0
    assert without_outcome == count - labelled >= 3 and mismatched == 0
    with duckdb.connect(str(pipeline.settings.published_path), read_only=True) as published:
        kind, published_rows = published.execute(
            "select table_type, (select count(*) from marts.flight_predictions) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'flight_predictions'"
        ).fetchone()
    assert kind == "BASE TABLE" and published_rows > 0
