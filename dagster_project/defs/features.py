"""dbt models as Dagster assets (dagster-dbt); dbt tests become asset checks."""

import shutil
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from dagster_project.defs.resources import DBT_PROJECT, WAREHOUSE_POOL, WarehouseResource
from dagster_project.monitoring import ensure_monitoring_tables


class SchemaQualifiedTranslator(DagsterDbtTranslator):
    """Asset keys are the warehouse relation (``features/flight_features``), groups the dbt folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["config"]["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return None
        return dbt_resource_props["fqn"][1] if len(dbt_resource_props["fqn"]) > 2 else "dbt"


@dbt_assets(
    manifest=DBT_PROJECT.manifest_path,
    project=DBT_PROJECT,
    dagster_dbt_translator=SchemaQualifiedTranslator(),
    pool=WAREHOUSE_POOL,
)
def warehouse_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator:
    """Build the staging, intermediate and feature models, the analyst and monitoring marts, and run their tests."""
    warehouse.settings.export_for_dbt()
    # A warehouse from an older release may hold monitoring tables of an older layout, which the dbt hook
    # (create if not exists) would leave as they are and the monitoring marts could not bind to: migrate first.
    with warehouse.connection() as con:
        ensure_monitoring_tables(con)
    invocation = dbt.cli(["build"], context=context)
    yield from invocation.stream()
    # dagster-dbt copies the partial-parse file into a new target folder per call (44 MB after 30 calls).
    shutil.rmtree(invocation.target_path, ignore_errors=True)
