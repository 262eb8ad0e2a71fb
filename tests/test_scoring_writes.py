"""How scoring writes a day: no primary key (an older table is migrated), each entity once per day whatever
reruns happen, a day whose features hold an entity twice is refused, and `mlops score` backfills from the
command line with one progress line per day."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from dagster_project.registry import load_champion
from dagster_project.scoring import (
    DuplicateKeysError,
    drop_primary_key,
    ensure_predictions_table,
    predictions_columns,
    score_day,
)
from dagster_project.settings import PROJECT_ROOT
from dagster_project.use_case import load_use_case
from tests.conftest import REPLAY, Pipeline
from tests.test_model_lifecycle import Copy, _copy

DAY = REPLAY[0]


@pytest.fixture
def copy(pipeline: Pipeline, tmp_path: Path) -> Copy:
    return _copy(pipeline, tmp_path)


def _day_counts(copy: Copy, day: date) -> tuple[int, int, int]:
    """Rows, distinct entities and run ids of the day's predictions."""
    return copy.query(
        "select count(*), count(distinct flight_id), count(distinct run_id) from predictions.flight_delay "
        "where flight_date = ?",
        [day],
    )[0]


def test_rescoring_a_day_again_and_again_keeps_one_row_per_entity(pipeline: Pipeline, copy: Copy):
    uc = load_use_case(pipeline.settings.use_case_path)
    features = copy.query("select count(*) from features.flight_features where flight_date = ?", [DAY])[0][0]
    with duckdb.connect(copy.warehouse.warehouse_path) as con:
        model = load_champion(con, uc.model_name)
        memory_limit = con.execute("select current_setting('memory_limit')").fetchone()
        runs = [score_day(con, uc, model, DAY, f"rerun-{i}") for i in range(3)]
        # Scoring caps DuckDB's memory while it writes and gives the connection its own setting back.
        assert con.execute("select current_setting('memory_limit')").fetchone() == memory_limit
    assert {run.rows for run in runs} == {features}
    assert _day_counts(copy, DAY) == (features, features, 1)
    assert copy.query("select distinct run_id from predictions.flight_delay where flight_date = ?", [DAY]) == [
        ("rerun-2",)
    ]


def test_a_day_whose_features_hold_an_entity_twice_is_refused_and_keeps_its_predictions(pipeline: Pipeline, copy: Copy):
    uc = load_use_case(pipeline.settings.use_case_path)
    before = _day_counts(copy, DAY)
    # The feature table's unique test would fail in dbt; here the row is added behind dbt's back.
    copy.execute(
        "insert into features.flight_features select * from features.flight_features where flight_date = ? "
        "order by flight_id limit 1",
        [DAY],
    )
    with duckdb.connect(copy.warehouse.warehouse_path) as con:
        model = load_champion(con, uc.model_name)
        with pytest.raises(DuplicateKeysError, match="has an entity twice"):
            score_day(con, uc, model, DAY, "duplicated")
    assert _day_counts(copy, DAY) == before


def test_a_predictions_table_with_the_old_primary_key_is_rebuilt_without_it(pipeline: Pipeline, tmp_path: Path):
    uc = load_use_case(pipeline.settings.use_case_path)
    body = ", ".join(f"{name} {kind}" for name, kind in predictions_columns(uc).items())
    with duckdb.connect(str(tmp_path / "old.duckdb")) as con:
        con.execute("create schema predictions")
        con.execute(f"create table {uc.predictions_table} ({body}, primary key (flight_date, flight_id))")
        con.execute(
            f"insert into {uc.predictions_table} (flight_date, flight_id, model_name, model_version, scored_at, "
            "run_id, probability, decision, threshold) values "
            "('2013-04-01', 'a', 'm', 1, now(), 'r', 0.2, false, 0.5), "
            "('2013-04-02', 'b', 'm', 1, now(), 'r', 0.7, true, 0.5)"
        )
        layout = (
            "select column_name, data_type, is_nullable from duckdb_columns() "
            "where schema_name = 'predictions' and table_name = 'flight_delay' order by column_index"
        )
        before = (
            con.execute(layout).fetchall(),
            con.execute(f"select * from {uc.predictions_table} order by 1").fetchall(),
        )

        ensure_predictions_table(con, uc)

        after = (
            con.execute(layout).fetchall(),
            con.execute(f"select * from {uc.predictions_table} order by 1").fetchall(),
        )
        assert after == before
        kinds = con.execute(
            "select distinct constraint_type from duckdb_constraints() where schema_name = 'predictions'"
        ).fetchall()
        assert kinds == [("NOT NULL",)]
        assert con.execute(f"select flight_id from {uc.predictions_table}_latest").fetchall() == [("b",)]
        assert not drop_primary_key(con, uc.predictions_table)  # idempotent: nothing left to drop
        ensure_predictions_table(con, uc)
        assert con.execute(f"select * from {uc.predictions_table} order by 1").fetchall() == before[1]
        assert not con.execute("select * from duckdb_tables() where table_name like '%without_key%'").fetchall()


def test_mlops_score_backfills_a_range_day_by_day_with_progress_on_the_console(pipeline: Pipeline, copy: Copy):
    first, last = REPLAY[0] + timedelta(days=1), REPLAY[0] + timedelta(days=2)
    expected = dict(
        copy.query(
            "select flight_date, count(*) from features.flight_features where flight_date between ? and ? group by 1",
            [first, last],
        )
    )
    mlops = Path(sys.executable).parent / "mlops"
    done = subprocess.run(
        [str(mlops), "score", "--start", first.isoformat(), "--end", last.isoformat()],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ
        | {"MLOPS_WAREHOUSE": copy.warehouse.warehouse_path, "MLOPS_PUBLISHED": copy.warehouse.published_path},
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    progress = [line for line in lines if " days, " in line]
    assert [line.split(":")[0] for line in progress] == [first.isoformat(), last.isoformat()]
    for n, (line, day) in enumerate(zip(progress, (first, last), strict=True), start=1):
        assert f"{expected[day]:,} rows;" in line and f"{n}/2 days" in line and "rows/s" in line and "ETA" in line
    written = copy.query(
        "select flight_date, count(*), count(distinct flight_id), min(run_id), max(run_id) "
        "from predictions.flight_delay where flight_date between ? and ? group by 1 order by 1",
        [first, last],
    )
    assert [(day, n) for day, n, *_ in written] == sorted(expected.items())
    assert all(n == distinct and low == high and low.startswith("cli:") for _, n, distinct, low, high in written)
    with duckdb.connect(copy.warehouse.published_path, read_only=True) as published:
        assert published.execute(
            "select count(*) from predictions.flight_delay where flight_date between ? and ? and run_id like 'cli:%'",
            [first, last],
        ).fetchone()[0] == sum(expected.values())


def test_mlops_score_refuses_an_end_before_the_start(pipeline: Pipeline):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "score", "--start", "2013-04-03", "--end", "2013-04-01"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "before --start" in done.stderr
