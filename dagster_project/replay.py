"""`make demo`: replay production on the embedded data into the persistent Dagster instance.

Builds the warehouse, trains and gates a model, then backfills predictions and monitoring day by day over
the replay window as single runs, printing each stage with its elapsed time and a summary at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import date

import dagster as dg
import duckdb

from dagster_project.settings import ENVIRONMENT, PROJECT_ROOT, Settings
from dagster_project.warehouse import connect

# Dagster's console logger at INFO: the stage's own progress lines, not every engine event (those stay in the
# instance's event log, visible in the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class StageFailed(RuntimeError):
    """A replay stage's run failed; the message holds the run id and the first failure messages."""


def run_stage(
    title: str,
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    keys: list[dg.AssetKey] | None,
    tags: dict[str, str] | None = None,
    echo: Callable[[str], None] = print,
) -> dg.ExecuteInProcessResult:
    """Run one stage as a Dagster run, echoing its title and elapsed time."""
    echo(f"==> {title} ...")
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance, asset_selection=keys, tags=tags or {}, raise_on_error=False, run_config=QUIET
    )
    elapsed = time.monotonic() - started
    if not result.success:
        failures = [e.message or "" for e in result.all_events if e.is_failure]
        raise StageFailed(f"{title}: run {result.run_id} failed after {elapsed:.1f}s:\n" + "\n".join(failures[:3]))
    echo(f"    done in {elapsed:.1f}s (run {result.run_id[:8]})")
    return result


def replay(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    start: date,
    end: date,
    echo: Callable[[str], None] = print,
) -> dict[str, dg.ExecuteInProcessResult]:
    """Every lifecycle stage in order, then a backfill of scoring and monitoring over ``start..end``."""
    warehouse = definitions.resolve_job_def("warehouse_job")
    training = definitions.resolve_job_def("training_job")
    from dagster_project.defs.features import warehouse_dbt_models

    raw_keys = [k for k in warehouse.asset_layer.executable_asset_keys if k.path[0] == "raw"]
    window = {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }
    stages = [
        ("extract", "extract the raw sources (pandera-validated)", warehouse, raw_keys, None),
        ("raw_profile", "profile the raw tables", warehouse, [dg.AssetKey("raw_data_profile")], None),
        ("dbt", "build and test the dbt features", warehouse, list(warehouse_dbt_models.keys), None),
        (
            "feature_profile",
            "profile the feature tables",
            warehouse,
            [dg.AssetKey("feature_data_profile")],
            None,
        ),
        ("train", "train a LightGBM candidate", training, [dg.AssetKey("candidate_model")], None),
        ("gate", "gate: baseline and champion", training, [dg.AssetKey("champion_model")], None),
        (
            "score",
            f"score {start}..{end} (one run)",
            definitions.resolve_job_def("scoring_job"),
            None,
            window,
        ),
        (
            "monitor",
            f"monitor {start}..{end} (one run)",
            definitions.resolve_job_def("monitoring_job"),
            None,
            window,
        ),
    ]
    return {name: run_stage(title, job, instance, keys, tags, echo) for name, title, job, keys, tags in stages}


def _print_counts(con: duckdb.DuckDBPyConnection, where: str) -> None:
    tables = con.execute(
        f"select table_schema || '.' || table_name from information_schema.tables "
        f"where table_type = 'BASE TABLE' and {where} order by 1"
    ).fetchall()
    for (table,) in tables:
        print(f"  {table:<40} {con.execute(f'select count(*) from {table}').fetchone()[0]:>10,} rows")


def _summary(settings: Settings, wall: float) -> None:
    from dagster_project.use_case import load_use_case

    uc = load_use_case(settings.use_case_path)
    print("\n== Summary ==")
    with connect(settings.published_path, read_only=True) as con:
        print(f"Published file {settings.published_path} (what analysts and the app read):")
        _print_counts(con, "table_schema <> 'meta'")
        champion = con.execute(
            "select version, metrics, baseline_metrics, gate_reasons, train_start, train_end, validation_start, "
            "validation_end from ml.model_versions where model_name = ? and status = 'champion'",
            [uc.model_name],
        ).fetchone()
        history = con.execute(
            "select version, status, gate_passed from ml.model_versions where model_name = ? order by version",
            [uc.model_name],
        ).fetchall()
    with connect(settings.warehouse_path, read_only=True) as con:
        print(f"Warehouse {settings.warehouse_path} (sources and features):")
        _print_counts(con, "table_schema in ('raw', 'features') and table_name not like '\\_%' escape '\\'")
    if champion is None:
        print(f"\nNo champion for {uc.model_name}: the gate rejected every candidate (see ml.model_versions).")
    else:
        version, metrics, baseline, reasons, *windows = champion
        metrics, baseline = json.loads(metrics), json.loads(baseline)
        print(
            f"\nChampion: {uc.model_name} v{version} (trained {windows[0]}..{windows[1]}, "
            f"validated {windows[2]}..{windows[3]})"
        )
        print(f"  {'metric':<16}{'champion':>10}{'baseline':>10}")
        for name in ("roc_auc", "pr_auc", "brier", "log_loss", "precision", "recall", "f1"):
            print(f"  {name:<16}{metrics[name]:>10.4f}{baseline[name]:>10.4f}")
        print(f"  gate: {reasons}")
    print("  versions: " + ", ".join(f"v{v} {s}" for v, s, _ in history))
    print(f"\nWall time: {wall:.1f}s")
    print("Open the Dagster UI (runs, asset metadata, checks):  make dagster   -> http://127.0.0.1:3000")
    print("Open the monitoring app:                             make app       -> http://127.0.0.1:8501")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2013, 7, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2013, 12, 31))
    args = parser.parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ENVIRONMENT["DAGSTER_HOME"][0]))

    started = time.monotonic()
    from dagster_project.definitions import defs

    settings = Settings.from_env()
    print(f"Replaying production into {settings.warehouse_path} (Dagster instance {os.environ['DAGSTER_HOME']})")
    try:
        replay(defs(), dg.DagsterInstance.get(), args.start, args.end, echo=lambda line: print(line, flush=True))
    except StageFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    _summary(settings, time.monotonic() - started)


if __name__ == "__main__":
    main()
