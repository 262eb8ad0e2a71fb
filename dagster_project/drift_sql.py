"""Reference profiles and feature drift computed inside DuckDB: PSI, Jensen-Shannon and normed Wasserstein.

The warehouse-scale successor of ``drift.py``. The rows are read in one streaming SQL pass for the numeric
features and one for the categorical ones (wide rows unpivoted to long form and aggregated); only aggregates
(at most a few thousand cells per feature) come back, so 10M current rows never enter Python.

Tables (schema ``ml``; a model version's profile is replaced in one transaction):

``ml.reference_profile``
    one row per (model_name, version, feature): kind ('numeric' | 'categorical'), n_rows, null_share,
    n_non_null, mean, std_pop (population standard deviation, Evidently's norm), min, max; numeric features
    also the fine grid (grid_center, grid_scale, fine_bins), bins and bin_edge_cells.
``ml.reference_numeric_bins``
    one row per PSI bin of a numeric feature: bin_index (-1 is the null bin), first_cell, lower, upper,
    share of all rows. Bins are [lower, upper): the reference quantiles 1/bins, 2/bins, ... rounded up to the
    fine grid (one cell at most, 1/fine_bins of a std near the centre), so each bin is a run of whole cells.
``ml.reference_numeric_cells``
    the non-empty cells of the fine grid: cell, lower, upper, n, value_sum, share of non-null rows.
    Cell k holds the values v with k <= fine_bins * asinh((v - grid_center) / grid_scale) < k + 1: cells
    are 1/fine_bins of a reference std wide near the mean and widen logarithmically in the tails, so a
    value's cell is arithmetic (no sort, no range join) and an outlier cannot coarsen the grid.
``ml.reference_categorical``
    one row per level of a categorical feature (level NULL is the null level, always present): n, share.

Conventions (stated because the anchors differ on them):

- PSI = sum over bins of (q - p) * ln(q / p) with p, q floored at ``PSI_FLOOR`` (1e-4) so empty bins stay
  finite. Numeric bins: the reference quantile bins plus a null bin. Categorical bins: the reference levels,
  one bin for every unseen level together, and the null level.
- Jensen-Shannon is the DISTANCE (square root of the divergence) in base 2, in [0, 1], over the same
  bins/levels as PSI, unfloored: scipy's ``jensenshannon(p, q, base=2)``. Evidently reports it with the
  natural log: its value = this value * sqrt(ln 2). One bin for all unseen levels gives the same value as
  keeping them apart, since the reference share of each is 0.
- Wasserstein-1 is over the non-null values, divided by the reference population std floored at 0.001, as
  Evidently's ``wasserstein`` stattest. It is integrated over the union of reference and current cells:
  within a cell the integral of each empirical CDF is exact (from the cell's count and sum of values), and
  between occupied cells both CDFs are flat, so the only error is in the cells where the two CDFs cross.
  Measured error against scipy's exact value: ``bench/RESULTS.md`` (P2) and ``tests/test_drift_sql.py``.
- NaN and infinite values count as nulls (Evidently drops them before its statistics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.warehouse import ensure_schema, transaction

# Thresholds, each beside its anchor. A feature drifts when its value is >= the threshold.
# Evidently's default for numeric columns with more than 1,000 reference rows: normed Wasserstein 0.1.
WASSERSTEIN_NORMED_THRESHOLD = 0.1
# Evidently's default for categorical columns with more than 1,000 reference rows: Jensen-Shannon 0.1, in
# natural-log units. Applied here to the base-2 distance it is slightly stricter; Evidently's exact decision
# on the base-2 scale is JENSEN_SHANNON_THRESHOLD_EVIDENTLY_EQUIVALENT = 0.1 / sqrt(ln 2) = 0.1201.
JENSEN_SHANNON_THRESHOLD = 0.1
JENSEN_SHANNON_THRESHOLD_EVIDENTLY_EQUIVALENT = 0.1 / math.sqrt(math.log(2))
# Evidently uses these distances (rather than tests) above this many reference rows.
DISTANCE_MIN_REFERENCE_ROWS = 1_000
# The common rule of thumb: PSI < 0.1 stable, 0.1 to 0.2 moderate, >= 0.2 significant shift.
PSI_THRESHOLD = 0.2
# Evidently's DataDriftPreset: the dataset drifts when at least this share of its columns drifts.
DRIFT_SHARE_THRESHOLD = 0.5

PSI_FLOOR = 1e-4
# Evidently floors the reference std at this value before dividing.
STD_FLOOR = 1e-3
PREDICTION = "__prediction__"
NULL_BIN = -1

PROFILE_TABLE = "ml.reference_profile"
BINS_TABLE = "ml.reference_numeric_bins"
CELLS_TABLE = "ml.reference_numeric_cells"
CATEGORICAL_TABLE = "ml.reference_categorical"

DRIFT_SCHEMA = pa.schema(
    [
        ("feature", pa.string()),
        ("kind", pa.string()),
        ("n_rows", pa.int64()),
        ("null_share", pa.float64()),
        ("unseen_share", pa.float64()),
        ("psi", pa.float64()),
        ("js_distance", pa.float64()),
        ("wasserstein_normed", pa.float64()),
    ]
)

# A (feature, cell) pair travels as one BIGINT key: feature index * 2^32 + cell + 2^31; a null is cell -2^31.
_KEY_SPAN = 1 << 32
_CELL_OFFSET = 1 << 31
NULL_CELL = -_CELL_OFFSET


def ensure_reference_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema ``ml`` and the four reference tables if missing."""
    ensure_schema(con, "ml")
    key = "model_name varchar not null, version integer not null, feature varchar not null"
    con.execute(
        f"create table if not exists {PROFILE_TABLE} ({key}, kind varchar not null, n_rows bigint not null, "
        "null_share double, n_non_null bigint not null, mean double, std_pop double, min double, max double, "
        "grid_center double, grid_scale double, fine_bins integer, bins integer, bin_edge_cells integer[], "
        "created_at timestamptz default current_timestamp, primary key (model_name, version, feature))"
    )
    con.execute(
        f"create table if not exists {BINS_TABLE} ({key}, bin_index integer not null, first_cell integer, "
        "lower double, upper double, share double not null, primary key (model_name, version, feature, bin_index))"
    )
    con.execute(
        f"create table if not exists {CELLS_TABLE} ({key}, cell integer not null, lower double not null, "
        "upper double not null, n bigint not null, value_sum double not null, share double not null, "
        "primary key (model_name, version, feature, cell))"
    )
    con.execute(
        f"create table if not exists {CATEGORICAL_TABLE} ({key}, level varchar, n bigint not null, "
        "share double not null)"
    )


def store_reference(
    con: duckdb.DuckDBPyConnection,
    source_sql: str,
    numeric: list[str],
    categorical: list[str],
    model_name: str,
    version: int,
    bins: int = 10,
    fine_bins: int = 500,
) -> None:
    """Profile the rows of ``source_sql`` (the model's training rows) and replace the version's profile.

    ``bins`` quantile bins serve PSI and Jensen-Shannon; ``fine_bins`` cells per reference std (near the
    mean) serve the Wasserstein estimate. Replaces every feature of (model_name, version) except the
    prediction's, in one transaction.
    """
    _store(con, source_sql, numeric, categorical, model_name, version, bins, fine_bins, prediction=False)


def store_prediction_reference(
    con: duckdb.DuckDBPyConnection,
    source_sql: str,
    score_column: str,
    model_name: str,
    version: int,
    bins: int = 10,
    fine_bins: int = 500,
) -> None:
    """Profile the score distribution (the validation window's) as the feature ``__prediction__``."""
    scores = f"select {_ident(score_column)} as {_ident(PREDICTION)} from ({source_sql}) as scored"
    _store(con, scores, [PREDICTION], [], model_name, version, bins, fine_bins, prediction=True)


def feature_drift(
    con: duckdb.DuckDBPyConnection,
    current_sql: str,
    model_name: str,
    version: int,
    numeric: list[str],
    categorical: list[str],
) -> pa.Table:
    """One row per feature (in the order given): kind, n_rows, null_share, unseen_share, psi, js_distance,
    wasserstein_normed, over the rows of ``current_sql`` against the stored profile of (model_name, version).

    unseen_share is the share of rows with a level absent from the reference (categorical only);
    wasserstein_normed is numeric only and null when the current rows have no non-null value.
    """
    _check_features(numeric, categorical)
    _check_columns(con, current_sql, [*numeric, *categorical])
    _check_profiled(con, model_name, version, numeric, "numeric")
    _check_profiled(con, model_name, version, categorical, "categorical")
    params = {"model_name": model_name, "version": version}
    parts = []
    if numeric:
        sql = _numeric_drift_sql(con, current_sql, numeric, model_name, version)
        parts.append(con.execute(sql, params).to_arrow_table())
    if categorical:
        parts.append(con.execute(_categorical_drift_sql(current_sql, categorical), params).to_arrow_table())
    table = pa.concat_tables([_as_drift_table(part) for part in parts])
    position = {name: i for i, name in enumerate([*numeric, *categorical])}
    order = pa.array([position[name] for name in table.column("feature").to_pylist()])
    return table.take(pc.sort_indices(order))


def prediction_drift(
    con: duckdb.DuckDBPyConnection, current_sql: str, score_column: str, model_name: str, version: int
) -> pa.Table:
    """The score column's drift against the stored score reference (one row, feature ``__prediction__``)."""
    scores = f"select {_ident(score_column)} as {_ident(PREDICTION)} from ({current_sql}) as scored"
    return feature_drift(con, scores, model_name, version, [PREDICTION], [])


def export_reference(con: duckdb.DuckDBPyConnection, model_name: str, version: int) -> dict:
    """A version's stored profile as plain data (feature -> profile, bins, cells, levels), for its folder."""
    exported: dict[str, dict] = {}
    for table, key in (
        (PROFILE_TABLE, "profile"),
        (BINS_TABLE, "psi_bins"),
        (CELLS_TABLE, "cells"),
        (CATEGORICAL_TABLE, "levels"),
    ):
        rows = con.execute(
            f"select * exclude (model_name, version) from {table} where model_name = $m and version = $v order by all",
            {"m": model_name, "v": version},
        ).to_arrow_table()
        for row in rows.to_pylist():
            feature = exported.setdefault(row.pop("feature"), {})
            if key == "profile":
                feature |= {k: v for k, v in row.items() if k != "created_at"}
            else:
                feature.setdefault(key, []).append(row)
    return exported


# ---------------------------------------------------------------------------------------------------------
# Storing the reference


def _store(
    con: duckdb.DuckDBPyConnection,
    source_sql: str,
    numeric: list[str],
    categorical: list[str],
    model_name: str,
    version: int,
    bins: int,
    fine_bins: int,
    prediction: bool,
) -> None:
    _check_features(numeric, categorical)
    if bins < 2 or fine_bins < 1:
        raise ValueError(f"need bins >= 2 and fine_bins >= 1, got bins={bins}, fine_bins={fine_bins}")
    _check_columns(con, source_sql, [*numeric, *categorical])
    ensure_reference_tables(con)
    # Aggregates are computed before the transaction opens: the write itself stays short.
    profile = _numeric_profile(con, source_sql, numeric, fine_bins, bins) if numeric else None
    cells = _cell_counts(con, source_sql, profile) if numeric else None
    edges = _bin_edges(con, profile, cells) if numeric else None
    levels = _level_counts(con, source_sql, categorical) if categorical else None
    params = {"model_name": model_name, "version": version}
    scope = f"feature {'=' if prediction else '<>'} '{PREDICTION}'"
    with transaction(con):
        for table in (PROFILE_TABLE, BINS_TABLE, CELLS_TABLE, CATEGORICAL_TABLE):
            con.execute(
                f"delete from {table} where model_name = $model_name and version = $version and {scope}", params
            )
        if numeric:
            _insert_numeric(con, profile, cells, edges, params)
        if categorical:
            _insert_categorical(con, levels, params)


def _numeric_profile(
    con: duckdb.DuckDBPyConnection, source_sql: str, numeric: list[str], fine_bins: int, bins: int
) -> pa.Table:
    """One wide pass: count, mean, population std, min, max of each numeric feature; the grid's centre and scale."""
    finite = ", ".join(f"{_finite(c)} as v{i}" for i, c in enumerate(numeric))
    aggregates = ", ".join(
        f"count(v{i}), avg(v{i}), stddev_pop(v{i}), min(v{i}), max(v{i})" for i in range(len(numeric))
    )
    row = con.execute(f"select count(*), {aggregates} from (select {finite} from ({source_sql}) as src)").fetchone()
    n_rows = row[0]
    stats = [row[1 + 5 * i : 6 + 5 * i] for i in range(len(numeric))]
    empty = [c for c, s in zip(numeric, stats, strict=True) if s[0] == 0]
    if empty:
        raise ValueError(f"numeric features without a single non-null reference value: {empty}")
    return pa.table(
        {
            "fidx": list(range(len(numeric))),
            "feature": numeric,
            "n_rows": [n_rows] * len(numeric),
            "n_non_null": [s[0] for s in stats],
            "mean": [s[1] for s in stats],
            "std_pop": [s[2] for s in stats],
            "min": [s[3] for s in stats],
            "max": [s[4] for s in stats],
            # A constant feature still needs a positive scale; any will do, its values all share one cell.
            "grid_center": [s[1] for s in stats],
            "grid_scale": [s[2] if s[2] > 0 else 1.0 for s in stats],
            "fine_bins": [fine_bins] * len(numeric),
            "bins": [bins] * len(numeric),
        }
    )


def _bin_edges(con: duckdb.DuckDBPyConnection, profile: pa.Table, cells: pa.Table) -> pa.Table:
    """Per feature, the sorted distinct cells that start a PSI bin: the reference quantile i/bins lies in the
    first cell whose cumulative count reaches it, and the bin edge is that cell's upper bound (the next cell)."""
    con.register("_drift_profile", profile)
    con.register("_drift_cells", cells)
    try:
        return con.execute(
            f"""
            with cumulated as (
                select fidx, cell, sum(n) over (partition by fidx order by cell) as cum
                from _drift_cells where cell <> {NULL_CELL}
            ),
            targets as (select fidx, unnest(range(1, bins)) as i, bins, n_non_null from _drift_profile)
            select t.fidx, list(distinct e.edge_cell order by e.edge_cell) as edges
            from targets as t
            join lateral (
                select min(c.cell) + 1 as edge_cell from cumulated as c
                where c.fidx = t.fidx and c.cum * t.bins >= t.i * t.n_non_null
            ) as e on true
            group by t.fidx
            """
        ).to_arrow_table()
    finally:
        con.unregister("_drift_profile")
        con.unregister("_drift_cells")


def _insert_numeric(
    con: duckdb.DuckDBPyConnection, profile: pa.Table, cells: pa.Table, edges: pa.Table, params: dict
) -> None:
    con.register("_drift_profile", profile)
    con.register("_drift_cells", cells)
    con.register("_drift_edges", edges)
    try:
        con.execute(
            f"""
            insert into {PROFILE_TABLE} by name
            select
                $model_name as model_name, $version as version, p.feature, 'numeric' as kind, p.n_rows,
                1 - p.n_non_null / p.n_rows as null_share, p.n_non_null, p.mean, p.std_pop, p.min, p.max,
                p.grid_center, p.grid_scale, p.fine_bins, p.bins, e.edges as bin_edge_cells
            from _drift_profile as p join _drift_edges as e using (fidx)
            """,
            params,
        )
        con.execute(
            f"""
            insert into {CELLS_TABLE} by name
            select
                $model_name as model_name, $version as version, p.feature, c.cell,
                {_bound("c.cell", "p")} as lower, {_bound("c.cell + 1", "p")} as upper,
                c.n, c.s as value_sum, c.n / p.n_non_null as share
            from _drift_cells as c join _drift_profile as p using (fidx)
            where c.cell <> {NULL_CELL}
            """,
            params,
        )
        con.execute(
            f"""
            insert into {BINS_TABLE} by name
            with binned as (
                select c.fidx, len(list_filter(e.edges, x -> x <= c.cell)) as bin_index, sum(c.n) as n
                from _drift_cells as c join _drift_edges as e using (fidx)
                where c.cell <> {NULL_CELL}
                group by all
            ),
            all_bins as (
                select e.fidx, b.bin_index, case when b.bin_index > 0 then e.edges[b.bin_index] end as first_cell,
                    case when b.bin_index < len(e.edges) then e.edges[b.bin_index + 1] end as next_cell
                from _drift_edges as e
                cross join (select unnest(range(0, 1 + max(len(edges)))) as bin_index from _drift_edges) as b
                where b.bin_index <= len(e.edges)
            )
            select
                $model_name as model_name, $version as version, p.feature, a.bin_index, a.first_cell,
                {_bound("a.first_cell", "p")} as lower, {_bound("a.next_cell", "p")} as upper,
                coalesce(b.n, 0) / p.n_rows as share
            from all_bins as a
            join _drift_profile as p using (fidx)
            left join binned as b using (fidx, bin_index)
            union all
            select $model_name, $version, feature, {NULL_BIN}, null, null, null, 1 - n_non_null / n_rows
            from _drift_profile
            """,
            params,
        )
    finally:
        con.unregister("_drift_profile")
        con.unregister("_drift_cells")
        con.unregister("_drift_edges")


def _level_counts(con: duckdb.DuckDBPyConnection, source_sql: str, categorical: list[str]) -> pa.Table:
    return con.execute(
        f"select feature, level, count(*) as n from ({_categorical_long_sql(source_sql, categorical)}) group by all"
    ).to_arrow_table()


def _insert_categorical(con: duckdb.DuckDBPyConnection, levels: pa.Table, params: dict) -> None:
    con.register("_drift_levels", levels)
    try:
        con.execute(
            f"""
            insert into {PROFILE_TABLE} by name
            select
                $model_name as model_name, $version as version, feature, 'categorical' as kind,
                sum(n) as n_rows, coalesce(sum(n) filter (where level is null), 0) / sum(n) as null_share,
                coalesce(sum(n) filter (where level is not null), 0) as n_non_null
            from _drift_levels group by feature
            """,
            params,
        )
        con.execute(
            f"""
            insert into {CATEGORICAL_TABLE} by name
            with totals as (select feature, sum(n) as n_rows from _drift_levels group by feature)
            select $model_name as model_name, $version as version, l.feature, l.level, l.n, l.n / t.n_rows as share
            from _drift_levels as l join totals as t using (feature)
            union all
            -- the null level is always present, so a current null share always meets a reference one
            select $model_name, $version, t.feature, null, 0, 0.0
            from totals as t
            where not exists (select 1 from _drift_levels as l where l.feature = t.feature and l.level is null)
            """,
            params,
        )
    finally:
        con.unregister("_drift_levels")


# ---------------------------------------------------------------------------------------------------------
# Drift of the current rows


def _numeric_drift_sql(
    con: duckdb.DuckDBPyConnection, current_sql: str, numeric: list[str], model_name: str, version: int
) -> str:
    profile = con.execute(
        f"select feature, grid_center, grid_scale, fine_bins from {PROFILE_TABLE} "
        "where model_name = ? and version = ? and kind = 'numeric' and list_contains(?, feature)",
        [model_name, version, numeric],
    ).to_arrow_table()
    by_feature = {r["feature"]: r for r in profile.to_pylist()}
    grid = [
        (i, c, by_feature[c]["grid_center"], by_feature[c]["grid_scale"], by_feature[c]["fine_bins"])
        for i, c in enumerate(numeric)
    ]
    features = ", ".join(f"({i}, {_literal(c)})" for i, c in enumerate(numeric))
    return f"""
        with
        counts as materialized ({_cell_counts_sql(current_sql, grid)}),
        features(fidx, feature) as (values {features}),
        profile as (
            select f.fidx, p.* from {PROFILE_TABLE} as p join features as f using (feature)
            where p.model_name = $model_name and p.version = $version
        ),
        totals as (
            select p.fidx, p.feature, p.std_pop, p.n_non_null as ref_n, p.bin_edge_cells as edges,
                coalesce(sum(c.n), 0) as n_rows,
                coalesce(sum(c.n) filter (where c.cell = {NULL_CELL}), 0) as n_null,
                coalesce(sum(c.n) filter (where c.cell <> {NULL_CELL}), 0) as cur_n
            from profile as p left join counts as c using (fidx)
            group by all
        ),
        reference_cells as (
            select f.fidx, r.cell, r.n, r.value_sum as s
            from {CELLS_TABLE} as r join features as f using (feature)
            where r.model_name = $model_name and r.version = $version
        ),
        union_cells as (
            select fidx, cell, coalesce(r.n, 0) as rn, coalesce(r.s, 0) as rs,
                coalesce(c.n, 0) as cn, coalesce(c.s, 0) as cs
            from reference_cells as r
            full join (select * from counts where cell <> {NULL_CELL}) as c using (fidx, cell)
        ),
        bounded as (
            select u.*, {_bound("u.cell", "p")} as lower, {_bound("u.cell + 1", "p")} as upper
            from union_cells as u join profile as p using (fidx)
        ),
        cumulated as (
            select b.*, t.ref_n, t.cur_n,
                sum(rn) over w - rn as r_before, sum(cn) over w - cn as c_before,
                lag(upper) over w as previous_upper
            from bounded as b join totals as t using (fidx)
            window w as (partition by fidx order by cell)
        ),
        wasserstein as (
            -- inside a cell: integral of F = F(lower) * width + sum(upper - x) / n, exact for each CDF;
            -- between occupied cells both CDFs are flat
            select fidx, sum(
                abs((r_before * (upper - lower) + rn * upper - rs) / ref_n
                    - (c_before * (upper - lower) + cn * upper - cs) / cur_n)
                + abs(r_before / ref_n - c_before / cur_n) * coalesce(lower - previous_upper, 0)
            ) as w1
            from cumulated where cur_n > 0 group by fidx
        ),
        current_bins as (
            select c.fidx, case when c.cell = {NULL_CELL} then {NULL_BIN}
                else len(list_filter(t.edges, x -> x <= c.cell)) end as bin_index, sum(c.n) as n
            from counts as c join totals as t using (fidx)
            group by all
        ),
        shares as (
            select t.feature, b.share as p, coalesce(c.n, 0) / nullif(t.n_rows, 0) as q
            from {BINS_TABLE} as b
            join totals as t using (feature)
            left join current_bins as c on c.fidx = t.fidx and c.bin_index = b.bin_index
            where b.model_name = $model_name and b.version = $version
        ),
        divergences as ({_divergence_sql("shares")})
        select
            t.feature, 'numeric' as kind, t.n_rows, t.n_null / nullif(t.n_rows, 0) as null_share,
            null::double as unseen_share, d.psi, d.js_distance,
            w.w1 / greatest(t.std_pop, {STD_FLOOR}) as wasserstein_normed
        from totals as t
        left join divergences as d using (feature)
        left join wasserstein as w using (fidx)
    """


def _categorical_drift_sql(current_sql: str, categorical: list[str]) -> str:
    long = _categorical_long_sql(current_sql, categorical)
    features = _string_list(categorical)
    return f"""
        with
        counts as materialized (select feature, level, count(*) as n from ({long}) group by all),
        reference as (
            select feature, level, share from {CATEGORICAL_TABLE}
            where model_name = $model_name and version = $version and list_contains({features}, feature)
        ),
        totals as (
            select p.feature, coalesce(sum(c.n), 0) as n_rows,
                coalesce(sum(c.n) filter (where c.level is null), 0) as n_null
            from {PROFILE_TABLE} as p left join counts as c using (feature)
            where p.model_name = $model_name and p.version = $version and list_contains({features}, p.feature)
            group by p.feature
        ),
        matched as (
            -- levels absent from the reference share one 'unseen' bin (reference share 0)
            select c.feature, c.level, c.n, r.feature is null and c.level is not null as unseen
            from counts as c
            left join reference as r on r.feature = c.feature and r.level is not distinct from c.level
        ),
        unseen as (select feature, sum(n) as n from matched where unseen group by feature),
        shares as (
            select r.feature, r.share as p, coalesce(m.n, 0) / nullif(t.n_rows, 0) as q
            from reference as r
            join totals as t using (feature)
            left join matched as m on m.feature = r.feature and m.level is not distinct from r.level
            union all
            select t.feature, 0.0 as p, coalesce(u.n, 0) / nullif(t.n_rows, 0) as q
            from totals as t left join unseen as u using (feature)
        ),
        divergences as ({_divergence_sql("shares")})
        select
            t.feature, 'categorical' as kind, t.n_rows,
            t.n_null / nullif(t.n_rows, 0) as null_share,
            coalesce(u.n, 0) / nullif(t.n_rows, 0) as unseen_share,
            d.psi, d.js_distance, null::double as wasserstein_normed
        from totals as t
        left join divergences as d using (feature)
        left join unseen as u using (feature)
    """


def _divergence_sql(shares: str) -> str:
    """PSI (floored) and base-2 Jensen-Shannon distance per feature from a relation (feature, p, q)."""
    return f"""
        select
            feature,
            case when count(q) = count(*) then sum(
                (greatest(q, {PSI_FLOOR}) - greatest(p, {PSI_FLOOR}))
                * ln(greatest(q, {PSI_FLOOR}) / greatest(p, {PSI_FLOOR}))
            ) end as psi,
            case when count(q) = count(*) then sqrt(greatest(0, sum(
                case when p > 0 then p * ln(2 * p / (p + q)) else 0 end
                + case when q > 0 then q * ln(2 * q / (p + q)) else 0 end
            ) / 2 / ln(2))) end as js_distance
        from {shares}
        group by feature
    """


# ---------------------------------------------------------------------------------------------------------
# The streaming pass


def _cell_counts(con: duckdb.DuckDBPyConnection, source_sql: str, profile: pa.Table) -> pa.Table:
    grid = [(r["fidx"], r["feature"], r["grid_center"], r["grid_scale"], r["fine_bins"]) for r in profile.to_pylist()]
    return con.execute(_cell_counts_sql(source_sql, grid)).to_arrow_table()


def _cell_counts_sql(source_sql: str, grid: list[tuple[int, str, float, float, int]]) -> str:
    """Count and sum of values per (feature index, cell): one pass over the wide rows, unpivoted in pairs.

    ``grid`` holds (feature index, column, centre, scale, cells per unit); the constants are inlined so the
    cell of a value is pure arithmetic on its own row.
    """
    keys, values, pairs = [], [], []
    for fidx, column, center, scale, fine_bins in grid:
        value = f"cast({_ident(column)} as double)"
        # try_cast turns NaN and infinities (and a value so extreme that (v - centre) / scale overflows a
        # double, beyond 1e300 scales from the mean) into the null cell, without a per-row branch
        cell = f"try_cast(floor({fine_bins} * asinh(({value} - {center!r}) * {1 / scale!r})) as bigint)"
        keys.append(f"{fidx * _KEY_SPAN + _CELL_OFFSET} + coalesce({cell}, {NULL_CELL}) as k{fidx}")
        values.append(f"{value} as v{fidx}")
        pairs.append(f"(k{fidx}, v{fidx})")
    return f"""
        select key // {_KEY_SPAN} as fidx, (key % {_KEY_SPAN} - {_CELL_OFFSET})::integer as cell,
            count(*) as n, coalesce(sum(v), 0) as s
        from (select {", ".join(keys)}, {", ".join(values)} from ({source_sql}) as src)
        unpivot include nulls ((key, v) for name in ({", ".join(pairs)}))
        group by key
    """


def _categorical_long_sql(source_sql: str, categorical: list[str]) -> str:
    """Long rows (feature, level) of the categorical columns as text, nulls kept."""
    casts = ", ".join(f"cast({_ident(c)} as varchar) as {_ident(c)}" for c in categorical)
    columns = ", ".join(_ident(c) for c in categorical)
    return (
        f"select feature, level from (select {casts} from ({source_sql}) as src) "
        f"unpivot include nulls (level for feature in ({columns}))"
    )


def _bound(cell: str, profile: str) -> str:
    """SQL for the lower bound of ``cell`` on the grid of the profile row aliased ``profile``."""
    p = profile
    return f"{p}.grid_center + {p}.grid_scale * sinh(({cell}) / {p}.fine_bins)"


def _finite(column: str) -> str:
    value = f"cast({_ident(column)} as double)"
    return f"(case when isfinite({value}) then {value} end)"


# ---------------------------------------------------------------------------------------------------------
# Checks and helpers


def _check_features(numeric: Sequence[str], categorical: Sequence[str]) -> None:
    names = [*numeric, *categorical]
    if not names:
        raise ValueError("no features given: pass at least one numeric or categorical column")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"features listed twice (or as both numeric and categorical): {duplicates}")


def _check_columns(con: duckdb.DuckDBPyConnection, sql: str, columns: list[str]) -> None:
    present = set(con.execute(f"select * from ({sql}) as src limit 0").to_arrow_table().column_names)
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"columns missing from the rows: {missing}; present: {sorted(present)}")


def _check_profiled(con: duckdb.DuckDBPyConnection, model_name: str, version: int, names: list[str], kind: str) -> None:
    if not names:
        return
    exists = con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'ml' and table_name = 'reference_profile'"
    ).fetchone()[0]
    if not exists:
        raise ValueError(f"no table {PROFILE_TABLE}: run store_reference at training time first")
    found = {
        r[0]
        for r in con.execute(
            f"select feature from {PROFILE_TABLE} where model_name = ? and version = ? and kind = ?",
            [model_name, version, kind],
        ).fetchall()
    }
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(
            f"no {kind} reference profile for {missing} of model {model_name!r} version {version}: "
            "run store_reference at training time"
        )


def _as_drift_table(table: pa.Table) -> pa.Table:
    return pa.table({f.name: table.column(f.name).cast(f.type) for f in DRIFT_SCHEMA}, schema=DRIFT_SCHEMA)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _string_list(names: Sequence[str]) -> str:
    return "[" + ", ".join(_literal(n) for n in names) + "]"
