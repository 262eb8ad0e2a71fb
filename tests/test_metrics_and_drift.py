"""Metrics and PSI checked against hand-computed values and SciPy."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import mannwhitneyu

from dagster_project.drift import (
    NULL_BIN,
    OTHER_BIN,
    build_reference,
    categorical_shares,
    current_shares,
    numeric_shares,
    psi,
)
from dagster_project.metrics import (
    binary_metrics,
    decision_metrics,
    expected_calibration_error,
    max_f1_threshold,
    min_cost_threshold,
    reliability_table,
)


def test_psi_matches_a_hand_computed_value():
    reference, current = [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + 0 + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert psi(reference, current) == pytest.approx(expected)
    assert psi(reference, reference) == 0


def test_psi_of_an_empty_bin_is_finite():
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))


def test_numeric_bins_are_right_closed_with_a_null_bin():
    values = np.array([1.0, 2.0, 2.0, 3.0, np.nan])
    assert numeric_shares(values, [2.0]) == [0.6, 0.2, 0.2]


def test_categorical_shares_count_unseen_levels_and_nulls_apart():
    shares = categorical_shares(pl.Series(["a", "a", "b", "z", None]), ["a", "b", "c"])
    assert shares == {"a": 0.4, "b": 0.2, "c": 0.0, OTHER_BIN: 0.2, NULL_BIN: 0.2}


def test_a_sample_against_its_own_reference_has_zero_psi_and_a_shift_does_not():
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b", "c"], size=5000)})
    reference = build_reference(frame, ["x"], ["c"], bins=10)
    assert psi(reference["x"]["shares"], current_shares(reference["x"], frame.get_column("x"))) == 0
    shifted = pl.Series(rng.normal(loc=1.0, size=5000))
    assert psi(reference["x"]["shares"], current_shares(reference["x"], shifted)) > 0.2


def test_roc_auc_agrees_with_the_mann_whitney_statistic():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=500)
    p = np.clip(0.3 * y + rng.uniform(size=500) * 0.7, 0, 1)
    u = mannwhitneyu(p[y == 1], p[y == 0]).statistic
    metrics = binary_metrics(y, p)
    assert metrics["roc_auc"] == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))
    assert metrics["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert metrics["base_rate"] == pytest.approx(y.mean())


def test_a_single_class_day_has_no_roc_auc_and_says_why():
    metrics = binary_metrics(np.zeros(50), np.full(50, 0.2))
    assert metrics["roc_auc"] is None and metrics["status"] == "single_class"
    assert metrics["brier"] == pytest.approx(0.04)
    assert binary_metrics(np.array([]), np.array([]))["status"] == "no_labels"


def test_the_max_f1_threshold_is_the_best_cut_found_by_brute_force():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=300).astype(float)
    p = np.round(np.clip(0.4 * y + rng.uniform(size=300) * 0.6, 0, 1), 2)  # with ties
    best = max(decision_metrics(y, p, t)["f1"] for t in np.unique(p))
    assert decision_metrics(y, p, max_f1_threshold(y, p))["f1"] == pytest.approx(best)


def test_the_min_cost_threshold_is_the_cheapest_cut_found_by_brute_force():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300).astype(float)
    p = np.round(np.clip(0.4 * y + rng.uniform(size=300) * 0.6, 0, 1), 2)

    def cost(t: float) -> float:
        flagged = p >= t
        return 1.0 * np.sum(flagged & (y == 0)) + 3.0 * np.sum(~flagged & (y == 1))

    best = min(cost(t) for t in [*np.unique(p), 1.01])
    assert cost(min_cost_threshold(y, p, 1.0, 3.0)) == best


def test_ece_and_the_reliability_table_match_a_hand_computed_example():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    table = reliability_table(y, p, bins=10)
    assert [(r["bin"], r["n_rows"]) for r in table] == [(1, 3), (9, 3)]
    assert table[0]["observed_rate"] == pytest.approx(1 / 3)
    # |0.1 - 1/3| * 3/6 + |0.9 - 2/3| * 3/6
    assert expected_calibration_error(y, p, 10) == pytest.approx(abs(0.1 - 1 / 3) / 2 + abs(0.9 - 2 / 3) / 2)
