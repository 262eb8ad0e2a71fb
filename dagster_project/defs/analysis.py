"""Data profiles of every raw and feature table, kept in analysis.table_profiles and shown as metadata."""

import dagster as dg
import polars as pl

from dagster_project.defs.ingest import RAW_KEYS
from dagster_project.defs.resources import USE_CASE, WAREHOUSE_POOL, WarehouseResource
from dagster_project.profiling import write_profile


def _profile_metadata(profiles: dict[str, pl.DataFrame]) -> dict:
    metadata: dict = {}
    for table, profile in profiles.items():
        shown = profile.select(
            "column_name", "column_type", "null_share", "distinct_count", "min_value", "max_value", "mean"
        )
        metadata[f"{table} rows"] = int(profile.get_column("row_count")[0]) if profile.height else 0
        metadata[f"{table} profile"] = dg.MetadataValue.md(shown.to_pandas().to_markdown(index=False, floatfmt=".4g"))
    return metadata


def _profile(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, tables: list[str]
) -> dg.MaterializeResult:
    with warehouse.connection() as con:
        profiles = {table: write_profile(con, table, context.run_id) for table in tables}
        warehouse.publish(con, ["analysis.table_profiles"], context.run_id)
    return dg.MaterializeResult(metadata=_profile_metadata(profiles))


@dg.asset(deps=RAW_KEYS, group_name="analysis", pool=WAREHOUSE_POOL, kinds={"duckdb"})
def raw_data_profile(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Row count and per-column null share, distinct count, min, max and mean of every raw table."""
    return _profile(context, warehouse, [key.to_user_string().replace("/", ".") for key in RAW_KEYS])


FEATURE_RELATIONS = [USE_CASE.feature_model, USE_CASE.label_model]


@dg.asset(
    deps=[dg.AssetKey(r.split(".")) for r in FEATURE_RELATIONS],
    group_name="analysis",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)
def feature_data_profile(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The same profile of the feature and label tables the model learns from."""
    return _profile(context, warehouse, FEATURE_RELATIONS)
