"""The use-case YAML is checked at load: a wrong key fails with the key and the fix named."""

from __future__ import annotations

import copy
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from dagster_project.settings import PROJECT_ROOT
from dagster_project.use_case import UseCaseError, load_use_case, parse_use_case

RAW = yaml.safe_load((PROJECT_ROOT / "use_cases" / "flight_delay.yml").read_text())


def _with(path: str, value) -> dict:
    raw = copy.deepcopy(RAW)
    node = raw
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


def test_the_shipped_use_case_loads_with_consecutive_windows():
    uc = load_use_case(PROJECT_ROOT / "use_cases" / "flight_delay.yml")
    assert uc.entity_key == "flight_id" and uc.partition_column == "flight_date"
    assert set(uc.categorical_features).isdisjoint(uc.numeric_features)
    assert uc.predictions_table == "predictions.flight_delay"
    w = uc.windows()
    assert (w.train.start, w.train.end) == (date(2013, 1, 1), date(2013, 4, 30))
    assert (w.validation.start, w.validation.end) == (date(2013, 5, 1), date(2013, 5, 31))
    assert (w.test.start, w.test.end) == (date(2013, 6, 1), date(2013, 6, 30))


def test_later_trainings_slide_the_windows_and_keep_them_consecutive():
    uc = load_use_case(PROJECT_ROOT / "use_cases" / "flight_delay.yml")
    for as_of in uc.retraining_dates(date(2013, 7, 1), date(2013, 12, 31)):
        w = uc.windows(as_of)
        assert w.train.end < w.validation.start and w.validation.end < w.test.start and w.test.end < as_of
        assert (w.validation.start - w.train.end).days == (w.test.start - w.validation.end).days == 1
        assert w.test.end == as_of - timedelta(days=1) and w.test.days == uc.test_days
    assert [d.month for d in uc.retraining_dates(date(2013, 7, 1), date(2013, 12, 31))] == [7, 8, 9, 10, 11, 12]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("entity_key", None, "missing key 'entity_key'"),
        ("gate.metric", "accuracy", "gate.metric 'accuracy' is unknown"),
        ("windows.train_days", 10, "fewer than windows.min_train_days"),
        ("windows.test_days", 0, "'windows.test_days' must be positive"),
        ("windows.train_start", date(2013, 1, 1), "set exactly one of windows.train_start"),
        ("decision.rule", "fixed", "needs decision.threshold"),
        ("feature_model", "flight_features", "must be 'schema.table'"),
        ("label", "is late; drop table x", "not a plain SQL identifier"),
        ("monitoring.drift_exclude", ["wingspan"], "drift_exclude names ['wingspan']"),
        ("tuning.search_space.num_leaves", {"low": 100, "high": 10}, "low 100 must be below high 10"),
        ("calibration", "platt", "calibration 'platt' is unknown"),
        ("retraining.cadence", "hourly", "retraining.cadence 'hourly' is unknown"),
        ("scoring.valid_ranges", {"wingspan": {"min": 0}}, "wingspan is not a numeric feature"),
        ("scoring.valid_ranges", {"distance": {"min": 5, "max": 1}}, "min 5 is above max 1"),
    ],
)
def test_a_wrong_yaml_fails_with_the_key_named(path, value, message):
    with pytest.raises(UseCaseError, match=re.escape(message)):
        parse_use_case(_with(path, value))


def test_an_expanding_window_that_starts_after_validation_is_refused_as_overlapping():
    raw = _with("windows.train_start", date(2013, 6, 15))
    del raw["windows"]["train_days"]
    with pytest.raises(UseCaseError, match="the windows would overlap"):
        parse_use_case(raw)


def test_a_feature_both_numeric_and_categorical_is_refused():
    raw = _with("features.categorical", [*RAW["features"]["categorical"], "distance"])
    with pytest.raises(UseCaseError, match="both numeric and categorical"):
        parse_use_case(raw)


def test_a_missing_file_names_the_setting(tmp_path: Path):
    with pytest.raises(UseCaseError, match="MLOPS_USE_CASE"):
        load_use_case(tmp_path / "nope.yml")
