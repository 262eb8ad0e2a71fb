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


BASELINES = {"baseline_route": {"roc_auc": 0.60}, "baseline_rate": {"roc_auc": 0.5}}


def _segment(scorer: str, value: str, auc: float, gated: bool = True) -> dict:
    return {"scorer": scorer, "segment_column": "carrier", "segment_value": value, "gated": gated, "roc_auc": auc}


def _failed(decision) -> list[str]:
    return [c.name for c in decision.checks if not c.passed]


def test_a_candidate_beating_the_best_baseline_with_no_champion_passes():
    decision = judge(UC, {"roc_auc": 0.75}, BASELINES, None, [], None, [])
    assert decision.passed and _failed(decision) == []
    assert decision.checks[0].value == 0.15 and decision.checks[0].threshold == UC.min_lift_over_baseline


def test_a_candidate_too_close_to_the_best_baseline_is_rejected():
    decision = judge(UC, {"roc_auc": 0.61}, BASELINES, None, [], None, [])
    assert _failed(decision) == ["beats_baseline"]
    assert "baseline_route" in decision.checks[0].detail


def test_a_candidate_behind_the_champion_on_the_same_rows_is_rejected():
    decision = judge(UC, {"roc_auc": 0.74}, BASELINES, {"roc_auc": 0.76}, [], [], [])
    assert _failed(decision) == ["not_behind_champion"]
    assert decision.checks[1].value == 0.02


def test_a_candidate_behind_the_champion_in_one_large_segment_is_rejected():
    segments = [
        _segment("candidate", "AA", 0.70),
        _segment("candidate", "UA", 0.60),
        _segment("candidate", "OO", 0.40, gated=False),
    ]
    champion = [_segment("champion", "AA", 0.69), _segment("champion", "UA", 0.70), _segment("champion", "OO", 0.90)]
    decision = judge(UC, {"roc_auc": 0.75}, BASELINES, {"roc_auc": 0.74}, segments, champion, [])
    assert _failed(decision) == ["segments_not_behind_champion"]
    assert "carrier=UA" in decision.checks[2].detail  # the small segment OO is not gated


def test_a_schema_mismatch_is_rejected():
    decision = judge(UC, {"roc_auc": 0.75}, BASELINES, None, [], None, ["distance is VARCHAR in features"])
    assert _failed(decision) == ["input_schema_matches"]


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
