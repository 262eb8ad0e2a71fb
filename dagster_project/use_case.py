"""The use case as data: everything the ML, scoring and monitoring code knows comes from one YAML file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "brier": False, "log_loss": False}
THRESHOLD_RULES = {"max_f1", "fixed"}


class UseCaseError(ValueError):
    """The use-case YAML is wrong; the message names the key and the fix."""


@dataclass(frozen=True)
class Window:
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise UseCaseError(f"window {self.start}..{self.end}: end is before start")


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
    train: Window
    validation: Window
    baseline_score: str
    model_name: str
    num_boost_round: int
    params: dict[str, Any]
    gate_metric: str
    min_lift_over_baseline: float
    max_drop_vs_champion: float
    threshold_rule: str
    fixed_threshold: float | None
    psi_bins: int
    psi_threshold: float
    min_rows: int
    schedule_cron: str
    schedule_timezone: str
    partitions_start: date
    segment_columns: list[str] = field(default_factory=list)
    drift_exclude: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    @property
    def predictions_table(self) -> str:
        return f"predictions.{self.name}"

    @property
    def training_cutoff(self) -> date:
        """The day training runs: labels of both windows must have landed by then."""
        return date.fromordinal(self.validation.end.toordinal() + 1)


def _get(raw: dict, dotted: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise UseCaseError(f"use case: missing key '{dotted}'; add it to the YAML")
        node = node[part]
    if not isinstance(node, kind):
        raise UseCaseError(f"use case: key '{dotted}' must be {kind}, got {type(node).__name__} {node!r}")
    return node


def _window(raw: dict, key: str) -> Window:
    start, end = _get(raw, f"windows.{key}.start", date), _get(raw, f"windows.{key}.end", date)
    try:
        return Window(start, end)
    except UseCaseError as error:
        raise UseCaseError(f"use case: windows.{key}: {error}; swap start and end") from None


def _identifier(value: str, key: str) -> str:
    if not IDENTIFIER.match(value):
        raise UseCaseError(f"use case: '{key}' = {value!r} is not a plain SQL identifier")
    return value


def parse_use_case(raw: dict) -> UseCase:
    """Build and check a UseCase from parsed YAML."""
    numeric = [_identifier(c, "features.numeric") for c in _get(raw, "features.numeric", list)]
    categorical = [_identifier(c, "features.categorical") for c in _get(raw, "features.categorical", list, [])]
    drift_exclude = _get(raw, "monitoring.drift_exclude", list, [])
    unknown = sorted(set(drift_exclude) - set(numeric) - set(categorical))
    if unknown:
        raise UseCaseError(f"use case: monitoring.drift_exclude names {unknown}, which are not features")
    duplicated = sorted(set(numeric) & set(categorical))
    if duplicated:
        raise UseCaseError(f"use case: features {duplicated} are both numeric and categorical; keep one")
    train, validation = _window(raw, "train"), _window(raw, "validation")
    if validation.start <= train.end:
        raise UseCaseError(
            f"use case: windows.validation starts {validation.start}, not after windows.train ends "
            f"{train.end}; windows must not overlap"
        )
    metric = _get(raw, "gate.metric", str)
    if metric not in HIGHER_IS_BETTER:
        raise UseCaseError(f"use case: gate.metric '{metric}' is unknown; use one of {sorted(HIGHER_IS_BETTER)}")
    rule = _get(raw, "decision.rule", str, "max_f1")
    if rule not in THRESHOLD_RULES:
        raise UseCaseError(f"use case: decision.rule '{rule}' is unknown; use one of {sorted(THRESHOLD_RULES)}")
    fixed = _get(raw, "decision.threshold", (int, float), None)
    if rule == "fixed" and fixed is None:
        raise UseCaseError("use case: decision.rule 'fixed' needs decision.threshold (a probability)")
    for relation_key in ("feature_model", "label_model"):
        if not RELATION.match(_get(raw, relation_key, str)):
            raise UseCaseError(f"use case: '{relation_key}' must be 'schema.table'")
    return UseCase(
        name=_identifier(_get(raw, "name", str), "name"),
        description=_get(raw, "description", str, ""),
        feature_model=raw["feature_model"],
        label_model=raw["label_model"],
        entity_key=_identifier(_get(raw, "entity_key", str), "entity_key"),
        partition_column=_identifier(_get(raw, "partition_column", str), "partition_column"),
        label=_identifier(_get(raw, "label", str), "label"),
        label_available_at=_identifier(_get(raw, "label_available_at", str), "label_available_at"),
        segment_columns=[_identifier(c, "segment_columns") for c in _get(raw, "segment_columns", list, [])],
        categorical_features=categorical,
        numeric_features=numeric,
        train=train,
        validation=validation,
        baseline_score=_identifier(_get(raw, "baseline.score_column", str), "baseline.score_column"),
        model_name=_identifier(_get(raw, "model.name", str), "model.name"),
        num_boost_round=_get(raw, "model.num_boost_round", int),
        params=dict(_get(raw, "model.params", dict)),
        gate_metric=metric,
        min_lift_over_baseline=float(_get(raw, "gate.min_lift_over_baseline", (int, float))),
        max_drop_vs_champion=float(_get(raw, "gate.max_drop_vs_champion", (int, float))),
        threshold_rule=rule,
        fixed_threshold=None if fixed is None else float(fixed),
        psi_bins=_get(raw, "monitoring.psi_bins", int),
        psi_threshold=float(_get(raw, "monitoring.psi_threshold", (int, float))),
        min_rows=_get(raw, "monitoring.min_rows", int),
        schedule_cron=_get(raw, "schedule.cron", str),
        schedule_timezone=_get(raw, "schedule.timezone", str),
        partitions_start=_get(raw, "schedule.partitions_start", date),
        drift_exclude=drift_exclude,
    )


def load_use_case(path: Path) -> UseCase:
    """Read and check the use-case YAML at ``path``."""
    if not path.exists():
        raise UseCaseError(f"use case file {path} does not exist (MLOPS_USE_CASE)")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise UseCaseError(f"use case file {path} must hold a mapping")
    return parse_use_case(raw)


def check_columns(use_case: UseCase, relation: str, columns: list[str], required: list[str]) -> None:
    """Fail with the YAML key's column and the relation named when a configured column is missing."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise UseCaseError(
            f"use case '{use_case.name}': {relation} has no column(s) {missing}; fix the YAML or the dbt model"
        )
