"""The gate's decision rule and the refusal of training data that cannot make a model."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from dagster_project.settings import PROJECT_ROOT
from dagster_project.training import TrainingDataError, check_training_data, judge
from dagster_project.use_case import load_use_case

UC = load_use_case(PROJECT_ROOT / "use_cases" / "flight_delay.yml")


def test_a_candidate_beating_the_baseline_with_no_champion_passes():
    decision = judge(UC, {"roc_auc": 0.75}, {"roc_auc": 0.60}, None)
    assert decision.passed
    assert "no current champion" in decision.reasons[-1]


def test_a_candidate_too_close_to_the_baseline_is_rejected():
    decision = judge(UC, {"roc_auc": 0.61}, {"roc_auc": 0.60}, None)
    assert not decision.passed
    assert "does not beat the baseline" in decision.reasons[0]


def test_a_candidate_behind_the_champion_on_the_same_rows_is_rejected():
    decision = judge(UC, {"roc_auc": 0.74}, {"roc_auc": 0.60}, {"roc_auc": 0.76})
    assert not decision.passed
    assert "falls behind the champion" in decision.reasons[-1]
    assert decision.values["champion_roc_auc"] == 0.76


def _frame(rows: int, label: float) -> pl.DataFrame:
    columns = {c: np.zeros(rows) for c in UC.numeric_features}
    columns |= {c: ["x"] * rows for c in UC.categorical_features}
    return pl.DataFrame(columns | {UC.label: np.full(rows, label), UC.partition_column: [date(2013, 1, 1)] * rows})


def test_single_class_training_data_is_refused():
    with pytest.raises(TrainingDataError, match="one class only"):
        check_training_data(UC, _frame(2000, 0.0), "train")


def test_too_few_rows_are_refused():
    with pytest.raises(TrainingDataError, match="fewer than"):
        check_training_data(UC, _frame(10, 0.0), "train")


def test_an_all_null_feature_is_refused():
    frame = _frame(2000, 0.0).with_columns(
        pl.Series(UC.label, np.arange(2000) % 2, dtype=pl.Float64), pl.lit(None, pl.Float64).alias("distance")
    )
    with pytest.raises(TrainingDataError, match="distance"):
        check_training_data(UC, frame, "train")
