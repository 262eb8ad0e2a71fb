"""Input validation before scoring: a pandera (polars) schema derived from the champion's signature.

The schema checks each feature's presence and dtype (the warehouse type the model learned), nulls (allowed
only where the training data had them, from the reference profile's null bin) and, for numeric features, a
plausible range around the one seen in training. Rows that fail are quarantined, not scored; a column
missing or of another type fails the whole run, because then no row can be scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
import pandera.polars as pa
import polars as pl
from pandera.config import ValidationDepth, config_context

from dagster_project.registry import LoadedModel
from dagster_project.training import Signature
from dagster_project.use_case import UseCase
from dagster_project.warehouse import columns_of

# How far beyond the training range a numeric value may lie, in multiples of that range's width. The check
# catches impossible values (a distance of a million miles, a negative one), not novel ones: values outside
# what training saw are drift, which monitoring reports. One width was too tight for heavy tails: a July
# thunderstorm (0.94 in of rain in an hour) against a January-April maximum of 0.32 quarantined 2% of a day.
# Physical limits (a distance is never negative) come from the YAML's scoring.valid_ranges.
RANGE_MARGIN = 10.0
MAX_EXAMPLES = 5

# DuckDB types (as information_schema spells them) and the polars dtype a column of that type arrives as.
POLARS_DTYPES: dict[str, pl.DataType] = {
    "DOUBLE": pl.Float64(),
    "FLOAT": pl.Float32(),
    "BIGINT": pl.Int64(),
    "INTEGER": pl.Int32(),
    "SMALLINT": pl.Int16(),
    "TINYINT": pl.Int8(),
    "UBIGINT": pl.UInt64(),
    "UINTEGER": pl.UInt32(),
    "USMALLINT": pl.UInt16(),
    "UTINYINT": pl.UInt8(),
    "BOOLEAN": pl.Boolean(),
    "VARCHAR": pl.String(),
}


class SignatureMismatchError(ValueError):
    """The champion expects a column the feature table lacks or holds with another type: nothing is scored."""


class InvalidInputError(ValueError):
    """Too many rows of a partition failed validation: the partition is not scored (its previous rows stay)."""


@dataclass(frozen=True)
class InputSchema:
    """The pandera schema of one model's input, with what it was derived from (shown as asset metadata)."""

    schema: pa.DataFrameSchema
    table: str
    entity_key: str
    categorical_levels: dict[str, list[str]]
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    nullable: dict[str, bool] = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "bounds": {c: [lo, hi] for c, (lo, hi) in self.bounds.items()},
            "not_nullable": sorted(c for c, allowed in self.nullable.items() if not allowed),
            "range_margin": RANGE_MARGIN,
        }


@dataclass
class BatchValidation:
    """One batch split into the rows to score and the failure cases of the others."""

    valid: pl.DataFrame
    failures: pl.DataFrame  # entity key, column, failed check, value (one row per failed check of a row)
    invalid_rows: int
    unseen_levels: dict[str, int]


def check_signature(con: duckdb.DuckDBPyConnection, uc: UseCase, signature: Signature) -> None:
    """Fail before scoring when a feature the model expects is missing from the feature table or changed type."""
    current = dict(columns_of(con, uc.feature_model))
    missing = [c for c in signature.features if c not in current]
    if missing:
        raise SignatureMismatchError(
            f"{uc.feature_model}: column(s) {missing} expected by the champion {uc.model_name} are missing "
            f"(the table has {sorted(current)}); rebuild the features or retrain the model on the new schema"
        )
    changed = {
        c: (signature.dtypes[c], current[c])
        for c in signature.features
        if signature.dtypes.get(c) and current[c] != signature.dtypes[c]
    }
    if changed:
        details = ", ".join(f"{c} is {now}, the model learned {then}" for c, (then, now) in changed.items())
        raise SignatureMismatchError(
            f"{uc.feature_model}: {details}; restore the column types or retrain the model on the new schema"
        )


def training_ranges(
    con: duckdb.DuckDBPyConnection, uc: UseCase, model: LoadedModel
) -> dict[str, tuple[float | None, float | None]]:
    """Min and max of each numeric feature over the model's training window, read from the feature table.

    The reference profile keeps only interior quantile edges, so the extremes come from the warehouse. A
    model whose metadata has no training window, or whose window holds no rows, gets no range checks.
    """
    start, end = model.metadata.get("train_start"), model.metadata.get("train_end")
    numeric = model.signature.numeric
    if not start or not end or not numeric:
        return {}
    aggregates = ", ".join(f"min({c})::double, max({c})::double" for c in numeric)
    row = con.execute(
        f"select {aggregates} from {uc.feature_model} where {uc.partition_column} between ?::date and ?::date",
        [str(start)[:10], str(end)[:10]],
    ).fetchone()
    return {c: (row[2 * i], row[2 * i + 1]) for i, c in enumerate(numeric)}


def plausible_bounds(
    low: float | None, high: float | None, domain: tuple[float | None, float | None] = (None, None)
) -> tuple[float, float] | None:
    """The training range widened by RANGE_MARGIN widths on each side, cut to the YAML's domain range.

    Only the YAML knows that a distance cannot be negative: a summer-trained model never saw a negative dew
    point, yet November has them, so no bound is inferred from the sign of the training data.
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    # A constant feature gets a width of its own magnitude (at least 1), so it may still vary a little.
    width = high - low or max(abs(high), 1.0)
    lower, upper = low - RANGE_MARGIN * width, high + RANGE_MARGIN * width
    floor, ceiling = domain
    return (lower if floor is None else max(lower, floor), upper if ceiling is None else min(upper, ceiling))


def input_schema(uc: UseCase, model: LoadedModel, ranges: dict[str, tuple[float | None, float | None]]) -> InputSchema:
    """The pandera schema of the champion's input: names, dtypes, nulls and ranges seen in training."""
    signature = model.signature
    columns: dict[str, pa.Column] = {}
    bounds: dict[str, tuple[float, float]] = {}
    nullable: dict[str, bool] = {}
    for feature in signature.features:
        # A missing value is scored as missing (LightGBM learned a direction for it) and shows up in the
        # drift tables' null_share; refusing it would quarantine whole days when a weather hour is missing.
        nullable[feature] = True
        trained = signature.dtypes.get(feature)
        dtype = POLARS_DTYPES.get(trained) if trained else None
        if feature in signature.categorical_levels:
            # Unseen levels are not failures: they are scored as missing, like LightGBM treats them, and counted.
            columns[feature] = pa.Column(dtype or pl.String, nullable=nullable[feature], coerce=False)
            continue
        checks = []
        found = plausible_bounds(*ranges.get(feature, (None, None)), uc.valid_ranges.get(feature, (None, None)))
        if found is not None:
            bounds[feature] = found
            checks.append(pa.Check.in_range(*found))
        columns[feature] = pa.Column(dtype, checks=checks, nullable=nullable[feature], coerce=False)
    schema = pa.DataFrameSchema(columns, strict=False, coerce=False, name=uc.feature_model)
    return InputSchema(schema, uc.feature_model, uc.entity_key, signature.categorical_levels, bounds, nullable)


def validate_batch(spec: InputSchema, frame: pl.DataFrame) -> BatchValidation:
    """Validate every row of ``frame`` (lazily: all failures at once); split it into valid rows and failures.

    A missing column or a wrong dtype concerns every row: it raises SignatureMismatchError naming the column.
    """
    unseen = {
        c: int((frame.get_column(c).is_not_null() & ~frame.get_column(c).cast(pl.String).is_in(levels)).sum())
        for c, levels in spec.categorical_levels.items()
        if c in frame.columns
    }
    try:
        with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            spec.schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return BatchValidation(frame, _no_failures(spec), 0, unseen)
    whole = cases.filter(pl.col("index").is_null())
    if whole.height:
        details = "; ".join(
            f"column '{column or case}': {check} ({case})"
            for case, column, check in whole.select("failure_case", "column", "check").iter_rows()
        )
        raise SignatureMismatchError(
            f"{spec.table}: the champion's input schema does not match: {details}; restore the feature table "
            "or retrain the model on it"
        )
    index = cases.get_column("index").cast(pl.UInt32)
    failures = pl.DataFrame(
        {
            spec.entity_key: frame.get_column(spec.entity_key).cast(pl.String).gather(index),
            "column_name": cases.get_column("column"),
            "failed_check": cases.get_column("check"),
            "value": cases.get_column("failure_case").cast(pl.String),
        }
    )
    bad = index.unique()
    valid = frame.with_row_index("_row").filter(~pl.col("_row").is_in(bad.implode())).drop("_row")
    return BatchValidation(valid, failures, bad.len(), unseen)


def _no_failures(spec: InputSchema) -> pl.DataFrame:
    return pl.DataFrame(
        schema={spec.entity_key: pl.String, "column_name": pl.String, "failed_check": pl.String, "value": pl.String}
    )


def describe_invalid(
    spec: InputSchema, day: object, failures: pl.DataFrame, invalid_rows: int, total_rows: int, limit: float
) -> str:
    """The error of a partition with too many invalid rows: table, columns, example rows, share vs limit."""
    share = invalid_rows / total_rows if total_rows else 0.0
    lines = [
        f"{spec.table}: at least {invalid_rows} of {total_rows} rows of {day} ({share:.2%}) failed input "
        f"validation, more than scoring.max_invalid_share = {limit:.2%}; no prediction of {day} was written "
        "(its previous predictions stay) and the failed rows are in the quarantine table."
    ]
    for (column, check), group in failures.group_by(["column_name", "failed_check"], maintain_order=True):
        examples = group.head(MAX_EXAMPLES).select(spec.entity_key, "value").rows()
        lines.append(f"  column '{column}', check {check}: {group.height} row(s), e.g. {examples}")
    return "\n".join(lines)
