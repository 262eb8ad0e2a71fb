"""Model health page for managers: which model is live, whether it still performs, what drifted, which alerts
are open, how each segment does, what was scored.

Reads only the published, read-only DuckDB file (``MLOPS_PUBLISHED``): the monitoring marts built by dbt
(``monitoring.daily_summary``, ``drift_heatmap``, ``alert_list``), ``monitoring.performance_segments_daily``
and the registry. Run with ``streamlit run monitoring_app/streamlit_app.py``.
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

RECENT_DAYS = 7  # window of the headline ROC-AUC figures
SEGMENT_PERIODS: dict[str, int | None] = {
    "Latest monitored day": 1,
    "Last 7 days": 7,
    "Last 30 days": 30,
    "All monitored days": None,
}
# Heatmap colour: the deciding statistic over its threshold; blues below the threshold, reds from it (1) up,
# darkest from three times the threshold.
HEATMAP_DOMAIN = [0.0, 0.999, 1.0, 3.0]
HEATMAP_RANGE = ["#f7fbff", "#9ecae1", "#fcae91", "#a50f15"]
# Daily data: ticks at whole days at most, labelled by the day.
DAY_AXIS = alt.Axis(format="%d %b", tickMinStep=24 * 3600 * 1000, labelOverlap=True)
# A year of days by 66 drift rows is above Altair's default 5,000-row guard; the page sends only the
# columns each chart needs.
alt.data_transformers.disable_max_rows()

KIND_NAMES = {
    "numeric": "Numeric features",
    "categorical": "Categorical features",
    "prediction": "Model score",
    "null_share": "Missing values",
    "unseen_share": "Unseen levels",
}
STATUS_EXPLAINED = {
    "awaiting_labels": "awaiting labels (estimate only)",
    "insufficient_data": "too few rows to trust",
    "single_class": "one kind of outcome only, so no ROC-AUC",
    "ok": "too few rows to trust",
}
AUC_HELP = (
    "ROC-AUC: how well the model ranks cases that turn out positive above those that do not. "
    "0.5 is a coin flip, 1.0 is perfect."
)
ESTIMATE_HELP = (
    "Estimated from the model's calibrated probabilities alone, before the outcomes are known "
    "(confidence-based estimation, as NannyML's CBPE)."
)
DRIFT_HELP = (
    "How far a day's data moved from the data the model was trained on, measured by the statistic the use case "
    "chose for each kind (normed Wasserstein, Jensen-Shannon, PSI, or a share), divided by its threshold: "
    "1 means at the threshold, above 1 the feature drifted."
)


@st.cache_data(ttl=60, show_spinner=False)
def load_model_names(path: str, mtime: float) -> list[str]:
    """Cached per file and modification time, so a newly published file is read at once."""
    return queries.model_names(Path(path))


@st.cache_data(ttl=60, show_spinner="Reading the published data...")
def load_model_page(path: str, mtime: float, model_name: str) -> queries.ModelPage:
    return queries.load_model_page(Path(path), model_name)


def _day(value: object) -> str:
    return "—" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%d %b %Y")


def _when(value: object) -> str:
    return "—" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%d %b %Y, %H:%M UTC")


def _number(value: object, spec: str = ".3f") -> str:
    return "—" if value is None or pd.isna(value) else format(value, spec)


def _difference(value: object, reference: object, spec: str, suffix: str) -> str | None:
    """A signed difference for st.metric's delta, or None when either side is unknown."""
    if value is None or reference is None or pd.isna(value) or pd.isna(reference):
        return None
    return f"{format(value - reference, '+' + spec)} {suffix}"


def _window(start: object, end: object) -> str:
    return f"{_day(start)} to {_day(end)}"


def _is_true(flag: object) -> bool:
    """A boolean cell that may be missing: missing is not true."""
    return flag is not None and not pd.isna(flag) and bool(flag)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _subject(subject: str) -> str:
    return "model score" if subject == queries.PREDICTION_FEATURE else subject


def _page_title(model_name: str, freshness: pd.DataFrame) -> str:
    """Name the page after the use case (the predictions table the model writes), else after the model."""
    use_case = model_name
    for table_name in freshness.get("table_name", []):
        name = table_name.split(".", 1)[1]
        if model_name.startswith(name):
            use_case = name
    return f"{use_case.replace('_', '-').capitalize()} model health"


def _not_published(table: str) -> None:
    st.info(f"`{table}` is not in the published file yet: it appears once the monitoring job has run and published.")


def show_headline(page: queries.ModelPage, live: pd.Series | None) -> None:
    head = queries.headline(page.summary, page.alerts, RECENT_DAYS)
    cols = st.columns(5)
    cols[0].metric(
        "Live version",
        "none" if live is None else f"v{int(live['version'])}",
        help="The model version that scores new days (status champion in the registry).",
    )
    cols[1].metric("Latest monitored day", _day(head.latest_day))
    cols[2].metric(
        "Open alerts",
        f"{head.open_errors} error · {head.open_warnings} warn",
        help="Error alerts (realised performance, a missing feature) need action; warnings (estimated "
        "performance, drift, data quality) need a look.",
    )
    cols[3].metric(f"Realised ROC-AUC, last {RECENT_DAYS} days", _number(head.realised_roc_auc), help=AUC_HELP)
    cols[4].metric(
        f"Estimated ROC-AUC, last {RECENT_DAYS} days",
        _number(head.estimated_roc_auc),
        _difference(head.estimated_roc_auc, head.realised_roc_auc, ".3f", "vs realised"),
        delta_color="off",
        help=ESTIMATE_HELP,
    )
    if head.latest_day is not None:
        st.caption(
            f"Last {RECENT_DAYS} days: {_window(head.window_start, head.latest_day)}. Mean daily ROC-AUC, realised "
            f"over the {_plural(head.realised_days, 'day')} whose outcomes are known and enough, estimated over "
            f"the {_plural(head.estimated_days, 'day')} scored (the estimate needs no outcomes)."
        )
    if head.open_errors:
        errors = page.alerts[(page.alerts["state"] == "open") & (page.alerts["severity"] == "error")]
        st.error(
            f"{_plural(head.open_errors, 'error alert')} open: "
            + "; ".join(errors["message"].head(3))
            + (" ..." if len(errors) > 3 else "")
        )


def show_alerts(alerts: pd.DataFrame, published: bool) -> None:
    st.header("Alerts")
    if not published:
        _not_published(queries.ALERT_LIST)
        return
    if alerts.empty:
        st.success("No alert has fired: every monitoring rule held on every monitored day.")
        return
    ordered = queries.ordered_alerts(alerts)
    table = pd.DataFrame(
        {
            "State": ordered["state"].str.capitalize(),
            "Severity": ordered["severity"].map({"error": "Error", "warn": "Warning"}).fillna(ordered["severity"]),
            "Kind": ordered["kind"].str.replace("_", " ").str.capitalize(),
            "Subject": ordered["subject"].map(_subject),
            "Opened on": ordered["opened_on"].map(_day),
            "Closed on": ordered["closed_on"].map(lambda d: "open" if pd.isna(d) else _day(d)),
            "Days open": ordered["duration_days"],
            "Value": ordered["value"],
            "Threshold": ordered["threshold"],
            "Message": ordered["message"],
        }
    )
    n_open = int((ordered["state"] == "open").sum())
    st.caption(
        f"{_plural(n_open, 'alert')} open, {len(ordered) - n_open} closed; open first, errors before warnings. "
        "An alert opens on the first day its rule fires and closes once the rule has held for a few monitored days "
        "in a row (monitoring.alert_close_after_days; a rule firing again sooner keeps the same alert open); "
        "an open error alert on realised performance starts a retraining."
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 420),
        column_config={
            "Days open": st.column_config.NumberColumn(format="%d"),
            "Value": st.column_config.NumberColumn(format="%.3f"),
            "Threshold": st.column_config.NumberColumn(format="%.3f"),
            "Message": st.column_config.TextColumn(width="large"),
        },
    )


def _flag_reason(row: pd.Series) -> str:
    return STATUS_EXPLAINED.get(row["status"], row["status"])


def _roc_auc_chart(summary: pd.DataFrame, live: pd.Series | None) -> alt.LayerChart:
    names = {"roc_auc": "Realised (outcomes known)", "est_roc_auc": "Estimated (before outcomes)"}
    long = summary.melt(
        id_vars=["partition_date", "model_version", "status"],
        value_vars=list(names),
        var_name="series",
        value_name="value",
    ).dropna(subset=["value"])
    long["series"] = long["series"].map(names)
    series, colors, dashes = list(names.values()), ["#08519c", "#d95f0e"], [[1, 0], [5, 3]]
    reference = pd.DataFrame(columns=["value", "series"])
    if live is not None and not pd.isna(live["daily_roc_auc"]):
        series.append(f"Mean daily on its test days (v{int(live['version'])})")
        colors.append("#969696")
        dashes.append([2, 2])
        reference = pd.DataFrame({"value": [live["daily_roc_auc"]], "series": [series[-1]]})
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(domain=series, range=colors),
        legend=alt.Legend(orient="bottom", labelLimit=400),
    )
    dash = alt.StrokeDash("series:N", scale=alt.Scale(domain=series, range=dashes), legend=None)
    x = alt.X("partition_date:T", title=None, axis=DAY_AXIS)
    lines = (
        alt.Chart(long)
        .mark_line(point=alt.OverlayMarkDef(size=30, filled=True), strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y("value:Q", title="ROC-AUC", scale=alt.Scale(zero=False)),
            color=color,
            strokeDash=dash,
            tooltip=[
                alt.Tooltip("partition_date:T", title="Day"),
                alt.Tooltip("series:N", title="Line"),
                alt.Tooltip("value:Q", title="ROC-AUC", format=".3f"),
                alt.Tooltip("status:N", title="Status"),
                alt.Tooltip("model_version:Q", title="Version scoring"),
            ],
        )
    )
    rule = (
        alt.Chart(reference)
        .mark_rule(strokeWidth=1.5)
        .encode(
            y="value:Q",
            color=color,
            strokeDash=dash,
            tooltip=[alt.Tooltip("value:Q", title="Mean daily ROC-AUC on its test days", format=".3f")],
        )
    )
    layers = [_flag_bands(summary), _version_rules(summary), lines, rule]
    return alt.layer(*[layer for layer in layers if layer is not None]).properties(height=320)


def _flag_bands(summary: pd.DataFrame) -> alt.Chart | None:
    """A grey band over each day whose realised figures are missing or not trusted (marked, not dropped)."""
    flagged = queries.flagged_days(summary)
    if flagged.empty:
        return None
    bands = pd.DataFrame(
        {
            "start": flagged["partition_date"] - pd.Timedelta(hours=12),
            "end": flagged["partition_date"] + pd.Timedelta(hours=12),
            "partition_date": flagged["partition_date"],
            "flag": flagged.apply(_flag_reason, axis=1),
        }
    )
    return (
        alt.Chart(bands)
        .mark_rect(color="#bdbdbd", opacity=0.35)
        .encode(
            x="start:T",
            x2="end:T",
            tooltip=[alt.Tooltip("partition_date:T", title="Day"), alt.Tooltip("flag:N", title="Flagged")],
        )
    )


def _version_rules(summary: pd.DataFrame) -> alt.LayerChart:
    """A vertical rule and label where a model version starts scoring."""
    changes = queries.version_changes(summary)
    changes = changes.assign(
        at=changes["partition_date"] - pd.Timedelta(hours=12),
        label=changes["model_version"].map(lambda v: f"v{int(v)} live"),
    )
    base = alt.Chart(changes).encode(
        x="at:T",
        tooltip=[
            alt.Tooltip("partition_date:T", title="First day scored"),
            alt.Tooltip("model_version:Q", title="Version"),
        ],
    )
    return alt.layer(
        base.mark_rule(color="#636363", strokeDash=[4, 3]),
        base.mark_text(align="left", baseline="top", dx=4, dy=4, color="#636363").encode(
            text="label:N", y=alt.value(0)
        ),
    )


def _calibration_chart(summary: pd.DataFrame) -> alt.Chart:
    names = {"base_rate": "Actual outcome rate", "mean_prediction": "Average predicted probability"}
    long = summary.melt(
        id_vars=["partition_date", "model_version"], value_vars=list(names), var_name="series", value_name="rate"
    ).dropna(subset=["rate"])
    long["series"] = long["series"].map(names)
    return (
        alt.Chart(long)
        .mark_line(point=alt.OverlayMarkDef(size=18, filled=True))
        .encode(
            x=alt.X("partition_date:T", title=None, axis=DAY_AXIS),
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
        .properties(height=260)
    )


def _estimate_error_chart(summary: pd.DataFrame) -> alt.Chart:
    errors = summary[["partition_date", "status", "est_roc_auc_error"]].dropna(subset=["est_roc_auc_error"])
    return (
        alt.Chart(errors)
        .mark_bar(size=6)
        .encode(
            x=alt.X("partition_date:T", title=None, axis=DAY_AXIS),
            y=alt.Y("est_roc_auc_error:Q", title="Estimated minus realised ROC-AUC"),
            color=alt.condition(alt.datum.status == "ok", alt.value("#6baed6"), alt.value("#bdbdbd"), legend=None),
            tooltip=[
                alt.Tooltip("partition_date:T", title="Day"),
                alt.Tooltip("est_roc_auc_error:Q", title="Estimated minus realised", format="+.3f"),
                alt.Tooltip("status:N", title="Status"),
            ],
        )
        .properties(height=260)
    )


def show_performance(summary: pd.DataFrame, live: pd.Series | None, published: bool) -> None:
    st.header("Performance over time")
    if not published:
        _not_published(queries.DAILY_SUMMARY)
        return
    if summary.empty:
        st.info("No day has been monitored yet: monitoring runs after each scored day.")
        return
    error, error_days = queries.estimate_error(summary)
    window = queries.recent(summary, RECENT_DAYS)
    actual, predicted = window["base_rate"].mean(), window["mean_prediction"].mean()
    flagged = queries.flagged_days(summary)
    cols = st.columns(4)
    cols[0].metric(
        "Estimate's mean absolute error",
        _number(error),
        help="Mean over the days with enough known outcomes of |estimated − realised| daily ROC-AUC: how far "
        "the estimate shown before outcomes arrive can be trusted.",
    )
    cols[1].metric(
        f"Actual outcome rate, last {RECENT_DAYS} days",
        _number(actual, ".1%"),
        help="Share of the labelled cases whose outcome turned out positive.",
    )
    cols[2].metric(
        f"Average predicted probability, last {RECENT_DAYS} days",
        _number(predicted, ".1%"),
        _difference(predicted, actual, ".1%", "vs actual"),
        delta_color="off",
        help="Far from the actual rate means the probabilities are off (the model is miscalibrated).",
    )
    cols[3].metric(
        "Days flagged",
        f"{len(flagged)} of {len(summary)}",
        help="Days awaiting outcomes, with too few rows, or with one kind of outcome only: shown, shaded grey.",
    )
    st.subheader("How well it ranks cases: realised and estimated ROC-AUC per day")
    st.altair_chart(_roc_auc_chart(summary, live), width="stretch")
    notes = [
        f"Dashed vertical lines: a model version starts scoring. Estimate error over {_plural(error_days, 'day')}."
    ]
    if not flagged.empty:
        by_reason = flagged.assign(reason=flagged.apply(_flag_reason, axis=1)).groupby("reason", sort=True)
        parts = [
            f"{_plural(len(days), 'day')} {reason} ({', '.join(_day(d) for d in days['partition_date'].tail(3))}"
            f"{', ...' if len(days) > 3 else ''})"
            for reason, days in by_reason
        ]
        notes.append("Shaded grey: " + "; ".join(parts) + ".")
    st.caption(" ".join(notes))
    left, right = st.columns(2)
    with left:
        st.subheader("Predicted vs actual rate per day")
        st.altair_chart(_calibration_chart(summary), width="stretch")
    with right:
        st.subheader("Estimate error per day")
        if summary["est_roc_auc_error"].notna().any():
            st.altair_chart(_estimate_error_chart(summary), width="stretch")
        else:
            st.info("No day has both an estimate and a realised ROC-AUC yet.")


def show_segments(segments: pd.DataFrame, published: bool) -> None:
    st.header("Performance by segment")
    if not published:
        _not_published(queries.PERFORMANCE_SEGMENTS)
        return
    if segments.empty:
        st.info("No segment has been monitored yet.")
        return
    period = st.selectbox("Period", list(SEGMENT_PERIODS), key="segment_period")
    table = queries.segment_performance(segments, SEGMENT_PERIODS[period])
    window = segments if SEGMENT_PERIODS[period] is None else queries.recent(segments, SEGMENT_PERIODS[period])
    st.caption(
        f"{_window(window['partition_date'].min(), window['partition_date'].max())}. ROC-AUC is the mean of the "
        "daily values; a segment is flagged when it had too few rows on any day of the period."
    )
    st.dataframe(
        pd.DataFrame(
            {
                "Segment": table["segment_column"],
                "Value": table["segment_value"],
                "Days": table["days"],
                "Rows scored": table["n_scored"],
                "Rows with outcome": table["n_labelled"],
                "Realised ROC-AUC": table["roc_auc"],
                "Estimated ROC-AUC": table["est_roc_auc"],
                "Days with too few rows": table["days_insufficient"],
                "Insufficient data": table["insufficient_data"],
            }
        ),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 560),
        column_config={
            "Rows scored": st.column_config.NumberColumn(format="localized"),
            "Rows with outcome": st.column_config.NumberColumn(format="localized"),
            "Realised ROC-AUC": st.column_config.NumberColumn(format="%.3f", help=AUC_HELP),
            "Estimated ROC-AUC": st.column_config.NumberColumn(format="%.3f", help=ESTIMATE_HELP),
        },
    )


def _heatmap_chart(cells: pd.DataFrame) -> alt.Chart:
    rows = cells.drop_duplicates("label").sort_values("row_order")["label"].tolist()
    data = cells[["partition_date", "label", "kind", "method", "value", "threshold", "value_over_threshold", "drifted"]]
    return (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X(
                "yearmonthdate(partition_date):O",
                title=None,
                axis=alt.Axis(format="%d %b", labelAngle=-90, labelOverlap=True),
            ),
            y=alt.Y("label:N", title=None, sort=rows, axis=alt.Axis(labelLimit=300)),
            color=alt.Color(
                "value_over_threshold:Q",
                title="Over threshold",
                scale=alt.Scale(domain=HEATMAP_DOMAIN, range=HEATMAP_RANGE, clamp=True),
            ),
            tooltip=[
                alt.Tooltip("partition_date:T", title="Day"),
                alt.Tooltip("label:N", title="Feature"),
                alt.Tooltip("method:N", title="Statistic"),
                alt.Tooltip("value:Q", title="Value", format=".3f"),
                alt.Tooltip("threshold:Q", title="Threshold", format=".3f"),
                alt.Tooltip("value_over_threshold:Q", title="Value / threshold", format=".2f"),
                alt.Tooltip("drifted:N", title="Drifted"),
            ],
        )
        .properties(height=24 * len(rows) + 40)
    )


def _drifted_share_chart(summary: pd.DataFrame) -> alt.LayerChart:
    data = summary[["partition_date", "n_drifted", "n_features", "drifted_share", "drifted_share_threshold"]]
    base = alt.Chart(data).encode(x=alt.X("partition_date:T", title=None, axis=DAY_AXIS))
    tooltip = [
        alt.Tooltip("partition_date:T", title="Day"),
        alt.Tooltip("drifted_share:Q", title="Drifted share", format=".0%"),
        alt.Tooltip("n_drifted:Q", title="Features drifted"),
        alt.Tooltip("n_features:Q", title="Features monitored"),
        alt.Tooltip("drifted_share_threshold:Q", title="Threshold", format=".0%"),
    ]
    return alt.layer(
        base.mark_line(point=alt.OverlayMarkDef(size=24, filled=True), color="#08519c").encode(
            y=alt.Y("drifted_share:Q", title="Share of features drifted", axis=alt.Axis(format="%")),
            tooltip=tooltip,
        ),
        base.mark_line(color="#cb181d", strokeDash=[6, 4]).encode(y="drifted_share_threshold:Q", tooltip=tooltip),
    ).properties(height=220)


def show_drift(summary: pd.DataFrame, heatmap: pd.DataFrame, published: bool) -> None:
    st.header("Has the input data shifted? (drift)")
    if not published:
        _not_published(queries.DRIFT_HEATMAP)
        return
    if heatmap.empty:
        st.info("No drift has been measured yet.")
        return
    if not summary.empty:
        latest = summary.sort_values("partition_date").iloc[-1]
        cols = st.columns(3)
        n_drifted, n_features = latest["n_drifted"], latest["n_features"]
        cols[0].metric(
            f"Features drifted on {_day(latest['partition_date'])}",
            "—" if pd.isna(n_features) else f"{int(n_drifted)} of {int(n_features)}",
            None if pd.isna(latest["drifted_share"]) else f"{latest['drifted_share']:.0%} of features",
            delta_color="inverse" if _is_true(latest["dataset_drifted"]) else "off",
            help=DRIFT_HELP,
        )
        cols[1].metric(
            "Drifted share threshold",
            _number(latest["drifted_share_threshold"], ".0%"),
            help="At or above this share of drifted features the day's data drifted as a whole (a warning).",
        )
        score = latest["prediction_drifted"]
        cols[2].metric(
            "Model score drifted",
            "—" if pd.isna(score) else ("yes" if score else "no"),
            help="The day's scores against the scores on the validation window.",
        )
    kinds = [kind for kind in KIND_NAMES if kind in set(heatmap["kind"])]
    chosen = st.multiselect(
        "Show",
        kinds,
        default=[kind for kind in kinds if kind in queries.DISTRIBUTION_KINDS],
        format_func=KIND_NAMES.get,
        key="drift_kinds",
        help="Distribution drift of features and of the model score, or data quality: the share of missing "
        "values against training and the share of levels never seen in training.",
    )
    cells = queries.heatmap_cells(heatmap, chosen)
    if cells.empty:
        st.info("Choose at least one kind to see its heatmap.")
    else:
        st.subheader("Drift per feature and day")
        st.altair_chart(_heatmap_chart(cells), width="stretch")
        st.caption(
            "Colour: each day's drift statistic divided by its threshold; blue below the threshold, red from 1 "
            "(at the threshold) up, darkest from 3. Rows with the largest drift first; hover a cell for the "
            "statistic, its value and threshold."
        )
    if not summary.empty:
        drifted = summary.sort_values("partition_date").iloc[-1]["drifted_features"]
        st.caption(
            f"Drifted on the latest day: {drifted}."
            if isinstance(drifted, str) and drifted
            else "No feature drifted on the latest day."
        )
        st.subheader("Share of features drifted per day")
        st.altair_chart(_drifted_share_chart(summary), width="stretch")
        st.caption("Dashed red: the threshold at which a day's data counts as drifted as a whole.")


def show_live_model(versions: pd.DataFrame) -> None:
    st.subheader("Live model")
    live = queries.champion(versions)
    if live is None:
        st.info("No model version has been promoted yet, so no model is live.")
        return
    version = int(live["version"])
    st.markdown(f"**Version {version}** has been live since **{_when(live['promoted_at'])}**.")
    cols = st.columns(3)
    cols[0].metric(
        "ROC-AUC on its test days",
        _number(live["roc_auc"]),
        _difference(live["roc_auc"], live["baseline_roc_auc"], ".3f", "vs simple baseline"),
        help=AUC_HELP,
    )
    cols[1].metric(
        "Simple baseline ROC-AUC",
        _number(live["baseline_roc_auc"]),
        help="The best naive rule an analyst would use without a model, scored on the same test days.",
    )
    if pd.isna(live["champion_version"]):
        cols[2].metric("Previous live version", "none", help="It was the first version promoted.")
    else:
        cols[2].metric(
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
            "pipeline has run them (`make demo`, or the monitoring job)."
        )
    published = {table: table not in page.missing_tables for table in queries.MONITORING_TABLES}
    live = queries.champion(page.versions)
    show_headline(page, live)
    show_alerts(page.alerts, published[queries.ALERT_LIST])
    show_performance(page.summary, live, published[queries.DAILY_SUMMARY])
    show_segments(page.segments, published[queries.PERFORMANCE_SEGMENTS])
    show_drift(page.summary, page.heatmap, published[queries.DRIFT_HEATMAP])
    st.header("Live model, versions and scoring")
    show_live_model(page.versions)
    show_freshness(page.freshness)
    show_versions(page.versions, page.history)


main()
