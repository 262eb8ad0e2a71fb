"""Metrics checked against hand-computed values, brute force and SciPy (drift: tests/test_drift_sql.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from dagster_project.metrics import (
    binary_metrics,
    decision_metrics,
    expected_calibration_error,
    max_f1_threshold,
    min_cost_threshold,
    reliability_table,
)


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
