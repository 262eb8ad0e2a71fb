"""Extraction refuses bad sources with a message naming table, column and rows, and writes nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.conftest import write_sources

FLIGHT_COLUMNS = [
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "air_time",
    "distance",
    "hour",
    "minute",
    "time_hour",
]


@pytest.fixture
def loaded(tmp_path: Path):
    """A warehouse holding a good load of small sources, and the resource that points at it."""
    from dagster_project.defs.ingest import RAW_ASSETS
    from dagster_project.defs.resources import WarehouseResource

    sources = write_sources(tmp_path / "sources", date(2013, 1, 31), max_flights=400)
    warehouse = WarehouseResource(
        warehouse_path=str(tmp_path / "warehouse.duckdb"),
        published_path=str(tmp_path / "published.duckdb"),
        models_dir=str(tmp_path / "models"),
        use_case_path=str(tmp_path / "unused.yml"),
        source_dir=str(sources),
    )
    result = dg.materialize(RAW_ASSETS, resources={"warehouse": warehouse}, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return warehouse, sources, RAW_ASSETS


def _fingerprint(path: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_schema = 'raw' order by 1"
            ).fetchall()
        ]
        return [(t, *con.execute(f"select count(*), bit_xor(hash(t)) from {t} t").fetchone()) for t in tables]


def _corrupt(csv: Path, line: int, column: str, value: str) -> None:
    lines = csv.read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[FLIGHT_COLUMNS.index(column)] = value
    lines[line - 1] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("carrier", "NA", "check not_nullable"),  # a null key
        ("distance", "-5", "check greater_than(0)"),  # a negative distance
        ("dep_delay", "abc", "wrong type"),  # a wrong type
    ],
)
def test_a_corrupted_source_fails_and_leaves_the_warehouse_unchanged(loaded, column, value, expected):
    warehouse, sources, raw_assets = loaded
    before = _fingerprint(warehouse.warehouse_path)
    _corrupt(sources / "flights.csv", 7, column, value)

    flights = next(a for a in raw_assets if a.key == dg.AssetKey(["raw", "flights"]))
    with pytest.raises(Exception) as failure:
        dg.materialize([flights], resources={"warehouse": warehouse}, instance=dg.DagsterInstance.ephemeral())

    message = str(failure.value)
    assert "raw.flights" in message
    assert f"column '{column}'" in message
    assert expected in message
    assert "line 7" in message or "'line': 7" in message
    assert _fingerprint(warehouse.warehouse_path) == before
