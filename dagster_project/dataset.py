"""Reading a use case's feature and label rows out of the warehouse, point in time."""

from __future__ import annotations

from datetime import date, datetime, time

import duckdb
import numpy as np
import polars as pl

from dagster_project.use_case import UseCase, check_columns
from dagster_project.warehouse import columns_of


def relation_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [name for name, _ in columns_of(con, relation)]


def check_feature_model(con: duckdb.DuckDBPyConnection, uc: UseCase) -> None:
    """Every column the YAML names must exist in the feature and label models (the error names the key)."""
    check_columns(
        uc,
        uc.feature_model,
        relation_columns(con, uc.feature_model),
        {
            "entity_key": [uc.entity_key],
            "partition_column": [uc.partition_column],
            "baseline.score_column": [uc.baseline_score],
            "features.numeric": uc.numeric_features,
            "features.categorical": uc.categorical_features,
            "evaluation.segment_columns": uc.segment_columns,
        },
    )
    check_columns(
        uc,
        uc.label_model,
        relation_columns(con, uc.label_model),
        {
            "entity_key": [uc.entity_key],
            "label": [uc.label],
            "label_available_at": [uc.label_available_at],
        },
    )


def _feature_select(uc: UseCase, features: list[str] | None = None) -> str:
    columns = dict.fromkeys(
        [
            uc.entity_key,
            uc.partition_column,
            *uc.segment_columns,
            uc.baseline_score,
            *(uc.features if features is None else features),
        ]
    )
    return ", ".join(f"f.{c}" for c in columns)


def labelled_rows_sql(uc: UseCase, start: date, end: date, as_of: date) -> str:
    """SELECT of the features and labels of partitions ``start..end`` whose label had landed by ``as_of``."""
    cutoff = datetime.combine(as_of, time())
    return (
        f"select {_feature_select(uc)}, l.{uc.label}::double as {uc.label} "
        f"from {uc.feature_model} f join {uc.label_model} l on f.{uc.entity_key} = l.{uc.entity_key} "
        f"where f.{uc.partition_column} between date '{start.isoformat()}' and date '{end.isoformat()}' "
        f"and l.{uc.label_available_at} <= timestamp '{cutoff.isoformat(sep=' ')}'"
    )


def labelled_rows(con: duckdb.DuckDBPyConnection, uc: UseCase, start: date, end: date, as_of: date) -> pl.DataFrame:
    """Features and labels of partitions ``start..end`` whose label had landed by the start of ``as_of``."""
    return con.execute(
        f"{labelled_rows_sql(uc, start, end, as_of)} order by f.{uc.partition_column}, f.{uc.entity_key}"
    ).pl()


def partition_rows(
    con: duckdb.DuckDBPyConnection, uc: UseCase, start: date, end: date, features: list[str]
) -> pl.DataFrame:
    """Feature rows of partitions ``start..end`` (no labels: what the scoring batch sees).

    ``features`` are the model's own inputs; a column the feature model lacks fails here, before scoring.
    """
    check_columns(uc, uc.feature_model, relation_columns(con, uc.feature_model), {"the model's features": features})
    return con.execute(
        f"select {_feature_select(uc, features)} from {uc.feature_model} f "
        f"where f.{uc.partition_column} between ? and ? order by f.{uc.partition_column}, f.{uc.entity_key}",
        [start, end],
    ).pl()


def categorical_levels(frame: pl.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Sorted non-null levels of each categorical column, as seen in training."""
    return {c: sorted(frame.get_column(c).drop_nulls().cast(pl.String).unique().to_list()) for c in columns}


def encode(frame: pl.DataFrame, numeric: list[str], levels: dict[str, list[str]]) -> np.ndarray:
    """Feature matrix in model order: numeric as float, categoricals as level codes; unseen or null -> NaN."""
    expressions = [pl.col(c).cast(pl.Float64) for c in numeric]
    expressions += [
        pl.col(c)
        .cast(pl.String)
        .replace_strict(values, list(range(len(values))), default=None, return_dtype=pl.Float64)
        for c, values in levels.items()
    ]
    return frame.select(expressions).to_numpy().astype(np.float64, copy=False)
