"""The use case as data: everything the ML, scoring and monitoring code knows comes from one YAML file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "brier": False, "log_loss": False, "ece": False}
THRESHOLD_RULES = {"max_f1", "min_cost", "fixed"}
CALIBRATIONS = {"none", "isotonic"}
TUNING_METRICS = {"binary_logloss": False, "auc": True}  # LightGBM metric name -> higher is better
CADENCES = {"daily": "0 21 * * *", "weekly": "0 21 * * 1", "monthly": "0 21 1 * *"}
SEARCH_KEYS = {"low", "high", "log", "type"}
# Drift statistics a rule may decide on, per kind of column (drift_sql.py computes all of them every day).
DRIFT_METHODS = {
    "numeric": ("wasserstein_normed", "js_distance", "psi"),
    "categorical": ("js_distance", "psi"),
    "prediction": ("wasserstein_normed", "js_distance", "psi"),
}
# The anchors' defaults (Evidently above 1,000 reference rows: normed Wasserstein 0.1 for numeric columns,
# Jensen-Shannon 0.1 for categorical ones; Evidently's default for a probability column is Wasserstein too).
DEFAULT_DRIFT_RULES = {
    "numeric": ("wasserstein_normed", 0.1),
    "categorical": ("js_distance", 0.1),
    "prediction": ("wasserstein_normed", 0.1),
}


class UseCaseError(ValueError):
    """The use-case YAML is wrong; the message names the key and the fix."""


@dataclass(frozen=True)
class Window:
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise UseCaseError(f"window {self.start}..{self.end}: end is before start")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class Windows:
    """Consecutive time windows of one training run: train < validation < test < as_of."""

    as_of: date
    train: Window
    validation: Window
    test: Window


@dataclass(frozen=True)
class SearchDimension:
    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class DriftRule:
    """A column of this kind drifts on a day when ``method``'s value is >= ``threshold``."""

    method: str
    threshold: float


@dataclass(frozen=True)
class UseCase:
    name: str
    feature_model: str
    label_model: str
    entity_key: str
    partition_column: str
    label: str
    label_available_at: str
    categorical_features: list[str]
    numeric_features: list[str]
    train_start: date | None
    train_days: int | None
    validation_days: int
    test_days: int
    min_train_days: int
    label_lag_days: int
    initial_as_of: date
    baseline_score: str
    model_name: str
    params: dict[str, Any]
    n_trials: int
    tuning_timeout_seconds: float
    tuning_seed: int
    tuning_metric: str
    early_stopping_rounds: int
    max_boost_round: int
    search_space: dict[str, SearchDimension]
    calibration: str
    threshold_rule: str
    fixed_threshold: float | None
    false_positive_cost: float
    false_negative_cost: float
    segment_columns: list[str]
    min_segment_rows: int
    reliability_bins: int
    gate_metric: str
    min_lift_over_baseline: float
    max_drop_vs_champion: float
    max_segment_drop_vs_champion: float
    max_unseen_level_share: float
    psi_bins: int
    drift_rules: dict[str, DriftRule]
    min_rows: int
    rolling_days: int
    max_auc_drop: float
    max_drifted_share: float
    schedule_cron: str
    schedule_timezone: str
    warehouse_cron: str
    partitions_start: date
    retraining_cadence: str
    retraining_cooldown_days: int
    batch_rows: int = 100_000
    reason_codes: int = 3
    max_invalid_share: float = 0.01
    valid_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    drift_exclude: list[str] = field(default_factory=list)
    max_null_share_increase: float = 0.05
    max_unseen_share: float = 0.05
    monitoring_segments: list[str] = field(default_factory=list)
    relabel_days: int = 14
    alert_close_after_days: int = 1
    description: str = ""

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    @property
    def predictions_table(self) -> str:
        return f"predictions.{self.name}"

    @property
    def retraining_cron(self) -> str:
        return CADENCES[self.retraining_cadence]

    def windows(self, as_of: date | None = None) -> Windows:
        """The train, validation and test windows of a training run on ``as_of``.

        The test window ends ``windows.label_lag_days`` before as_of (the newest day whose labels have all
        landed) and holds the newest labelled days; validation the days before it; training everything
        before that, from ``windows.train_start`` (expanding) or the last ``windows.train_days`` days.
        """
        as_of = as_of or self.initial_as_of
        test_end = as_of - timedelta(days=self.label_lag_days)
        test = Window(test_end - timedelta(days=self.test_days - 1), test_end)
        validation = Window(test.start - timedelta(days=self.validation_days), test.start - timedelta(days=1))
        train_end = validation.start - timedelta(days=1)
        train_start = self.train_start or train_end - timedelta(days=(self.train_days or 1) - 1)
        if train_start > train_end:
            raise UseCaseError(
                f"use case: windows.train_start {train_start} is not before the validation window "
                f"{validation.start}..{validation.end} of a training on {as_of}; the windows would overlap: move "
                "windows.train_start earlier or train later"
            )
        if (train_end - train_start).days + 1 < self.min_train_days:
            raise UseCaseError(
                f"use case: training on {as_of} leaves {train_start}..{train_end} for training, fewer than "
                f"windows.min_train_days = {self.min_train_days}; move windows.train_start earlier, shorten "
                f"windows.validation_days / windows.test_days, or train later"
            )
        return Windows(as_of, Window(train_start, train_end), validation, test)

    def retraining_dates(self, start: date, end: date) -> list[date]:
        """The training dates of the cadence in ``start..end`` (the replay's retraining moments)."""
        dates = []
        day = start
        while day <= end:
            if (
                self.retraining_cadence == "daily"
                or (self.retraining_cadence == "weekly" and day.isoweekday() == 1)
                or (self.retraining_cadence == "monthly" and day.day == 1)
            ):
                dates.append(day)
            day += timedelta(days=1)
        return dates


def _get(raw: dict, dotted: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise UseCaseError(f"use case: missing key '{dotted}'; add it to the YAML")
        node = node[part]
    if isinstance(node, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise UseCaseError(f"use case: key '{dotted}' must be {kind}, got a boolean {node!r}")
    if not isinstance(node, kind):
        raise UseCaseError(f"use case: key '{dotted}' must be {kind}, got {type(node).__name__} {node!r}")
    return node


def _positive(raw: dict, dotted: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    value = _get(raw, dotted, kind, default)
    if value is not None and value <= 0:
        raise UseCaseError(f"use case: key '{dotted}' must be positive, got {value}")
    return value


def _choice(raw: dict, dotted: str, allowed: set[str] | dict, default: Any = ...) -> str:
    value = _get(raw, dotted, str, default)
    if value not in allowed:
        raise UseCaseError(f"use case: {dotted} '{value}' is unknown; use one of {sorted(allowed)}")
    return value


def _identifier(value: str, key: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise UseCaseError(f"use case: '{key}' = {value!r} is not a plain SQL identifier")
    return value


def _identifiers(raw: dict, dotted: str, default: Any = ...) -> list[str]:
    return [_identifier(c, dotted) for c in _get(raw, dotted, list, default)]


def _search_space(raw: dict) -> dict[str, SearchDimension]:
    space = {}
    for name, spec in _get(raw, "tuning.search_space", dict).items():
        key = f"tuning.search_space.{name}"
        if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) or set(spec) - SEARCH_KEYS:
            raise UseCaseError(f"use case: {key} must be a mapping with low, high and optional log, type")
        if spec["low"] >= spec["high"]:
            raise UseCaseError(f"use case: {key}: low {spec['low']} must be below high {spec['high']}")
        if spec.get("type", "float") not in ("int", "float"):
            raise UseCaseError(f"use case: {key}.type must be int or float")
        space[name] = SearchDimension(
            float(spec["low"]), float(spec["high"]), bool(spec.get("log", False)), spec.get("type") == "int"
        )
    return space


def _valid_ranges(raw: dict, numeric: list[str]) -> dict[str, tuple[float | None, float | None]]:
    ranges = {}
    for name, spec in _get(raw, "scoring.valid_ranges", dict, {}).items():
        key = f"scoring.valid_ranges.{name}"
        if name not in numeric:
            raise UseCaseError(f"use case: {key}: {name} is not a numeric feature")
        if not isinstance(spec, dict) or not spec or set(spec) - {"min", "max"}:
            raise UseCaseError(f"use case: {key} must be a mapping with min and/or max")
        low, high = spec.get("min"), spec.get("max")
        if low is not None and high is not None and low > high:
            raise UseCaseError(f"use case: {key}: min {low} is above max {high}")
        ranges[name] = (None if low is None else float(low), None if high is None else float(high))
    return ranges


def parse_use_case(raw: dict) -> UseCase:
    """Build and check a UseCase from parsed YAML."""
    numeric = _identifiers(raw, "features.numeric")
    categorical = _identifiers(raw, "features.categorical", [])
    duplicated = sorted(set(numeric) & set(categorical))
    if duplicated:
        raise UseCaseError(f"use case: features {duplicated} are both numeric and categorical; keep one")
    drift_exclude = _get(raw, "monitoring.drift_exclude", list, [])
    unknown = sorted(set(drift_exclude) - set(numeric) - set(categorical))
    if unknown:
        raise UseCaseError(f"use case: monitoring.drift_exclude names {unknown}, which are not features")
    for relation_key in ("feature_model", "label_model"):
        if not RELATION.match(_get(raw, relation_key, str)):
            raise UseCaseError(f"use case: '{relation_key}' must be 'schema.table'")
    train_start = _get(raw, "windows.train_start", date, None)
    train_days = _positive(raw, "windows.train_days", int, None)
    if (train_start is None) == (train_days is None):
        raise UseCaseError(
            "use case: set exactly one of windows.train_start (expanding window) and "
            "windows.train_days (rolling window)"
        )
    rule = _choice(raw, "decision.rule", THRESHOLD_RULES, "max_f1")
    fixed = _get(raw, "decision.threshold", (int, float), None)
    if rule == "fixed" and fixed is None:
        raise UseCaseError("use case: decision.rule 'fixed' needs decision.threshold (a probability)")
    use_case = UseCase(
        name=_identifier(_get(raw, "name", str), "name"),
        description=_get(raw, "description", str, ""),
        feature_model=raw["feature_model"],
        label_model=raw["label_model"],
        entity_key=_identifier(_get(raw, "entity_key", str), "entity_key"),
        partition_column=_identifier(_get(raw, "partition_column", str), "partition_column"),
        label=_identifier(_get(raw, "label", str), "label"),
        label_available_at=_identifier(_get(raw, "label_available_at", str), "label_available_at"),
        categorical_features=categorical,
        numeric_features=numeric,
        train_start=train_start,
        train_days=train_days,
        validation_days=_positive(raw, "windows.validation_days", int),
        test_days=_positive(raw, "windows.test_days", int),
        min_train_days=_positive(raw, "windows.min_train_days", int, 28),
        label_lag_days=_positive(raw, "windows.label_lag_days", int, 1),
        initial_as_of=_get(raw, "windows.initial_as_of", date),
        baseline_score=_identifier(_get(raw, "baseline.score_column", str), "baseline.score_column"),
        model_name=_identifier(_get(raw, "model.name", str), "model.name"),
        params=dict(_get(raw, "model.params", dict)),
        n_trials=_positive(raw, "tuning.n_trials", int),
        tuning_timeout_seconds=float(_positive(raw, "tuning.timeout_seconds", (int, float))),
        tuning_seed=_get(raw, "tuning.seed", int),
        tuning_metric=_choice(raw, "tuning.metric", TUNING_METRICS, "binary_logloss"),
        early_stopping_rounds=_positive(raw, "tuning.early_stopping_rounds", int),
        max_boost_round=_positive(raw, "tuning.max_boost_round", int),
        search_space=_search_space(raw),
        calibration=_choice(raw, "calibration", CALIBRATIONS, "none"),
        threshold_rule=rule,
        fixed_threshold=None if fixed is None else float(fixed),
        false_positive_cost=float(_positive(raw, "decision.false_positive_cost", (int, float), 1.0)),
        false_negative_cost=float(_positive(raw, "decision.false_negative_cost", (int, float), 1.0)),
        segment_columns=_identifiers(raw, "evaluation.segment_columns", []),
        min_segment_rows=_positive(raw, "evaluation.min_segment_rows", int, 200),
        reliability_bins=_positive(raw, "evaluation.reliability_bins", int, 10),
        gate_metric=_choice(raw, "gate.metric", HIGHER_IS_BETTER),
        min_lift_over_baseline=float(_get(raw, "gate.min_lift_over_baseline", (int, float))),
        max_drop_vs_champion=float(_get(raw, "gate.max_drop_vs_champion", (int, float))),
        max_segment_drop_vs_champion=float(_get(raw, "gate.max_segment_drop_vs_champion", (int, float))),
        max_unseen_level_share=float(_get(raw, "gate.max_unseen_level_share", (int, float), 0.05)),
        psi_bins=_positive(raw, "monitoring.psi_bins", int),
        drift_rules=_drift_rules(raw),
        min_rows=_positive(raw, "monitoring.min_rows", int),
        rolling_days=_positive(raw, "monitoring.rolling_days", int, 7),
        max_auc_drop=float(_positive(raw, "monitoring.max_auc_drop", (int, float), 0.05)),
        max_drifted_share=float(_positive(raw, "monitoring.drift.max_drifted_share", (int, float), 0.5)),
        max_null_share_increase=float(_positive(raw, "monitoring.drift.max_null_share_increase", (int, float), 0.05)),
        max_unseen_share=float(_positive(raw, "monitoring.drift.max_unseen_share", (int, float), 0.05)),
        monitoring_segments=_identifiers(raw, "monitoring.segment_columns", []),
        relabel_days=_positive(raw, "monitoring.relabel_days", int, 14),
        alert_close_after_days=_positive(raw, "monitoring.alert_close_after_days", int, 1),
        schedule_cron=_get(raw, "schedule.cron", str),
        schedule_timezone=_get(raw, "schedule.timezone", str),
        warehouse_cron=_get(raw, "schedule.warehouse_cron", str, "0 19 * * *"),
        partitions_start=_get(raw, "schedule.partitions_start", date),
        retraining_cadence=_choice(raw, "retraining.cadence", CADENCES),
        retraining_cooldown_days=_positive(raw, "retraining.cooldown_days", int),
        drift_exclude=drift_exclude,
        batch_rows=_positive(raw, "scoring.batch_rows", int, 100_000),
        reason_codes=_get(raw, "scoring.reason_codes", int, 3),
        max_invalid_share=float(_get(raw, "scoring.max_invalid_share", (int, float), 0.01)),
        valid_ranges=_valid_ranges(raw, numeric),
    )
    use_case.windows()  # the initial windows must be valid: fail at load, not at the first training
    return use_case


def _drift_rules(raw: dict) -> dict[str, DriftRule]:
    for old in ("psi_threshold", "max_drifted_share"):
        if old in (raw.get("monitoring") or {}):
            raise UseCaseError(
                f"use case: monitoring.{old} was replaced by monitoring.drift (method and threshold per kind of "
                "column, max_drifted_share); see use_cases/flight_delay.yml"
            )
    rules = {}
    for kind, (method, threshold) in DEFAULT_DRIFT_RULES.items():
        rule = _get(raw, f"monitoring.drift.{kind}", dict, {})
        unknown = sorted(set(rule) - {"method", "threshold"})
        if unknown:
            raise UseCaseError(f"use case: monitoring.drift.{kind} has unknown keys {unknown}; use method, threshold")
        rules[kind] = DriftRule(
            _choice(raw, f"monitoring.drift.{kind}.method", DRIFT_METHODS[kind], method),
            float(_positive(raw, f"monitoring.drift.{kind}.threshold", (int, float), threshold)),
        )
    return rules


def load_use_case(path: Path) -> UseCase:
    """Read and check the use-case YAML at ``path``."""
    if not path.exists():
        raise UseCaseError(f"use case file {path} does not exist (MLOPS_USE_CASE)")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise UseCaseError(f"use case file {path} must hold a mapping")
    return parse_use_case(raw)


def check_columns(use_case: UseCase, relation: str, columns: list[str], required: dict[str, list[str]]) -> None:
    """Fail naming the YAML key, the column and the relation when a configured column is missing."""
    problems = [
        f"{key}: {[c for c in names if c not in columns]}"
        for key, names in required.items()
        if any(c not in columns for c in names)
    ]
    if problems:
        raise UseCaseError(
            f"use case '{use_case.name}': {relation} has no column(s) named by "
            + "; ".join(problems)
            + "; fix those keys in the YAML or add the columns to the dbt model"
        )
