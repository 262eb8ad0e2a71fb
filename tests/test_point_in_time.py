"""No leakage: a feature of day D never depends on an outcome that was unknown when D was scored, and no
training or validation row depends on an outcome of the test window.

The batch for D runs the evening of D-1, before D-1's outcomes land, so outcomes of D-1, D and later days
are rewritten here and the real dbt project rebuilt: every feature of D must stay exactly as it was, and so
must every row of a training run whose test window starts on D-1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb

from dagster_project.dataset import labelled_rows
from dagster_project.ingest import extract
from dagster_project.settings import PROJECT_ROOT
from dagster_project.use_case import load_use_case
from tests.conftest import write_sources

DAY = date(2013, 2, 10)


def _dbt_run(warehouse: Path, target: Path) -> None:
    dbt = Path(sys.executable).parent / "dbt"
    env = os.environ | {"MLOPS_WAREHOUSE": str(warehouse)}
    subprocess.run(
        [
            str(dbt),
            "run",
            "--project-dir",
            str(PROJECT_ROOT / "dbt"),
            "--profiles-dir",
            str(PROJECT_ROOT / "dbt"),
            "--target-path",
            str(target),
            "--log-path",
            str(target / "logs"),
            "--quiet",
        ],
        env=env,
        check=True,
    )


def _rows(warehouse: Path, table: str, day: date) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"select * from {table} where flight_date = ? order by flight_id", [day]).fetchall()


def _window_rows(warehouse: Path, uc, windows) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            name: labelled_rows(con, uc, w.start, w.end, windows.as_of)
            for name, w in (("train", windows.train), ("validation", windows.validation), ("test", windows.test))
        }


def test_outcomes_of_the_eve_and_later_do_not_change_features_of_the_day(tmp_path: Path):
    warehouse = tmp_path / "warehouse.duckdb"
    sources = write_sources(tmp_path / "sources", DAY + timedelta(days=5))
    with duckdb.connect(str(warehouse)) as con:
        for name in ("flights", "weather", "planes", "airports", "airlines"):
            extract(con, sources, name, "point-in-time-test")
    _dbt_run(warehouse, tmp_path / "target")
    features_before = _rows(warehouse, "features.flight_features", DAY)
    later_before = _rows(warehouse, "features.flight_features", DAY + timedelta(days=2))
    labels_before = _rows(warehouse, "features.flight_labels", DAY)
    assert len(features_before) > 500
    # A training run whose test window starts on the eve of DAY: the rewrite below touches only that window.
    uc = load_use_case(Path(os.environ["MLOPS_USE_CASE"]))
    windows = uc.windows(DAY - timedelta(days=1) + timedelta(days=uc.test_days + uc.label_lag_days - 1))
    assert windows.test.start == DAY - timedelta(days=1)
    before = _window_rows(warehouse, uc, windows)
    dates = {name: frame.get_column(uc.partition_column) for name, frame in before.items()}
    assert dates["train"].max() < dates["validation"].min() <= dates["validation"].max() < dates["test"].min()

    with duckdb.connect(str(warehouse)) as con:
        # Every flight from the eve on becomes late; every third is cancelled instead.
        changed = con.execute(
            "update raw.flights set arr_delay = 300, dep_delay = 300, "
            "dep_time = case when flight % 3 = 0 then null else dep_time end "
            "where make_date(year, month, day) >= ?",
            [DAY - timedelta(days=1)],
        ).fetchone()[0]
    assert changed > 3000
    _dbt_run(warehouse, tmp_path / "target")

    assert _rows(warehouse, "features.flight_features", DAY) == features_before
    after = _window_rows(warehouse, uc, windows)
    for name in ("train", "validation"):
        assert after[name].equals(before[name]), f"a {name} row changed when only test-window outcomes did"
    # The rewrite was real: the day's labels and the features two days later did change.
    assert _rows(warehouse, "features.flight_labels", DAY) != labels_before
    assert _rows(warehouse, "features.flight_features", DAY + timedelta(days=2)) != later_before
