"""Model health page for managers: which model is live, how it performs, what drifted, what was scored.

Reads only the published, read-only DuckDB file (``MLOPS_PUBLISHED``); run with
``streamlit run monitoring_app/streamlit_app.py``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

# `streamlit run` puts only this script's folder on sys.path; the settings module and this folder's
# package live under the project root, which need not be installed.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dagster_project.settings import Settings  # noqa: E402
from monitoring_app import queries  # noqa: E402

RECENT_DAYS = 7  # window of the headline performance figures
DRIFT_RECENT_DAYS = 14  # last column of the drift table
ROLLING_WINDOW = "7D"  # smoothing of the daily ROC-AUC line

STATUS_EXPLAINED = {
    "single_class": "only one kind of outcome, so ROC-AUC is undefined",
    "insufficient_data": "too few labelled rows to measure",
    "no_labels": "outcomes not known yet",
}
AUC_HELP = (
    "ROC-AUC: how well the model ranks cases that turn out positive above those that do not. "
    "0.5 is a coin flip, 1.0 is perfect."
)
PSI_HELP = (
    "Population stability index: how far a day's distribution moved from the data the model was trained on. "
    "Below 0.1 stable, 0.1 to the threshold moderate, above the threshold a significant shift."
)


@st.cache_data(ttl=60, show_spinner=False)
def load_model_names(path: str, mtime: float) -> list[str]:
    """Cached per file and modification time, so a newly published file is read at once."""
    return queries.model_names(Path(path))


@st.cache_data(ttl=60, show_spinner="Reading the published data...")
def load_model_page(path: str, mtime: float, model_name: str) -> queries.ModelPage:
    return queries.load_model_page(Path(path), model_name)


def _day(value: object) -> str:
    return "—" if pd.isna(value) else pd.Timestamp(value).strftime("%d %b %Y")


def _when(value: object) -> str:
    return "—" if pd.isna(value) else pd.Timestamp(value).strftime("%d %b %Y, %H:%M UTC")


def _number(value: object, spec: str = ".3f") -> str:
    return "—" if pd.isna(value) else format(value, spec)


def _difference(value: object, reference: object, spec: str, suffix: str) -> str | None:
    """A signed difference for st.metric's delta, or None when either side is unknown."""
    if pd.isna(value) or pd.isna(reference):
        return None
    return f"{format(value - reference, '+' + spec)} {suffix}"


def _window(start: object, end: object) -> str:
    return f"{_day(start)} to {_day(end)}"


def _feature_label(feature: str) -> str:
    return "Model score (predictions)" if feature == queries.PREDICTION_FEATURE else feature.replace("_", " ")


def _page_title(model_name: str, freshness: pd.DataFrame) -> str:
    """Name the page after the use case (the predictions table the model writes), else after the model."""
    use_case = model_name
    for table_name in freshness.get("table_name", []):
        name = table_name.split(".", 1)[1]
        if model_name.startswith(name):
            use_case = name
    return f"{use_case.replace('_', '-').capitalize()} model health"


def show_live_model(versions: pd.DataFrame) -> pd.Series | None:
    st.header("Live model")
    live = queries.champion(versions)
    if live is None:
        st.info("No model version has been promoted yet, so no model is live.")
        return None
    version = int(live["version"])
    st.markdown(f"**Version {version}** has been live since **{_when(live['promoted_at'])}**.")
    cols = st.columns(4)
    cols[0].metric("Live version", f"v{version}")
    cols[1].metric(
        "ROC-AUC on its test days",
        _number(live["roc_auc"]),
        _difference(live["roc_auc"], live["baseline_roc_auc"], ".3f", "vs simple baseline"),
        help=AUC_HELP,
    )
    cols[2].metric(
        "Simple baseline ROC-AUC",
        _number(live["baseline_roc_auc"]),
        help="The best naive rule an analyst would use without a model, scored on the same test days.",
    )
    if pd.isna(live["champion_version"]):
        cols[3].metric("Previous live version", "none", help="It was the first version promoted.")
    else:
        cols[3].metric(
            "Previous live version",
            f"v{int(live['champion_version'])}",
            _difference(live["roc_auc"], live["champion_roc_auc"], ".3f", "ROC-AUC vs it"),
            help="The version it was compared with, on the same test days, before promotion.",
        )
    st.caption(
        f"Trained on {_window(live['train_start'], live['train_end'])} · "
        f"tested on {_window(live['test_start'], live['test_end'])} · "
        f"flags a case when its probability is at least {live['threshold']:.2f}"
    )
    reasons = live["gate_reasons"] or "no reason recorded"
    if pd.isna(live["gate_passed"]):
        st.info(f"No promotion check was recorded for this version: {reasons}")
    elif live["gate_passed"]:
        st.success(f"Promotion check passed: {reasons}")
    else:
        st.error(f"Promotion check did not pass, yet this version is live: {reasons}")
    newer = versions[(versions["version"] > version) & (versions["status"] == "rejected")]
    if not newer.empty:
        latest = newer.sort_values("version").iloc[-1]
        st.info(
            f"A newer version, v{int(latest['version'])} (trained {_day(latest['created_at'])}), "
            f"was not promoted: {latest['gate_reasons']}"
        )
    return live


def _auc_chart(measured: pd.DataFrame, live: pd.Series | None) -> alt.LayerChart:
    daily = measured[["partition_date", "model_version", "roc_auc"]].assign(series="Daily")
    smooth = measured.rolling(ROLLING_WINDOW, on="partition_date")["roc_auc"].mean()
    weekly = measured[["partition_date", "model_version"]].assign(roc_auc=smooth, series="7-day average")
    series = ["Daily", "7-day average"]
    colors = ["#9ecae1", "#08519c"]
    reference = pd.DataFrame(columns=["roc_auc", "series"])
    if live is not None:
        series.append(f"On its test days (v{int(live['version'])})")
        colors.append("#d95f0e")
        reference = pd.DataFrame({"roc_auc": [live["roc_auc"]], "series": [series[-1]]})
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(domain=series, range=colors),
        legend=alt.Legend(orient="bottom", labelLimit=400),
    )
    x = alt.X("partition_date:T", title=None)
    y = alt.Y("roc_auc:Q", title="ROC-AUC", scale=alt.Scale(zero=False))
    tooltip = [
        alt.Tooltip("partition_date:T", title="Day"),
        alt.Tooltip("series:N", title="Line"),
        alt.Tooltip("roc_auc:Q", title="ROC-AUC", format=".3f"),
        alt.Tooltip("model_version:Q", title="Version scoring"),
    ]
    lines = alt.layer(
        alt.Chart(daily).mark_line(point=alt.OverlayMarkDef(size=20, filled=True), strokeWidth=1.5),
        alt.Chart(weekly).mark_line(strokeWidth=3),
    ).encode(x=x, y=y, color=color, tooltip=tooltip)
    rule = (
        alt.Chart(reference)
        .mark_rule(strokeDash=[6, 4], strokeWidth=2)
        .encode(
            y="roc_auc:Q",
            color=color,
            tooltip=[alt.Tooltip("roc_auc:Q", title="ROC-AUC on its test days", format=".3f")],
        )
    )
    return alt.layer(lines, rule).properties(height=300)


def _calibration_chart(performance: pd.DataFrame) -> alt.Chart:
    long = performance.melt(
        id_vars=["partition_date", "model_version"],
        value_vars=["base_rate", "mean_prediction"],
        var_name="series",
        value_name="rate",
    ).dropna(subset=["rate"])
    names = {"base_rate": "Actual outcome rate", "mean_prediction": "Average predicted probability"}
    long["series"] = long["series"].map(names)
    return (
        alt.Chart(long)
        .mark_line(point=alt.OverlayMarkDef(size=18, filled=True))
        .encode(
            x=alt.X("partition_date:T", title=None),
            y=alt.Y("rate:Q", title="Share of cases", axis=alt.Axis(format="%")),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=list(names.values()), range=["#333333", "#d95f0e"]),
                legend=alt.Legend(orient="bottom", labelLimit=400),
            ),
            tooltip=[
                alt.Tooltip("partition_date:T", title="Day"),
                alt.Tooltip("series:N", title="Line"),
                alt.Tooltip("rate:Q", title="Rate", format=".1%"),
                alt.Tooltip("model_version:Q", title="Version scoring"),
            ],
        )
        .properties(height=300)
    )


def show_performance(performance: pd.DataFrame, live: pd.Series | None) -> None:
    st.header("Performance over time")
    if performance.empty:
        st.info("No performance has been measured yet: outcomes arrive the day after a scored day.")
        return
    measured = performance[(performance["status"] == "ok") & performance["roc_auc"].notna()]
    recent_cut = performance["partition_date"].max() - pd.Timedelta(days=RECENT_DAYS - 1)
    recent = performance[performance["partition_date"] >= recent_cut]
    recent_measured = measured[measured["partition_date"] >= recent_cut]
    cols = st.columns(3)
    recent_auc = recent_measured["roc_auc"].mean()
    cols[0].metric(
        f"ROC-AUC, last {RECENT_DAYS} days",
        _number(recent_auc),
        None if live is None else _difference(recent_auc, live["roc_auc"], ".3f", "vs its test days"),
        help=AUC_HELP,
    )
    actual, predicted = recent["base_rate"].mean(), recent["mean_prediction"].mean()
    cols[1].metric(
        f"Actual outcome rate, last {RECENT_DAYS} days",
        _number(actual, ".1%"),
        help="Share of the scored cases whose outcome turned out positive.",
    )
    cols[2].metric(
        f"Average predicted probability, last {RECENT_DAYS} days",
        _number(predicted, ".1%"),
        _difference(predicted, actual, ".1%", "vs actual"),
        delta_color="off",
        help="Far from the actual rate means the probabilities are off (the model is miscalibrated).",
    )
    left, right = st.columns(2)
    with left:
        st.subheader("How well it ranks cases (ROC-AUC per day)")
        if measured.empty:
            st.info("No day has enough labelled outcomes of both kinds to measure ROC-AUC yet.")
        else:
            st.altair_chart(_auc_chart(measured, live), width="stretch")
    with right:
        st.subheader("Predicted vs actual rate per day")
        st.altair_chart(_calibration_chart(performance), width="stretch")
    skipped = performance[performance["status"] != "ok"]
    if not skipped.empty:
        parts = [
            f"{count} day{'s' if count > 1 else ''} with {STATUS_EXPLAINED.get(status, status)}"
            f" ({', '.join(_day(d) for d in skipped[skipped['status'] == status]['partition_date'].tail(3))}"
            f"{', ...' if count > 3 else ''})"
            for status, count in skipped["status"].value_counts().sort_index().items()
        ]
        st.caption("Not in the ROC-AUC chart: " + "; ".join(parts) + ".")


def _highlight_drift(table: pd.DataFrame, thresholds: pd.Series) -> pd.DataFrame:
    above = table.ge(thresholds, axis=0)
    return above.map(lambda hit: "background-color: #f8d0c8; color: #7f1d1d; font-weight: 600" if hit else "")


def show_drift(drift: pd.DataFrame) -> None:
    st.header("Has the input data shifted? (drift)")
    if drift.empty:
        st.info("No drift has been measured yet.")
        return
    latest = queries.latest_drift(drift)
    features = latest[latest["feature"] != queries.PREDICTION_FEATURE]
    score = latest[latest["feature"] == queries.PREDICTION_FEATURE]
    n_drifted = int(features["drifted"].sum())
    cols = st.columns(3)
    cols[0].metric(
        f"Features shifted on {_day(latest['partition_date'].iloc[0])}",
        f"{n_drifted} of {len(features)}",
        f"{n_drifted / max(len(features), 1):.0%} of features",
        delta_color="inverse" if n_drifted else "off",
        help=PSI_HELP,
    )
    if not score.empty:
        row = score.iloc[0]
        cols[1].metric(
            "Shift of the model's scores (PSI)",
            _number(row["psi"], ".2f"),
            "above threshold" if row["drifted"] else "within threshold",
            delta_color="inverse" if row["drifted"] else "off",
            help=PSI_HELP,
        )
    threshold = float(drift["threshold"].max())
    cols[2].metric("Threshold for a significant shift (PSI)", f"{threshold:.2f}", help=PSI_HELP)

    table = queries.drift_by_period(drift, DRIFT_RECENT_DAYS)
    thresholds = table.pop("threshold")
    periods = [column for column in table.columns if column != "feature"]
    table = table.assign(feature=table["feature"].map(_feature_label)).rename(columns={"feature": "Feature"})
    styled = table.style.apply(_highlight_drift, axis=None, subset=periods, thresholds=thresholds).format(
        "{:.2f}", subset=periods, na_rep=""
    )
    st.dataframe(styled, width="stretch", hide_index=True, height=min(38 + 35 * len(table), 560))
    shifted = ", ".join(_feature_label(f) for f in features[features["drifted"]]["feature"])
    st.caption(
        f"Mean daily PSI per month and over the last {DRIFT_RECENT_DAYS} days, largest shift first; "
        f"highlighted where it reaches {threshold:.2f}. "
        + (f"Shifted on the latest day: {shifted}." if shifted else "No feature shifted on the latest day.")
    )


def show_versions(versions: pd.DataFrame, history: pd.DataFrame) -> None:
    st.subheader("Model versions")
    if versions.empty:
        st.info("No model version has been registered yet.")
        return
    table = pd.DataFrame(
        {
            "Version": versions["version"].map(lambda v: f"v{v}"),
            "Status": versions["status"].str.capitalize(),
            "Trained": versions["created_at"].map(_day),
            "Training data": [
                _window(s, e) for s, e in zip(versions["train_start"], versions["train_end"], strict=True)
            ],
            "ROC-AUC": versions["roc_auc"],
            "Baseline ROC-AUC": versions["baseline_roc_auc"],
            "Passed check": versions["gate_passed"],
            "Promotion check": versions["gate_reasons"],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "ROC-AUC": st.column_config.NumberColumn(format="%.3f", help=AUC_HELP),
            "Baseline ROC-AUC": st.column_config.NumberColumn(format="%.3f"),
            "Promotion check": st.column_config.TextColumn(width="large"),
        },
    )
    if not history.empty:
        with st.expander("Promotion and rollback log"):
            st.dataframe(
                pd.DataFrame(
                    {
                        "When": history["event_at"].map(_when),
                        "Version": history["version"].map(lambda v: f"v{v}"),
                        "Event": history["event"].str.replace("_", " ").str.capitalize(),
                        "By": history["actor"],
                        "Why": history["reason"],
                    }
                ),
                hide_index=True,
                width="stretch",
            )


def show_freshness(freshness: pd.DataFrame) -> None:
    st.subheader("Latest scoring")
    if freshness.empty:
        st.info("No predictions have been published yet.")
        return
    for row in freshness.itertuples():
        if len(freshness) > 1:
            st.markdown(f"**{row.table_name}**")
        cols = st.columns(3)
        cols[0].metric("Latest scored day", _day(row.latest_partition))
        cols[1].metric("Cases scored that day", f"{int(row.rows_latest):,}")
        cols[2].metric("Scored by version", f"v{row.model_versions}")
        st.caption(
            f"Scored at {_when(row.scored_at)} · {int(row.rows_total):,} predictions since "
            f"{_day(row.first_partition)} (table `{row.table_name}`)."
        )


def main() -> None:
    st.set_page_config(page_title="Model health", layout="wide")
    path = Settings.from_env().published_path
    if not path.exists():
        st.title("Model health")
        st.warning(
            f"No published monitoring data was found at `{path}`. "
            "Run `make demo` to build and publish it, then reload this page."
        )
        st.stop()
    mtime = path.stat().st_mtime
    names = load_model_names(str(path), mtime)
    if not names:
        st.title("Model health")
        st.warning("The published data has no registered model yet. Run `make demo`, then reload this page.")
        st.stop()
    model_name = st.sidebar.selectbox("Model", names) if len(names) > 1 else names[0]
    page = load_model_page(str(path), mtime, model_name)

    st.title(_page_title(model_name, page.freshness))
    st.caption(
        f"Model `{model_name}` · data as of {datetime.fromtimestamp(mtime, UTC):%d %b %Y, %H:%M UTC} "
        "(when the pipeline last published) · refreshes within a minute of a new publish"
    )
    if page.missing_tables:
        st.warning(
            "Not published yet: " + ", ".join(page.missing_tables) + ". Those sections stay empty until the "
            "pipeline has run them."
        )
    live = show_live_model(page.versions)
    show_performance(page.performance, live)
    show_drift(page.drift)
    st.header("Scoring and model versions")
    show_freshness(page.freshness)
    show_versions(page.versions, page.history)


main()
