"""Reference profiles of a model's training data and the population stability index (PSI) against them."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

# Empty bins get this share so PSI stays finite (the usual convention).
PSI_FLOOR = 1e-4
NULL_BIN = "__null__"
OTHER_BIN = "__other__"
PREDICTION = "__prediction__"


def numeric_reference(values: np.ndarray, bins: int) -> dict:
    """Quantile bin edges of the non-null values, and the share of rows in each bin plus the null bin."""
    finite = values[~np.isnan(values)]
    if finite.size:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.array([])
    return {"kind": "numeric", "edges": edges.tolist(), "shares": numeric_shares(values, edges.tolist())}


def numeric_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares per bin (right-closed bins between the edges, then the null bin)."""
    if values.size == 0:
        return [0.0] * (len(edges) + 2)
    nulls = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~nulls], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(np.float64)
    return [*(counts / values.size).tolist(), float(nulls.sum()) / values.size]


def categorical_reference(values: pl.Series) -> dict:
    shares = categorical_shares(values, None)
    return {
        "kind": "categorical",
        "levels": [k for k in shares if k not in (NULL_BIN, OTHER_BIN)],
        "shares": list(shares.values()),
    }


def categorical_shares(values: pl.Series, levels: list[str] | None) -> dict[str, float]:
    """Share of each known level, of unseen levels together, and of nulls."""
    n = values.len()
    counts = values.cast(pl.String).value_counts()
    observed = {row[0]: row[1] for row in counts.iter_rows() if row[0] is not None}
    nulls = values.null_count()
    if levels is None:
        levels = sorted(observed)
    shares = {level: observed.get(level, 0) / n if n else 0.0 for level in levels}
    shares[OTHER_BIN] = sum(v for k, v in observed.items() if k not in shares) / n if n else 0.0
    shares[NULL_BIN] = nulls / n if n else 0.0
    return shares


def psi(reference: list[float], current: list[float]) -> float:
    """Population stability index: sum over bins of (cur - ref) * ln(cur / ref), empty bins floored."""
    total = 0.0
    for ref, cur in zip(reference, current, strict=True):
        ref, cur = max(ref, PSI_FLOOR), max(cur, PSI_FLOOR)
        total += (cur - ref) * math.log(cur / ref)
    return total


def build_reference(frame: pl.DataFrame, numeric: list[str], categorical: list[str], bins: int) -> dict:
    """The training reference profile: bins and shares per feature."""
    profile: dict[str, dict] = {}
    for column in numeric:
        values = frame.get_column(column).cast(pl.Float64).fill_null(np.nan).to_numpy()
        profile[column] = numeric_reference(values, bins)
    for column in categorical:
        profile[column] = categorical_reference(frame.get_column(column))
    return profile


def current_shares(reference: dict, values: pl.Series) -> list[float]:
    """Shares of ``values`` over the bins of one feature's reference."""
    if reference["kind"] == "categorical":
        return list(categorical_shares(values, reference["levels"]).values())
    return numeric_shares(values.cast(pl.Float64).fill_null(np.nan).to_numpy(), reference["edges"])
