"""A Markdown model card per version: what it is for, what it learned from, how it scored, why it was kept."""

from __future__ import annotations

from dagster_project.use_case import UseCase, Windows

SHOWN = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1", "base_rate", "mean_prediction")


def _fmt(value: object) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(columns: dict[str, dict]) -> str:
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name in SHOWN:
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(name)) for m in columns.values()) + " |")
    return "\n".join(lines)


def model_card(
    uc: UseCase,
    version: int,
    windows: Windows,
    row: dict,
    metrics: dict,
    validation: dict,
    baselines: dict[str, dict],
    segments: list[dict],
    reliability: list[dict],
    tuning: dict,
    decision: list[str] | None = None,
) -> str:
    """The card's Markdown; ``decision`` (the gate's reasons) is appended once the gate has run."""
    worst = sorted(
        (s for s in segments if s["scorer"] == "candidate" and s["gated"] and s.get("roc_auc")),
        key=lambda s: s["roc_auc"],
    )[:5]
    parts = [
        f"# {uc.model_name} v{version}",
        f"**Use case:** {uc.name}. {uc.description.strip()}",
        "## Data and windows",
        f"- trained {windows.train.start} .. {windows.train.end} ({row['n_train']} rows); validation (early "
        f"stopping, tuning, threshold, {uc.calibration} calibration) {windows.validation.start} .. "
        f"{windows.validation.end}; test (the gate) {windows.test.start} .. {windows.test.end}",
        f"- training date {windows.as_of}: only labels landed before it were used",
        f"- features: {len(uc.numeric_features)} numeric, {len(uc.categorical_features)} categorical, from "
        f"`{uc.feature_model}`; label `{uc.label_model}.{uc.label}`",
        "## Tuning",
        f"- Optuna TPE, seed {uc.tuning_seed}: {tuning['n_trials']} trials in {tuning['seconds']:.1f} s; best "
        f"{uc.tuning_metric} {tuning['best_value']:.5f} at {tuning['best_iteration']} rounds",
        f"- best parameters: `{tuning['best_params']}`",
        "## Test-window metrics (decision threshold {:.3f}, rule {})".format(row["threshold"], uc.threshold_rule),
        metrics_table({"candidate": metrics, "validation window": validation} | baselines),
        "## Weakest segments (test window, gated)",
        "\n".join(
            f"- {s['segment_column']} = {s['segment_value']}: ROC-AUC {s['roc_auc']:.3f} on {s['n_rows']} rows"
            for s in worst
        )
        or "- none with enough rows",
        "## Reliability (test window)",
        "| bin | rows | mean prediction | observed rate |\n|---|---|---|---|\n"
        + "\n".join(
            f"| {r['lower']:.1f}-{r['upper']:.1f} | {r['n_rows']} | {r['mean_prediction']:.3f} | "
            f"{r['observed_rate']:.3f} |"
            for r in reliability
        ),
        "## Provenance",
        f"- artifact SHA-256 `{row['artifact_sha256']}`; code `{row['code_version']}`; dbt manifest "
        f"`{row['dbt_manifest_sha256']}`; Dagster run `{row['dagster_run_id']}`",
        "## Limitations",
        "- Origin weather is the observed weather at the scheduled hour, a stand-in for the forecast a real "
        "system would have the evening before; live performance may be lower than measured here."
        if "weather" in uc.description.lower() or any("temp" in f for f in uc.numeric_features)
        else "- Measured on one test window; watch the monitoring tables for drift.",
    ]
    if decision is not None:
        parts += ["## Gate decision", "\n".join(f"- {reason}" for reason in decision)]
    return "\n\n".join(parts) + "\n"
