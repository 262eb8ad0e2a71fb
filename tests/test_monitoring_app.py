"""The manager's monitoring page, run for real by Streamlit's AppTest against the published DuckDB file."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP = PROJECT_ROOT / "monitoring_app" / "streamlit_app.py"


def _query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _run_app(monkeypatch: pytest.MonkeyPatch, published: Path) -> AppTest:
    monkeypatch.setenv("MLOPS_PUBLISHED", str(published))
    return AppTest.from_file(str(APP), default_timeout=60).run()


def _shown_model(at: AppTest, published: Path) -> str:
    """The model the page shows: the sidebar choice when there are several, else the only one."""
    if at.sidebar.selectbox:
        return at.sidebar.selectbox[0].value
    names = _query(published, "select distinct model_name from ml.model_versions")
    assert len(names) == 1
    return names[0][0]


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The app's query module, imported from the project root (the app folder is not an installed package)."""
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    return importlib.import_module("monitoring_app.queries")


def test_page_shows_the_live_model_from_the_file(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)
    champion = _query(
        published_db,
        "select version, json_extract_string(metrics, '$.roc_auc')::double from ml.model_versions "
        "where model_name = ? and status = 'champion'",
        [model],
    )
    metrics = {m.label: m.value for m in at.metric}
    if champion:
        version, roc_auc = champion[0]
        assert metrics["Live version"] == f"v{version}"
        assert metrics["ROC-AUC on its test days"] == f"{roc_auc:.3f}"
        assert any(f"Version {version}" in md.value for md in at.markdown)
    else:
        assert "Live version" not in metrics
        assert any("no model is live" in info.value for info in at.info)


def test_page_shows_performance_charts_drift_table_and_freshness(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)
    (measured_days,) = _query(
        published_db,
        "select count(*) from monitoring.performance_daily where model_name = ? and status = 'ok'",
        [model],
    )[0]
    assert measured_days > 0, "the published file has no day with measured performance"
    # ROC-AUC per day and predicted vs actual rate per day.
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2
    assert all('"partition_date"' in chart.proto.spec for chart in charts)

    features = {
        row[0]
        for row in _query(
            published_db,
            "select distinct feature from monitoring.feature_drift_daily where model_name = ?",
            [model],
        )
    }
    assert features, "the published file has no drift rows"
    drift_tables = [df.value for df in at.dataframe if "Feature" in df.value.columns]
    assert len(drift_tables) == 1
    assert len(drift_tables[0]) == len(features)
    assert "Last 14 days" in drift_tables[0].columns
    assert any(m.label.startswith("Features shifted on") for m in at.metric)

    # The page finds the predictions table itself; so does the test, from the catalog.
    table, day_column = _query(
        published_db,
        "select c.table_name, c.column_name from information_schema.columns as c "
        "inner join information_schema.tables as t using (table_schema, table_name) "
        "where c.table_schema = 'predictions' and t.table_type = 'BASE TABLE' and c.data_type = 'DATE' "
        "order by c.ordinal_position limit 1",
    )[0]
    (latest_day,) = _query(
        published_db, f'select max("{day_column}") from predictions."{table}" where model_name = ?', [model]
    )[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Latest scored day"] == latest_day.strftime("%d %b %Y")


def test_missing_published_file_shows_a_warning(monkeypatch, tmp_path):
    at = _run_app(monkeypatch, tmp_path / "not_published_yet.duckdb")

    assert not at.exception
    assert len(at.warning) == 1
    assert "make demo" in at.warning[0].value


def test_predictions_table_and_its_date_column_are_discovered(queries, published_db):
    with queries.open_published(published_db) as con:
        tables = queries.predictions_tables(con)
    expected = _query(
        published_db,
        "select table_name from information_schema.tables "
        "where table_schema = 'predictions' and table_type = 'BASE TABLE'",
    )
    assert [t.name for t in tables] == sorted(row[0] for row in expected)
    for table in tables:
        first_date = _query(
            published_db,
            "select column_name from information_schema.columns where table_schema = 'predictions' "
            "and table_name = ? and data_type = 'DATE' order by ordinal_position limit 1",
            [table.name],
        )
        assert table.date_column == first_date[0][0]


def test_drift_table_is_mean_daily_psi_worst_first(queries, published_db):
    model = queries.model_names(published_db)[0]
    page = queries.load_model_page(published_db, model)

    table = queries.drift_by_period(page.drift, recent_days=14)

    periods = [c for c in table.columns if c not in ("feature", "threshold")]
    worst = table[periods].max(axis=1)
    assert worst.is_monotonic_decreasing
    feature = table["feature"].iloc[0]
    month = periods[0]
    (expected,) = _query(
        published_db,
        "select avg(psi) from monitoring.feature_drift_daily where model_name = ? and feature = ? "
        "and strftime(partition_date, '%b %Y') = ?",
        [model, feature, month],
    )[0]
    assert table[month].iloc[0] == pytest.approx(expected)
