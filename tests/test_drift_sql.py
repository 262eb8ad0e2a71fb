"""Drift statistics computed in DuckDB, checked against hand-computed values and SciPy."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from dagster_project.drift_sql import (
    PREDICTION,
    PSI_FLOOR,
    feature_drift,
    prediction_drift,
    store_prediction_reference,
    store_reference,
)


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def _rows(con: duckdb.DuckDBPyConnection, name: str, columns: dict) -> str:
    con.register(name, pa.table(columns))
    return f"select * from {name}"


def _by_feature(table: pa.Table) -> dict[str, dict]:
    return {row["feature"]: row for row in table.to_pylist()}


def _psi(p: list[float], q: list[float]) -> float:
    floored = [(max(a, PSI_FLOOR), max(b, PSI_FLOOR)) for a, b in zip(p, q, strict=True)]
    return sum((b - a) * math.log(b / a) for a, b in floored)


def test_psi_and_js_match_a_hand_computed_example(con):
    # Two bins split at the reference median (rounded up to the fine grid: between 5 and 6), plus the null
    # bin: reference shares 0.5, 0.5, 0; current shares 0.3, 0.5, 0.2.
    reference = _rows(con, "ref", {"x": [float(v) for v in range(1, 11)]})
    current = _rows(con, "cur", {"x": [1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, None, None]})
    store_reference(con, reference, ["x"], [], "m", 1, bins=2)

    edge = con.execute("select upper from ml.reference_numeric_bins where bin_index = 0").fetchone()[0]
    assert 5 < edge < 6
    row = _by_feature(feature_drift(con, current, "m", 1, ["x"], []))["x"]

    expected_psi = (0.3 - 0.5) * math.log(0.3 / 0.5) + 0.0 + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    assert row["psi"] == pytest.approx(expected_psi, rel=1e-12)
    assert row["js_distance"] == pytest.approx(jensenshannon([0.5, 0.5, 0.0], [0.3, 0.5, 0.2], base=2), abs=1e-12)
    assert row["null_share"] == pytest.approx(0.2)
    assert row["n_rows"] == 10
    assert row["kind"] == "numeric"
    assert row["unseen_share"] is None


def test_numeric_bins_are_reference_deciles_and_match_numpy(con):
    rng = np.random.default_rng(1)
    ref, cur = rng.gamma(2.0, 1.0, 5_000), rng.gamma(2.3, 1.0, 4_000)
    store_reference(con, _rows(con, "ref", {"x": ref}), ["x"], [], "m", 1)
    row = _by_feature(feature_drift(con, _rows(con, "cur", {"x": cur}), "m", 1, ["x"], []))["x"]

    stored = np.array(
        [
            r[0]
            for r in con.execute(
                "select upper from ml.reference_numeric_bins where bin_index between 0 and 8 order by bin_index"
            ).fetchall()
        ]
    )
    # the deciles, rounded up to the fine grid (a thousandth of a std wide near the mean)
    deciles = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    assert np.all(stored >= deciles - 1e-12) and np.all(stored - deciles < 0.01 * ref.std())
    # bins are [lower, upper): index = number of edges at or below the value; then the null bin
    p = [*np.bincount(np.searchsorted(stored, ref, side="right"), minlength=10) / ref.size, 0.0]
    q = [*np.bincount(np.searchsorted(stored, cur, side="right"), minlength=10) / cur.size, 0.0]
    np.testing.assert_allclose(p[:10], 0.1, atol=2e-3)
    assert row["psi"] == pytest.approx(_psi(p, q), rel=1e-9)
    assert row["js_distance"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_categorical_js_psi_and_unseen_levels(con):
    reference = _rows(con, "ref", {"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + [None] * 5})
    current = _rows(con, "cur", {"c": ["a"] * 40 + ["b"] * 30 + ["d"] * 12 + ["e"] * 8 + [None] * 10})
    store_reference(con, reference, [], ["c"], "m", 1)
    row = _by_feature(feature_drift(con, current, "m", 1, [], ["c"]))["c"]

    # bins: a, b, c, null, unseen (d and e together)
    p, q = [0.5, 0.3, 0.15, 0.05, 0.0], [0.4, 0.3, 0.0, 0.1, 0.2]
    assert row["unseen_share"] == pytest.approx(0.2)
    assert row["null_share"] == pytest.approx(0.1)
    assert row["psi"] == pytest.approx(_psi(p, q), rel=1e-12)
    assert row["js_distance"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    # one bin for all unseen levels equals scipy over every level apart (the reference has 0 for each)
    apart = jensenshannon([0.5, 0.3, 0.15, 0.05, 0.0, 0.0], [0.4, 0.3, 0.0, 0.1, 0.12, 0.08], base=2)
    assert row["js_distance"] == pytest.approx(apart, abs=1e-12)
    assert row["wasserstein_normed"] is None


def _distributions(rng: np.random.Generator, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with_nulls_ref, with_nulls_cur = rng.normal(0, 1, n), rng.normal(0.2, 1, n)
    with_nulls_ref[rng.random(n) < 0.1] = np.nan
    with_nulls_cur[rng.random(n) < 0.3] = np.nan
    return {
        "shift": (rng.normal(0, 1, n), rng.normal(0.3, 1, n)),
        "scale": (rng.normal(5, 2, n), rng.normal(5, 3, n)),
        "skewed": (rng.lognormal(0, 1, n), rng.lognormal(0.2, 1.2, n)),
        "ties": (rng.poisson(3, n).astype(float), rng.poisson(3.5, n).astype(float)),
        "beyond_range": (rng.uniform(0, 1, n), rng.uniform(0.5, 1.5, n)),
        "with_nulls": (with_nulls_ref, with_nulls_cur),
        # one huge value inflates the std and so the grid's scale: the grid must stay fine enough
        "outlier": (np.append(rng.normal(0, 1, n - 1), 1e4), rng.normal(0.5, 1, n)),
    }


def test_normed_wasserstein_matches_scipy_within_1e_3(con):
    rng = np.random.default_rng(7)
    data = _distributions(rng, 20_000)
    names = list(data)
    reference = _rows(con, "ref", {k: pa.array(v[0], from_pandas=True) for k, v in data.items()})
    current = _rows(con, "cur", {k: pa.array(v[1], from_pandas=True) for k, v in data.items()})
    store_reference(con, reference, names, [], "m", 1)
    rows = _by_feature(feature_drift(con, current, "m", 1, names, []))

    for name, (ref, cur) in data.items():
        ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        exact = wasserstein_distance(ref, cur) / np.std(ref)
        assert rows[name]["wasserstein_normed"] == pytest.approx(exact, abs=1e-3), name
        assert exact > 0.004, name  # each case really drifts
    assert rows["with_nulls"]["null_share"] == pytest.approx(0.3, abs=0.02)


def test_nan_and_infinities_count_as_nulls(con):
    store_reference(con, _rows(con, "ref", {"x": [1.0, 2.0, 3.0, 4.0]}), ["x"], [], "m", 1)
    current = _rows(con, "cur", {"x": [1.0, 2.0, float("nan"), float("inf"), float("-inf"), None, 3.0, 4.0]})
    row = feature_drift(con, current, "m", 1, ["x"], []).to_pylist()[0]
    assert row["null_share"] == pytest.approx(0.5)
    assert row["wasserstein_normed"] == pytest.approx(0, abs=1e-12)


def test_identical_data_gives_zero_drift(con):
    rng = np.random.default_rng(3)
    n = 5_000
    columns = {"x": rng.normal(0, 1, n), "k": rng.poisson(2, n).astype(float), "c": rng.choice(["a", "b"], n)}
    rows = _rows(con, "same", columns)
    store_reference(con, rows, ["x", "k"], ["c"], "m", 1)
    for row in feature_drift(con, rows, "m", 1, ["x", "k"], ["c"]).to_pylist():
        assert row["psi"] == pytest.approx(0, abs=1e-12)
        assert row["js_distance"] == pytest.approx(0, abs=1e-6)  # sqrt of a rounding-level divergence
        if row["kind"] == "numeric":
            assert row["wasserstein_normed"] == pytest.approx(0, abs=1e-12)


def test_all_null_and_empty_current_rows_give_rows(con):
    reference = _rows(con, "ref", {"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "b"]})
    store_reference(con, reference, ["x"], ["c"], "m", 1)
    all_null = _rows(con, "cur", {"x": pa.array([None, None], pa.float64()), "c": pa.array([None, None], pa.string())})
    rows = _by_feature(feature_drift(con, all_null, "m", 1, ["x"], ["c"]))
    assert rows["x"]["null_share"] == 1.0 and rows["c"]["null_share"] == 1.0
    assert rows["x"]["wasserstein_normed"] is None
    assert rows["x"]["psi"] > 0 and rows["c"]["js_distance"] == pytest.approx(1.0)

    empty = feature_drift(con, "select * from cur where false", "m", 1, ["x"], ["c"])
    assert [(r["feature"], r["n_rows"], r["psi"]) for r in empty.to_pylist()] == [("x", 0, None), ("c", 0, None)]


def test_prediction_reference_survives_a_feature_reprofile(con):
    rng = np.random.default_rng(5)
    scored = _rows(con, "val", {"p": rng.beta(2, 5, 3_000), "x": rng.normal(0, 1, 3_000)})
    store_prediction_reference(con, scored, "p", "m", 1)
    store_reference(con, scored, ["x"], [], "m", 1)
    store_reference(con, scored, ["x"], [], "m", 1)  # rerun replaces, no duplicates
    count = con.execute("select count(*) from ml.reference_profile where model_name = 'm' and version = 1").fetchone()
    assert count[0] == 2

    shifted = _rows(con, "day", {"p": rng.beta(2.5, 5, 2_000)})
    row = prediction_drift(con, shifted, "p", "m", 1).to_pylist()[0]
    assert row["feature"] == PREDICTION
    ref = con.execute("select p from val").fetchnumpy()["p"]
    cur = con.execute("select p from day").fetchnumpy()["p"]
    assert row["wasserstein_normed"] == pytest.approx(wasserstein_distance(ref, cur) / np.std(ref), abs=1e-3)


def test_missing_columns_and_profiles_fail_loudly(con):
    rows = _rows(con, "ref", {"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="no table ml.reference_profile"):
        feature_drift(con, rows, "m", 1, ["x"], [])
    store_reference(con, rows, ["x"], [], "m", 1)
    with pytest.raises(ValueError, match=r"columns missing from the rows: \['y'\]"):
        feature_drift(con, rows, "m", 1, ["x", "y"], [])
    with pytest.raises(ValueError, match="no numeric reference profile"):
        feature_drift(con, rows, "m", 2, ["x"], [])
