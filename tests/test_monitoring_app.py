"""The manager's monitoring page, run for real by Streamlit's AppTest against the published DuckDB file, and its
queries, each figure checked against SQL computed independently on the published monitoring tables."""

from __future__ import annotations

import importlib
import shutil
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP = PROJECT_ROOT / "monitoring_app" / "streamlit_app.py"
ESTIMATED = "Estimated (before outcomes)"


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


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The one dataframe on the page that has ``column``."""
    tables = [df.value for df in at.dataframe if column in df.value.columns]
    assert len(tables) == 1, f"{len(tables)} tables with a column {column!r}"
    return tables[0]


def _chart_rows(at: AppTest, field: str) -> list[dict]:
    """The data rows of every chart on the page that carry ``field`` (Streamlit ships them as Arrow)."""
    rows = []
    for chart in at.get("vega_lite_chart"):
        for dataset in chart.proto.datasets:
            frame = pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()
            if field in frame.columns:
                rows += frame.to_dict("records")
    return rows


def _nan(value: float | None) -> float:
    """SQL's null as pandas' missing number (a segment whose days all lacked a ROC-AUC)."""
    return float("nan") if value is None else value


def _day(value: date) -> str:
    return value.strftime("%d %b %Y")


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The app's query module, imported from the project root (the app folder is not an installed package)."""
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    return importlib.import_module("monitoring_app.queries")


@pytest.fixture
def model(published_db: Path) -> str:
    (name,) = _query(
        published_db, "select model_name from ml.model_versions order by status = 'champion' desc limit 1"
    )[0]
    return name


@pytest.fixture
def published_copy(published_db: Path, tmp_path: Path) -> Path:
    """A writable copy of the session's published file, for cases the replay does not produce."""
    copy = tmp_path / "published.duckdb"
    shutil.copyfile(published_db, copy)
    return copy


# --- the page, rendered by AppTest ---


def test_headline_shows_champion_latest_day_open_alerts_and_recent_auc(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)
    metrics = _metrics(at)
    (version,) = _query(
        published_db, "select version from ml.model_versions where model_name = ? and status = 'champion'", [model]
    )[0]
    assert metrics["Live version"] == f"v{version}"
    (latest,) = _query(
        published_db, "select max(partition_date) from monitoring.daily_summary where model_name = ?", [model]
    )[0]
    assert metrics["Latest monitored day"] == _day(latest)
    errors, warnings = _query(
        published_db,
        "select count(*) filter (where severity = 'error'), count(*) filter (where severity = 'warn') "
        "from monitoring.alert_list where model_name = ? and state = 'open'",
        [model],
    )[0]
    assert metrics["Open alerts"] == f"{errors} error · {warnings} warn"
    realised, estimated = _query(
        published_db,
        "select avg(roc_auc) filter (where status = 'ok'), avg(est_roc_auc) from monitoring.daily_summary "
        "where model_name = ? and partition_date > ?::date - 7",
        [model, latest],
    )[0]
    assert realised is not None and estimated is not None, "the replay should give a week of ROC-AUC figures"
    assert metrics["Realised ROC-AUC, last 7 days"] == f"{realised:.3f}"
    assert metrics["Estimated ROC-AUC, last 7 days"] == f"{estimated:.3f}"


def test_performance_shows_realised_and_estimated_auc_and_the_estimate_error(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)
    mae, n_days, n_estimates = _query(
        published_db,
        "select avg(abs(est_roc_auc_error)) filter (where status = 'ok'), count(*), count(est_roc_auc) "
        "from monitoring.daily_summary where model_name = ?",
        [model],
    )[0]
    assert mae is not None
    metrics = _metrics(at)
    assert metrics["Estimate's mean absolute error"] == f"{mae:.3f}"
    assert metrics["Days flagged"].endswith(f"of {n_days}")
    # ROC-AUC (realised and estimated), predicted vs actual rate, estimate error, drift heatmap, drifted share.
    assert len(at.get("vega_lite_chart")) == 5
    estimates = [row for row in _chart_rows(at, "series") if row["series"] == ESTIMATED]
    assert len(estimates) == n_estimates
    (first_version,) = _query(
        published_db,
        "select min_by(model_version, partition_date) from monitoring.daily_summary where model_name = ?",
        [model],
    )[0]
    assert any(row.get("label") == f"v{first_version} live" for row in _chart_rows(at, "label"))


def test_flagged_days_and_version_changes_are_marked_not_dropped(monkeypatch, published_copy):
    # The replay labels every day; make the last day await its labels, one day thin, and a new version score
    # the last two days, as in production.
    with duckdb.connect(str(published_copy)) as con:
        days = [d for (d,) in con.execute("select partition_date from monitoring.daily_summary order by 1").fetchall()]
        con.execute(
            "update monitoring.daily_summary set status = 'awaiting_labels', insufficient_data = true, "
            "n_labelled = 0, roc_auc = null, est_roc_auc_error = null, base_rate = null where partition_date = ?",
            [days[-1]],
        )
        con.execute(
            "update monitoring.daily_summary set status = 'insufficient_data', insufficient_data = true "
            "where partition_date = ?",
            [days[1]],
        )
        con.execute(
            "update monitoring.daily_summary set model_version = model_version + 1 where partition_date >= ?",
            [days[-2]],
        )
        (new_version,) = con.execute(
            "select model_version from monitoring.daily_summary where partition_date = ?", [days[-1]]
        ).fetchone()

    at = _run_app(monkeypatch, published_copy)

    assert not at.exception
    assert _metrics(at)["Days flagged"] == f"2 of {len(days)}"
    # The day awaiting labels keeps its estimate on the chart, and a band marks each flagged day.
    estimated_days = {row["partition_date"].date() for row in _chart_rows(at, "series") if row["series"] == ESTIMATED}
    assert days[-1] in estimated_days
    flags = {row["partition_date"].date(): row["flag"] for row in _chart_rows(at, "flag")}
    assert flags == {days[1]: "too few rows to trust", days[-1]: "awaiting labels (estimate only)"}
    assert any(row.get("label") == f"v{new_version} live" for row in _chart_rows(at, "label"))
    captions = " ".join(c.value for c in at.caption)
    assert f"awaiting labels (estimate only) ({_day(days[-1])})" in captions


def test_alert_list_shows_open_alerts_first(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)
    expected = _query(
        published_db,
        "select state, severity, subject, opened_on, closed_on, duration_days, value, threshold, message "
        "from monitoring.alert_list where model_name = ?",
        [model],
    )
    assert expected, "the replay should open at least one alert"
    table = _table(at, "Severity")
    assert list(table.columns) == [
        "State",
        "Severity",
        "Kind",
        "Subject",
        "Opened on",
        "Closed on",
        "Days open",
        "Value",
        "Threshold",
        "Message",
    ]
    assert len(table) == len(expected)
    states = table["State"].tolist()
    assert states == sorted(states, key=lambda state: state != "Open")
    assert states.count("Open") == sum(row[0] == "open" for row in expected)
    assert sorted(table["Message"]) == sorted(row[8] for row in expected)
    closed = [row for row in expected if row[0] == "closed"]
    for _, _, subject, opened_on, closed_on, duration, *_ in closed:
        shown = table[(table["Subject"] == subject) & (table["Opened on"] == _day(opened_on))].iloc[0]
        assert shown["Closed on"] == _day(closed_on)
        assert shown["Days open"] == duration


def test_segment_table_for_the_chosen_period(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)
    sql = (
        "select segment_column, segment_value, count(*), sum(n_scored), avg(roc_auc), avg(est_roc_auc), "
        "bool_or(insufficient_data) from monitoring.performance_segments_daily where model_name = ? "
        "and partition_date >= ? group by all"
    )
    (latest,) = _query(
        published_db,
        "select max(partition_date) from monitoring.performance_segments_daily where model_name = ?",
        [model],
    )[0]
    for period, first_day in (("Latest monitored day", latest), ("All monitored days", date(1970, 1, 1))):
        at.selectbox(key="segment_period").select(period).run()
        assert not at.exception
        table = _table(at, "Realised ROC-AUC").set_index(["Segment", "Value"])
        expected = _query(published_db, sql, [model, first_day])
        assert len(table) == len(expected)
        for column, value, days, n_scored, roc_auc, est_roc_auc, insufficient in expected:
            row = table.loc[(column, value)]
            assert (row["Days"], row["Rows scored"], bool(row["Insufficient data"])) == (days, n_scored, insufficient)
            assert row["Realised ROC-AUC"] == pytest.approx(_nan(roc_auc), nan_ok=True)
            assert row["Estimated ROC-AUC"] == pytest.approx(est_roc_auc)


def test_drift_heatmap_kinds_are_filterable(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)

    def cells(kinds: tuple[str, ...]) -> int:
        return _query(
            published_db,
            "select count(*) from monitoring.drift_heatmap where model_name = ? and list_contains(?, kind)",
            [model, list(kinds)],
        )[0][0]

    shown = _chart_rows(at, "value_over_threshold")
    assert len(shown) == cells(("numeric", "categorical", "prediction"))
    assert any(row["label"] == "model score" for row in shown)

    at.multiselect(key="drift_kinds").set_value(["null_share", "unseen_share"]).run()
    assert not at.exception
    shown = _chart_rows(at, "value_over_threshold")
    assert len(shown) == cells(("null_share", "unseen_share"))
    assert all(row["label"].endswith(("· missing values", "· unseen levels")) for row in shown)

    (drifted_features, n_drifted, n_features) = _query(
        published_db,
        "select arg_max(drifted_features, partition_date), arg_max(n_drifted, partition_date), "
        "arg_max(n_features, partition_date) from monitoring.daily_summary where model_name = ?",
        [model],
    )[0]
    assert any(
        m.label.startswith("Features drifted on") and m.value == f"{n_drifted} of {n_features}" for m in at.metric
    )
    if drifted_features:
        assert any(c.value == f"Drifted on the latest day: {drifted_features}." for c in at.caption)


def test_page_keeps_the_live_model_versions_and_freshness(monkeypatch, published_db):
    at = _run_app(monkeypatch, published_db)

    assert not at.exception
    model = _shown_model(at, published_db)
    version, roc_auc = _query(
        published_db,
        "select version, json_extract_string(metrics, '$.roc_auc')::double from ml.model_versions "
        "where model_name = ? and status = 'champion'",
        [model],
    )[0]
    metrics = _metrics(at)
    assert metrics["ROC-AUC on its test days"] == f"{roc_auc:.3f}"
    assert any(f"Version {version}" in md.value for md in at.markdown)
    (n_versions,) = _query(published_db, "select count(*) from ml.model_versions where model_name = ?", [model])[0]
    assert len(_table(at, "Promotion check")) == n_versions
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
    assert metrics["Latest scored day"] == _day(latest_day)


def test_missing_published_file_shows_a_warning(monkeypatch, tmp_path):
    at = _run_app(monkeypatch, tmp_path / "not_published_yet.duckdb")

    assert not at.exception
    assert len(at.warning) == 1
    assert "make demo" in at.warning[0].value


def test_published_file_without_any_table_shows_a_warning(monkeypatch, tmp_path):
    empty = tmp_path / "published.duckdb"
    duckdb.connect(str(empty)).close()

    at = _run_app(monkeypatch, empty)

    assert not at.exception
    assert len(at.warning) == 1
    assert "no registered model" in at.warning[0].value


def test_published_file_without_monitoring_tables_still_shows_the_registry(monkeypatch, published_copy, queries):
    with duckdb.connect(str(published_copy)) as con:
        con.execute("drop schema monitoring cascade")

    at = _run_app(monkeypatch, published_copy)

    assert not at.exception
    (warning,) = at.warning
    for table in queries.MONITORING_TABLES:
        assert table in warning.value
    not_published = [info.value for info in at.info if "is not in the published file yet" in info.value]
    assert len(not_published) == 4
    metrics = _metrics(at)
    assert metrics["Live version"].startswith("v")
    assert metrics["Latest monitored day"] == "—"
    assert metrics["Open alerts"] == "0 error · 0 warn"
    assert not at.get("vega_lite_chart")


# --- the queries, against SQL on the published file ---


def test_estimate_error_is_the_mean_absolute_error_on_trusted_days(queries, published_db, model):
    page = queries.load_model_page(published_db, model)

    error, days = queries.estimate_error(page.summary)

    expected, expected_days = _query(
        published_db,
        "select avg(abs(est_roc_auc_error)), count(est_roc_auc_error) from monitoring.daily_summary "
        "where model_name = ? and status = 'ok'",
        [model],
    )[0]
    assert days == expected_days > 0
    assert error == pytest.approx(expected)


def test_headline_counts_open_alerts_and_averages_the_last_days(queries, published_db, model):
    page = queries.load_model_page(published_db, model)

    head = queries.headline(page.summary, page.alerts, recent_days=3)

    latest, realised, n_realised, estimated = _query(
        published_db,
        "with s as (select * from monitoring.daily_summary where model_name = $1), "
        "w as (select * from s where partition_date > (select max(partition_date) from s) - 3) "
        "select (select max(partition_date) from s), avg(roc_auc) filter (where status = 'ok'), "
        "count(roc_auc) filter (where status = 'ok'), avg(est_roc_auc) from w",
        [model],
    )[0]
    assert head.latest_day.date() == latest
    assert head.window_start.date() == latest - timedelta(days=2)
    assert head.realised_roc_auc == pytest.approx(realised)
    assert head.realised_days == n_realised
    assert head.estimated_roc_auc == pytest.approx(estimated)
    (open_warnings,) = _query(
        published_db,
        "select count(*) from monitoring.alert_list where model_name = ? and state = 'open' and severity = 'warn'",
        [model],
    )[0]
    assert head.open_warnings == open_warnings


def test_heatmap_cells_cover_every_row_of_the_chosen_kinds_worst_first(queries, published_db, model):
    page = queries.load_model_page(published_db, model)

    cells = queries.heatmap_cells(page.heatmap, queries.DISTRIBUTION_KINDS)

    n_cells, n_rows, worst = _query(
        published_db,
        "select count(*), count(distinct (feature, kind)), arg_max(feature, value_over_threshold) "
        "from monitoring.drift_heatmap where model_name = ? and kind in ('numeric', 'categorical', 'prediction')",
        [model],
    )[0]
    assert len(cells) == n_cells
    assert cells["label"].nunique() == n_rows
    assert cells.iloc[0]["label"] == queries.drift_label(worst, "numeric")
    by_row = cells.groupby("row_order")["value_over_threshold"].max()
    assert by_row.is_monotonic_decreasing


def test_alerts_are_ordered_open_first_then_errors_then_latest(queries, published_db, model):
    page = queries.load_model_page(published_db, model)

    ordered = queries.ordered_alerts(page.alerts)

    expected = _query(
        published_db,
        "select alert_id from monitoring.alert_list where model_name = ? "
        "order by state <> 'open', severity <> 'error', opened_on desc, kind, subject",
        [model],
    )
    assert ordered["alert_id"].tolist() == [row[0] for row in expected]


def test_segment_performance_over_the_last_days(queries, published_db, model):
    page = queries.load_model_page(published_db, model)

    table = queries.segment_performance(page.segments, 2)

    expected = _query(
        published_db,
        "with s as (select * from monitoring.performance_segments_daily where model_name = $1) "
        "select segment_column, segment_value, count(*), sum(n_labelled), avg(roc_auc), avg(est_roc_auc), "
        "count(*) filter (where insufficient_data) from s "
        "where partition_date > (select max(partition_date) from s) - 2 group by all order by all",
        [model],
    )
    assert len(table) == len(expected)
    shown = table.set_index(["segment_column", "segment_value"])
    for column, value, days, n_labelled, roc_auc, est_roc_auc, days_insufficient in expected:
        row = shown.loc[(column, value)]
        assert (row["days"], row["n_labelled"], row["days_insufficient"]) == (days, n_labelled, days_insufficient)
        assert row["insufficient_data"] == (days_insufficient > 0)
        assert row["roc_auc"] == pytest.approx(_nan(roc_auc), nan_ok=True)
        assert row["est_roc_auc"] == pytest.approx(est_roc_auc)


def test_version_changes_and_flagged_days(queries, published_db, model):
    page = queries.load_model_page(published_db, model)

    changes = queries.version_changes(page.summary)
    flagged = queries.flagged_days(page.summary)

    expected = _query(
        published_db,
        "select partition_date, model_version from (select partition_date, model_version, "
        "lag(model_version) over (order by partition_date) as previous from monitoring.daily_summary "
        "where model_name = ?) where previous is distinct from model_version order by 1",
        [model],
    )
    assert [(d.date(), v) for d, v in zip(changes["partition_date"], changes["model_version"], strict=True)] == expected
    (n_flagged,) = _query(
        published_db,
        "select count(*) from monitoring.daily_summary where model_name = ? "
        "and (status in ('awaiting_labels', 'insufficient_data', 'single_class') or insufficient_data)",
        [model],
    )[0]
    assert len(flagged) == n_flagged


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
