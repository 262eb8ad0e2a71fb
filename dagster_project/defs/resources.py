"""Resources: the warehouse (settings, connections, publishing) and the dbt CLI."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, DbtProject

from dagster_project.publish import publish
from dagster_project.settings import PROJECT_ROOT, Settings
from dagster_project.use_case import UseCase, load_use_case
from dagster_project.warehouse import connect

# Every asset that writes the warehouse runs in this pool; the instance limits it to one slot (dagster.yaml).
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """Where the pipeline reads and writes; defaults come from the settings (environment variables)."""

    warehouse_path: str
    published_path: str
    models_dir: str
    use_case_path: str
    source_dir: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "WarehouseResource":
        return cls(
            warehouse_path=str(settings.warehouse_path),
            published_path=str(settings.published_path),
            models_dir=str(settings.models_dir),
            use_case_path=str(settings.use_case_path),
            source_dir=str(settings.source_dir),
        )

    @property
    def settings(self) -> Settings:
        return Settings(
            Path(self.warehouse_path),
            Path(self.published_path),
            Path(self.models_dir),
            Path(self.use_case_path),
            Path(self.source_dir),
        )

    def use_case(self) -> UseCase:
        return load_use_case(Path(self.use_case_path))

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, closed on exit (dbt cannot open the file while it is open)."""
        con = connect(Path(self.warehouse_path))
        try:
            yield con
        finally:
            con.close()

    def publish(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: list[str],
        run_id: str,
        views: dict[str, str] | None = None,
    ) -> Path:
        return publish(con, Path(self.published_path), tables, views=views, run_id=run_id)


SETTINGS = Settings.from_env()
# dbt's profiles.yml reads MLOPS_WAREHOUSE; resolve it once so dbt and Dagster open the same file.
SETTINGS.export_for_dbt()
USE_CASE = load_use_case(SETTINGS.use_case_path)

# The dbt installed beside this interpreter, so a venv that is not activated still finds it (the manifest
# preparer looks for `dbt` on PATH).
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
if Path(sys.executable).parent.as_posix() not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([Path(sys.executable).parent.as_posix(), os.environ.get("PATH", "")])
DBT_PROJECT = DbtProject(project_dir=PROJECT_ROOT / "dbt", profiles_dir=PROJECT_ROOT / "dbt")


def manifest_is_stale(project: DbtProject) -> bool:
    """True when the manifest is missing or older than any file of the dbt project."""
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    sources = [project.project_dir / "dbt_project.yml", *project.project_dir.glob("[mt]*/**/*.*")]
    return any(path.stat().st_mtime > built for path in sources if path.is_file())


if manifest_is_stale(DBT_PROJECT):
    # A fresh clone has no manifest, an edited project an old one: parse it (a few seconds) before loading.
    DBT_PROJECT.preparer.prepare(DBT_PROJECT)


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource.from_settings(SETTINGS),
            "dbt": dbt_resource(),
        }
    )
