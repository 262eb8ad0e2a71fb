"""Training a LightGBM candidate on the training window and judging it on the later validation window."""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import polars as pl

from dagster_project.dataset import categorical_levels, encode
from dagster_project.drift import PREDICTION, build_reference, numeric_reference
from dagster_project.metrics import binary_metrics, decision_metrics, max_f1_threshold
from dagster_project.use_case import HIGHER_IS_BETTER, UseCase

MIN_TRAINING_ROWS = 1000


class TrainingDataError(ValueError):
    """The training window cannot produce a model (too few rows, one class); nothing is registered."""


@dataclass
class Signature:
    """What the model expects as input: feature order, numeric columns, categorical levels."""

    numeric: list[str]
    categorical_levels: dict[str, list[str]]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical_levels]

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "categorical_levels": self.categorical_levels}

    @classmethod
    def from_dict(cls, data: dict) -> Signature:
        return cls(numeric=list(data["numeric"]), categorical_levels=dict(data["categorical_levels"]))

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return encode(frame, self.numeric, self.categorical_levels)


@dataclass
class Candidate:
    booster: lgb.Booster
    signature: Signature
    threshold: float
    metrics: dict
    baseline_metrics: dict
    reference_profile: dict
    train_rows: int
    train_base_rate: float
    validation_scores: np.ndarray = field(repr=False)


def check_training_data(uc: UseCase, frame: pl.DataFrame, window: str) -> None:
    if frame.height < MIN_TRAINING_ROWS:
        raise TrainingDataError(
            f"{uc.feature_model}: {window} window has {frame.height} labelled rows, fewer than "
            f"{MIN_TRAINING_ROWS}; widen windows.{window} in the use-case YAML"
        )
    classes = frame.get_column(uc.label).drop_nulls().unique().to_list()
    if len(classes) < 2:
        raise TrainingDataError(
            f"{uc.label_model}.{uc.label}: {window} window holds one class only ({classes}); a classifier "
            f"cannot be trained or judged on it"
        )
    all_null = [c for c in uc.features if frame.get_column(c).null_count() == frame.height]
    if all_null:
        raise TrainingDataError(f"{uc.feature_model}: features {all_null} are null in every {window} row")


def baseline_scores(uc: UseCase, frame: pl.DataFrame, fill: float) -> np.ndarray:
    """The naive score: the configured column, its unknowns filled with the training base rate."""
    return frame.get_column(uc.baseline_score).cast(pl.Float64).fill_null(fill).to_numpy()


def train_candidate(uc: UseCase, train: pl.DataFrame, validation: pl.DataFrame) -> Candidate:
    """Fit on ``train``, choose the threshold and measure on ``validation``, profile ``train`` for drift."""
    check_training_data(uc, train, "train")
    check_training_data(uc, validation, "validation")
    signature = Signature(uc.numeric_features, categorical_levels(train, uc.categorical_features))
    y_train = train.get_column(uc.label).to_numpy()
    categorical_index = list(range(len(signature.numeric), len(signature.features)))
    dataset = lgb.Dataset(
        signature.matrix(train),
        label=y_train,
        feature_name=signature.features,
        categorical_feature=categorical_index,
        free_raw_data=True,
    )
    booster = lgb.train(dict(uc.params), dataset, num_boost_round=uc.num_boost_round)

    y_valid = validation.get_column(uc.label).to_numpy()
    scores = booster.predict(signature.matrix(validation))
    threshold = uc.fixed_threshold if uc.threshold_rule == "fixed" else max_f1_threshold(y_valid, scores)
    train_base_rate = float(y_train.mean())
    metrics = binary_metrics(y_valid, scores) | decision_metrics(y_valid, scores, threshold)
    baseline = baseline_scores(uc, validation, train_base_rate)
    baseline_threshold = max_f1_threshold(y_valid, baseline)
    baseline_metrics = binary_metrics(y_valid, baseline) | decision_metrics(y_valid, baseline, baseline_threshold)

    profile = build_reference(train, uc.numeric_features, uc.categorical_features, uc.psi_bins)
    # The score's reference is the validation window: the first data the model scored unseen.
    profile[PREDICTION] = numeric_reference(scores, uc.psi_bins)
    return Candidate(
        booster=booster,
        signature=signature,
        threshold=float(threshold),
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        reference_profile=profile,
        train_rows=train.height,
        train_base_rate=train_base_rate,
        validation_scores=scores,
    )


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]
    values: dict[str, float | None]


def judge(uc: UseCase, metrics: dict, baseline_metrics: dict, champion_metrics: dict | None) -> GateDecision:
    """Promote only if the candidate beats the baseline by the margin and does not trail the champion.

    ``champion_metrics`` must be the champion scored on the same validation rows.
    """
    name = uc.gate_metric
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    value, base = metrics.get(name), baseline_metrics.get(name)
    reasons: list[str] = []
    passed = True
    if value is None or base is None:
        return GateDecision(False, [f"{name} undefined on the validation window"], {name: value})
    lift = sign * (value - base)
    if lift < uc.min_lift_over_baseline:
        passed = False
        reasons.append(
            f"{name} {value:.4f} does not beat the baseline {base:.4f} by "
            f"{uc.min_lift_over_baseline} (lift {lift:+.4f})"
        )
    else:
        reasons.append(
            f"{name} {value:.4f} beats the baseline {base:.4f} by {lift:+.4f} (needed {uc.min_lift_over_baseline})"
        )
    champion = None if champion_metrics is None else champion_metrics.get(name)
    if champion_metrics is None:
        reasons.append("no current champion")
    elif champion is None:
        reasons.append(f"champion {name} undefined on the validation window; not compared")
    else:
        drop = sign * (champion - value)
        if drop > uc.max_drop_vs_champion:
            passed = False
            reasons.append(
                f"{name} {value:.4f} falls behind the champion's {champion:.4f} by {drop:.4f} "
                f"(tolerance {uc.max_drop_vs_champion})"
            )
        else:
            reasons.append(
                f"{name} {value:.4f} is not behind the champion's {champion:.4f} (tolerance {uc.max_drop_vs_champion})"
            )
    return GateDecision(
        passed,
        reasons,
        {
            name: value,
            f"baseline_{name}": base,
            f"champion_{name}": champion,
            "min_lift_over_baseline": uc.min_lift_over_baseline,
            "max_drop_vs_champion": uc.max_drop_vs_champion,
        },
    )
