"""The use-case YAML is checked at load: a wrong key fails with the key and the fix named."""

from __future__ import annotations

import copy
import re
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


def test_the_shipped_use_case_loads_and_names_no_python():
    uc = load_use_case(PROJECT_ROOT / "use_cases" / "flight_delay.yml")
    assert uc.entity_key == "flight_id" and uc.partition_column == "flight_date"
    assert uc.train.end < uc.validation.start
    assert set(uc.categorical_features).isdisjoint(uc.numeric_features)
    assert uc.predictions_table == "predictions.flight_delay"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("entity_key", None, "missing key 'entity_key'"),
        ("gate.metric", "accuracy", "gate.metric 'accuracy' is unknown"),
        ("windows.validation.start", RAW["windows"]["train"]["end"], "must not overlap"),
        ("windows.train.end", RAW["windows"]["train"]["start"].replace(year=2012), "end is before start"),
        ("decision.rule", "fixed", "needs decision.threshold"),
        ("feature_model", "flight_features", "must be 'schema.table'"),
        ("label", "is late; drop table x", "not a plain SQL identifier"),
        ("monitoring.drift_exclude", ["wingspan"], "drift_exclude names ['wingspan']"),
    ],
)
def test_a_wrong_yaml_fails_with_the_key_named(path, value, message):
    with pytest.raises(UseCaseError, match=re.escape(message)):
        parse_use_case(_with(path, value))


def test_a_feature_both_numeric_and_categorical_is_refused():
    raw = _with("features.categorical", [*RAW["features"]["categorical"], "distance"])
    with pytest.raises(UseCaseError, match="both numeric and categorical"):
        parse_use_case(raw)


def test_a_missing_file_names_the_setting(tmp_path: Path):
    with pytest.raises(UseCaseError, match="MLOPS_USE_CASE"):
        load_use_case(tmp_path / "nope.yml")
