"""Training a LightGBM candidate: Optuna tuning on the validation window, calibration, a threshold, and an
evaluation on the later test window against two naive baselines, overall and per segment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import optuna
import polars as pl
from optuna_integration import LightGBMPruningCallback
from sklearn.isotonic import IsotonicRegression

from dagster_project.dataset import categorical_levels, encode
from dagster_project.metrics import (
    binary_metrics,
    decision_metrics,
    expected_calibration_error,
    max_f1_threshold,
    min_cost_threshold,
    reliability_table,
)
from dagster_project.use_case import HIGHER_IS_BETTER, TUNING_METRICS, UseCase

MIN_TRAINING_ROWS = 1000

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TrainingDataError(ValueError):
    """The training data cannot produce a model (too few rows, one class); nothing is registered."""


@dataclass
class Signature:
    """What the model expects: feature order, numeric columns, categorical levels, warehouse dtypes."""

    numeric: list[str]
    categorical_levels: dict[str, list[str]]
    dtypes: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical_levels]

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "categorical_levels": self.categorical_levels, "dtypes": self.dtypes}

    @classmethod
    def from_dict(cls, data: dict) -> Signature:
        return cls(list(data["numeric"]), dict(data["categorical_levels"]), dict(data.get("dtypes", {})))

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return encode(frame, self.numeric, self.categorical_levels)


@dataclass
class Calibrator:
    """A monotone map from raw scores to probabilities (isotonic), stored as JSON knots; identity if empty."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.x, self.y) if self.x else scores

    @classmethod
    def fit(cls, method: str, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
        if method == "none":
            return cls()
        isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
        return cls(isotonic.X_thresholds_.tolist(), isotonic.y_thresholds_.tolist())


@dataclass
class Scorer:
    """Booster, signature and calibrator: the calibrated probability of each row of a frame."""

    booster: lgb.Booster
    signature: Signature
    calibrator: Calibrator

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return self.calibrator.apply(self.booster.predict(self.signature.matrix(frame)))


@dataclass
class Tuning:
    best_params: dict
    best_iteration: int
    best_value: float
    trials: list[dict]
    seconds: float


@dataclass
class Candidate:
    scorer: Scorer
    threshold: float
    tuning: Tuning
    metrics: dict  # test window
    validation_metrics: dict
    baseline_metrics: dict[str, dict]  # scorer -> test-window metrics
    segment_metrics: list[dict]
    reliability: list[dict]
    rows: dict[str, int]
    train_base_rate: float
    validation_scores: np.ndarray = field(repr=False)


def check_training_data(uc: UseCase, frame: pl.DataFrame, window: str) -> None:
    if frame.height < MIN_TRAINING_ROWS:
        raise TrainingDataError(
            f"{uc.feature_model}: {window} window has {frame.height} labelled rows, fewer than "
            f"{MIN_TRAINING_ROWS}; widen the windows in the use-case YAML or train later"
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


def _suggest(trial: optuna.Trial, uc: UseCase) -> dict:
    params = {}
    for name, dim in uc.search_space.items():
        if dim.integer:
            params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return params


def tune(uc: UseCase, train: lgb.Dataset, validation: lgb.Dataset) -> Tuning:
    """Optuna TPE search; each trial early-stops on the validation window and may be pruned there."""
    started = time.monotonic()
    metric = uc.tuning_metric

    def objective(trial: optuna.Trial) -> float:
        params = dict(uc.params) | _suggest(trial, uc) | {"metric": metric}
        booster = lgb.train(
            params,
            train,
            num_boost_round=uc.max_boost_round,
            valid_sets=[validation],
            valid_names=["validation"],
            callbacks=[
                lgb.early_stopping(uc.early_stopping_rounds, verbose=False),
                LightGBMPruningCallback(trial, metric, valid_name="validation"),
            ],
        )
        trial.set_user_attr("best_iteration", booster.best_iteration)
        return float(booster.best_score["validation"][metric])

    study = optuna.create_study(
        direction="maximize" if TUNING_METRICS[metric] else "minimize",
        sampler=optuna.samplers.TPESampler(seed=uc.tuning_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=uc.early_stopping_rounds),
    )
    study.optimize(objective, n_trials=uc.n_trials, timeout=uc.tuning_timeout_seconds)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise TrainingDataError(
            f"tuning: no trial completed within tuning.timeout_seconds = {uc.tuning_timeout_seconds}; raise it"
        )
    trials = [
        {
            "trial": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "best_iteration": t.user_attrs.get("best_iteration"),
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None,
        }
        for t in study.trials
    ]
    best = study.best_trial
    return Tuning(
        best.params, int(best.user_attrs["best_iteration"]), float(best.value), trials, time.monotonic() - started
    )


def choose_threshold(uc: UseCase, y: np.ndarray, p: np.ndarray) -> float:
    if uc.threshold_rule == "fixed":
        return float(uc.fixed_threshold)
    if uc.threshold_rule == "min_cost":
        return min_cost_threshold(y, p, uc.false_positive_cost, uc.false_negative_cost)
    return max_f1_threshold(y, p)


def evaluate(uc: UseCase, y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Every metric of one scorer on one window, at its decision threshold."""
    return (
        binary_metrics(y, p)
        | decision_metrics(y, p, threshold)
        | {"ece": expected_calibration_error(y, p, uc.reliability_bins), "threshold": threshold}
    )


def mean_daily_roc_auc(days: pl.Series, y: np.ndarray, p: np.ndarray) -> float | None:
    """The mean of each day's ROC-AUC: what daily monitoring measures, lower than one window-wide ROC-AUC
    because a window also ranks days with different base rates against each other."""
    values = [
        binary_metrics(y[mask], p[mask])["roc_auc"]
        for day in days.unique().to_list()
        if (mask := (days == day).to_numpy()).any()
    ]
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def segment_metrics(
    uc: UseCase, frame: pl.DataFrame, y: np.ndarray, scores: dict[str, np.ndarray], thresholds: dict[str, float]
) -> list[dict]:
    """The metrics of every scorer per value of every segment column (``gated`` if the segment is large)."""
    rows = []
    for column in uc.segment_columns:
        values = frame.get_column(column).cast(pl.String).fill_null("(null)").to_numpy()
        for value in np.unique(values):
            mask = values == value
            for scorer, p in scores.items():
                metrics = evaluate(uc, y[mask], p[mask], thresholds[scorer])
                rows.append(
                    {
                        "scorer": scorer,
                        "segment_column": column,
                        "segment_value": str(value),
                        "gated": int(mask.sum()) >= uc.min_segment_rows,
                    }
                    | metrics
                )
    return rows


def baseline_scores(uc: UseCase, frame: pl.DataFrame, train_base_rate: float) -> dict[str, np.ndarray]:
    """The naive scores: the configured trailing rate (unknowns get the base rate), and the base rate."""
    route = frame.get_column(uc.baseline_score).cast(pl.Float64).fill_null(train_base_rate).to_numpy()
    return {"baseline_route": route, "baseline_rate": np.full(frame.height, train_base_rate)}


def train_candidate(
    uc: UseCase, train: pl.DataFrame, validation: pl.DataFrame, test: pl.DataFrame, dtypes: dict[str, str]
) -> Candidate:
    """Tune and fit on ``train``, calibrate and choose the threshold on ``validation``, judge on ``test``."""
    for frame, window in ((train, "train"), (validation, "validation"), (test, "test")):
        check_training_data(uc, frame, window)
    signature = Signature(
        uc.numeric_features, categorical_levels(train, uc.categorical_features), {c: dtypes[c] for c in uc.features}
    )
    categorical_index = list(range(len(signature.numeric), len(signature.features)))
    y_train = train.get_column(uc.label).to_numpy()
    y_valid = validation.get_column(uc.label).to_numpy()
    y_test = test.get_column(uc.label).to_numpy()
    train_set = lgb.Dataset(
        signature.matrix(train),
        label=y_train,
        feature_name=signature.features,
        categorical_feature=categorical_index,
        free_raw_data=False,
        # Trials vary min_data_in_leaf on one Dataset, which LightGBM refuses while pre-filtering features.
        params={"feature_pre_filter": False},
    )
    valid_set = lgb.Dataset(
        signature.matrix(validation), label=y_valid, reference=train_set, params={"feature_pre_filter": False}
    )
    tuning = tune(uc, train_set, valid_set)
    booster = lgb.train(dict(uc.params) | tuning.best_params, train_set, num_boost_round=tuning.best_iteration)

    raw_valid = booster.predict(signature.matrix(validation))
    calibrator = Calibrator.fit(uc.calibration, raw_valid, y_valid)
    scorer = Scorer(booster, signature, calibrator)
    p_valid = calibrator.apply(raw_valid)
    threshold = choose_threshold(uc, y_valid, p_valid)
    p_test = scorer.predict(test)

    train_base_rate = float(y_train.mean())
    valid_baselines = baseline_scores(uc, validation, train_base_rate)
    test_scores = {"candidate": p_test} | baseline_scores(uc, test, train_base_rate)
    thresholds = {"candidate": threshold} | {
        name: choose_threshold(uc, y_valid, p) for name, p in valid_baselines.items()
    }
    metrics = {name: evaluate(uc, y_test, p, thresholds[name]) for name, p in test_scores.items()}
    metrics["candidate"]["daily_roc_auc"] = mean_daily_roc_auc(test.get_column(uc.partition_column), y_test, p_test)

    return Candidate(
        scorer=scorer,
        threshold=threshold,
        tuning=tuning,
        metrics=metrics["candidate"],
        validation_metrics=evaluate(uc, y_valid, p_valid, threshold),
        baseline_metrics={k: v for k, v in metrics.items() if k != "candidate"},
        segment_metrics=segment_metrics(uc, test, y_test, test_scores, thresholds),
        reliability=reliability_table(y_test, p_test, uc.reliability_bins),
        validation_scores=p_valid,
        rows={"train": train.height, "validation": validation.height, "test": test.height},
        train_base_rate=train_base_rate,
    )


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    value: float | str | None
    threshold: float | str | None
    detail: str


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: list[GateCheck]

    @property
    def reasons(self) -> list[str]:
        return [f"{'ok' if c.passed else 'FAILED'}: {c.detail}" for c in self.checks]


def best_baseline(uc: UseCase, baselines: dict[str, dict]) -> tuple[str, float | None]:
    sign = 1.0 if HIGHER_IS_BETTER[uc.gate_metric] else -1.0
    defined = {k: v[uc.gate_metric] for k, v in baselines.items() if v.get(uc.gate_metric) is not None}
    if not defined:
        return "none", None
    name = max(defined, key=lambda k: sign * defined[k])
    return name, defined[name]


def judge(
    uc: UseCase,
    metrics: dict,
    baselines: dict[str, dict],
    champion: dict | None,
    segments: list[dict],
    champion_segments: list[dict] | None,
    schema_problems: list[str],
) -> GateDecision:
    """The gate: (a) beat the best baseline by the margin, (b) not trail the champion on the same test rows,
    overall or in any segment with enough rows, (c) an input schema the scoring feed matches."""
    name = uc.gate_metric
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    value = metrics.get(name)
    checks = []
    base_name, base = best_baseline(uc, baselines)
    if value is None or base is None:
        checks.append(GateCheck("beats_baseline", False, value, base, f"{name} undefined on the test window"))
    else:
        lift = sign * (value - base)
        checks.append(
            GateCheck(
                "beats_baseline",
                lift >= uc.min_lift_over_baseline,
                round(lift, 6),
                uc.min_lift_over_baseline,
                f"{name} {value:.4f} vs best baseline {base_name} {base:.4f}: lift {lift:+.4f}, needed "
                f"{uc.min_lift_over_baseline}",
            )
        )
    if champion is None:
        checks.append(GateCheck("not_behind_champion", True, None, uc.max_drop_vs_champion, "no current champion"))
    else:
        held = champion.get(name)
        drop = None if value is None or held is None else sign * (held - value)
        checks.append(
            GateCheck(
                "not_behind_champion",
                drop is not None and drop <= uc.max_drop_vs_champion,
                None if drop is None else round(drop, 6),
                uc.max_drop_vs_champion,
                f"{name} {value} vs champion {held} on the same test rows: drop {drop}, tolerance "
                f"{uc.max_drop_vs_champion}",
            )
        )
        held_by_segment = {(s["segment_column"], s["segment_value"]): s.get(name) for s in champion_segments or []}
        worst: tuple[float, str] | None = None
        for s in segments:
            if s["scorer"] != "candidate" or not s["gated"] or s.get(name) is None:
                continue
            held = held_by_segment.get((s["segment_column"], s["segment_value"]))
            if held is not None:
                seg_drop = sign * (held - s[name])
                if worst is None or seg_drop > worst[0]:
                    worst = (seg_drop, f"{s['segment_column']}={s['segment_value']}")
        checks.append(
            GateCheck(
                "segments_not_behind_champion",
                worst is None or worst[0] <= uc.max_segment_drop_vs_champion,
                None if worst is None else round(worst[0], 6),
                uc.max_segment_drop_vs_champion,
                "no gated segment"
                if worst is None
                else f"worst segment {worst[1]}: {name} drop {worst[0]:+.4f} vs champion, tolerance "
                f"{uc.max_segment_drop_vs_champion}",
            )
        )
    checks.append(
        GateCheck(
            "input_schema_matches",
            not schema_problems,
            len(schema_problems),
            0,
            "input schema matches the scoring feed" if not schema_problems else "; ".join(schema_problems),
        )
    )
    return GateDecision(all(c.passed for c in checks), checks)
