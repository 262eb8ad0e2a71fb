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
from datetime import date, timedelta

import dagster as dg
import duckdb

from dagster_project.defs.training import GATE_CHECK
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
    keys: list[dg.AssetKey] | None = None,
    tags: dict[str, str] | None = None,
    echo: Callable[[str], None] = print,
    run_config: dict | None = None,
    tolerate_failed_gate: bool = False,
) -> dg.ExecuteInProcessResult:
    """Run one stage as a Dagster run, echoing its title and elapsed time.

    With ``tolerate_failed_gate`` a run stopped only by the blocking gate check counts as done: the candidate
    was rejected and the champion stays, which is the gate doing its job.
    """
    echo(f"==> {title} ...")
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=keys,
        tags=tags or {},
        raise_on_error=False,
        run_config=QUIET | (run_config or {}),
    )
    elapsed = time.monotonic() - started
    gate = [e for e in result.get_asset_check_evaluations() if e.check_name == GATE_CHECK]
    if gate:
        echo("    gate " + ("passed" if gate[0].passed else "FAILED: candidate rejected, the champion stays"))
    stopped_by_gate = bool(gate) and not gate[0].passed and tolerate_failed_gate
    if not result.success and not stopped_by_gate:
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
    """Build the warehouse, then walk ``start..end`` as production would: train on the first day and at every
    retraining date of the YAML's cadence (on the labels known that day), and between trainings score and
    monitor each period as one backfill run."""
    from dagster_project.defs.features import warehouse_dbt_models
    from dagster_project.defs.jobs import training_run_config
    from dagster_project.defs.resources import USE_CASE

    warehouse = definitions.resolve_job_def("warehouse_job")
    raw_keys = [k for k in warehouse.asset_layer.executable_asset_keys if k.path[0] == "raw"]
    results = {
        "extract": run_stage("extract the raw sources (pandera-validated)", warehouse, instance, raw_keys, echo=echo),
        "raw_profile": run_stage(
            "profile the raw tables", warehouse, instance, [dg.AssetKey("raw_data_profile")], echo=echo
        ),
        "dbt": run_stage(
            "build and test the dbt features", warehouse, instance, list(warehouse_dbt_models.keys), echo=echo
        ),
        "feature_profile": run_stage(
            "profile the feature tables", warehouse, instance, [dg.AssetKey("feature_data_profile")], echo=echo
        ),
    }
    trainings = sorted({start, *USE_CASE.retraining_dates(start, end)})
    periods = zip(trainings, [*(d - timedelta(days=1) for d in trainings[1:]), end], strict=True)
    for first, last in periods:
        results[f"train {first}"] = run_stage(
            f"train, tune and gate a candidate on the labels known on {first}",
            definitions.resolve_job_def("training_job"),
            instance,
            echo=echo,
            run_config=training_run_config(first.isoformat()),
            tolerate_failed_gate=True,
        )
        window = {
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        }
        results[f"score {first}"] = run_stage(
            f"score {first}..{last} (one run)",
            definitions.resolve_job_def("scoring_job"),
            instance,
            tags=window,
            echo=echo,
        )
        results[f"monitor {first}"] = run_stage(
            f"monitor {first}..{last} (one run)",
            definitions.resolve_job_def("monitoring_job"),
            instance,
            tags=window,
            echo=echo,
        )
    return results


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
        versions = con.execute(
            "select version, as_of, status, metrics, baseline_metrics, n_trials, tuning_seconds, "
            "train_start, train_end, test_start, test_end from ml.model_versions where model_name = ? "
            "order by version",
            [uc.model_name],
        ).fetchall()
        events = con.execute(
            "select event_at, version, event, actor from ml.model_history where model_name = ? "
            "and event in ('promoted', 'rolled_back', 'rejected') order by event_at",
            [uc.model_name],
        ).fetchall()
    with connect(settings.warehouse_path, read_only=True) as con:
        print(f"Warehouse {settings.warehouse_path} (sources and features):")
        _print_counts(con, "table_schema in ('raw', 'features') and not starts_with(table_name, '_')")
    print(f"\nModel versions of {uc.model_name} (metrics on each version's own test window):")
    print(
        f"  {'ver':>3} {'trained on':<11} {'train window':<24} {'test window':<24} {'ROC-AUC':>8} "
        f"{'baseline':>8} {'ECE':>6} {'trials':>6} {'tuning s':>8}  status"
    )
    for version, as_of, status, metrics, baselines, trials, seconds, t0, t1, s0, s1 in versions:
        metrics, baselines = json.loads(metrics), json.loads(baselines)
        best = max(b["roc_auc"] for b in baselines.values() if b.get("roc_auc") is not None)
        print(
            f"  {version:>3} {as_of!s:<11} {f'{t0}..{t1}':<24} {f'{s0}..{s1}':<24} {metrics['roc_auc']:>8.4f} "
            f"{best:>8.4f} {metrics['ece']:>6.3f} {trials:>6} {seconds:>8.1f}  {status}"
        )
    champion = next((v for v in versions if v[2] == "champion"), None)
    if champion is not None:
        metrics, baselines = json.loads(champion[3]), json.loads(champion[4])
        columns = {f"v{champion[0]}": metrics} | baselines
        print(f"\nChampion v{champion[0]} on its test window {champion[9]}..{champion[10]}:")
        print(f"  {'metric':<10}" + "".join(f"{name:>16}" for name in columns))
        for name in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "precision", "recall", "f1"):
            cells = "".join(f"{'' if m.get(name) is None else format(m[name], '.4f'):>16}" for m in columns.values())
            print(f"  {name:<10}{cells}")
    _monitoring_summary(settings, uc.model_name)
    print("Champion history:")
    for at, version, event, actor in events:
        print(f"  {at:%Y-%m-%d %H:%M:%S}  v{version} {event} by {actor}")
    print(f"\nWall time: {wall:.1f}s")
    print("Open the Dagster UI (runs, asset metadata, checks):  make dagster   -> http://127.0.0.1:3000")
    print("Open the monitoring app:                             make app       -> http://127.0.0.1:8501")


def _monitoring_summary(settings: Settings, model_name: str) -> None:
    """Per month: realised against estimated ROC-AUC, dataset drift, the most drifted features; the alerts."""
    with connect(settings.published_path, read_only=True) as con:
        tables = {
            t
            for (t,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'monitoring'"
            ).fetchall()
        }
        if not {"performance_daily", "feature_drift_daily", "dataset_drift_daily", "alerts"} <= tables:
            return
        months = con.execute(
            """
            select strftime(p.partition_date, '%Y-%m') as month, count(*) as days,
                avg(p.roc_auc), avg(p.est_roc_auc), avg(abs(p.est_roc_auc_error)),
                avg(p.base_rate), avg(p.mean_prediction),
                count(*) filter (d.dataset_drifted), avg(d.drifted_share)
            from monitoring.performance_daily p
            join monitoring.dataset_drift_daily d using (partition_date, model_name)
            where p.model_name = ? group by 1 order by 1
            """,
            [model_name],
        ).fetchall()
        drifted = dict(
            con.execute(
                """
                with days as (
                    select strftime(partition_date, '%Y-%m') as month, feature,
                        avg(drifted::int) as share, count(*) as n
                    from monitoring.feature_drift_daily
                    where model_name = ? and kind in ('numeric', 'categorical', 'prediction') and not insufficient_data
                    group by all
                )
                select month, string_agg(feature || ' ' || round(100 * share)::int || '%', ', ' order by share desc)
                from days where share >= 0.5 group by 1
                """,
                [model_name],
            ).fetchall()
        )
        mae, bias, n_days = con.execute(
            "select avg(abs(est_roc_auc_error)), avg(est_roc_auc_error), count(est_roc_auc_error) "
            "from monitoring.performance_daily where model_name = ?",
            [model_name],
        ).fetchone()
        alerts = con.execute(
            "select severity, kind, count(*), count(*) filter (state = 'open'), sum(days_firing) "
            "from monitoring.alerts where model_name = ? group by all order by 1, 2",
            [model_name],
        ).fetchall()
    print("\nMonitoring by month (realised daily ROC-AUC against the label-free estimate; drift per day):")
    print(
        f"  {'month':<8} {'days':>4} {'ROC-AUC':>8} {'estimate':>8} {'|error|':>8} {'base rate':>9} "
        f"{'mean p':>7} {'drift days':>10} {'drifted share':>13}"
    )
    for month, days, auc, est, err, base, mean_p, drift_days, share in months:
        cells = ["" if v is None else f"{v:.4f}" for v in (auc, est, err)]
        print(
            f"  {month:<8} {days:>4} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8} {base or 0:>9.3f} {mean_p or 0:>7.3f} "
            f"{drift_days:>10} {share or 0:>13.2f}"
        )
    if n_days:
        print(f"  estimated against realised daily ROC-AUC over {n_days} days: MAE {mae:.4f}, mean error {bias:+.4f}")
    print("Features drifted on at least half of the month's days (share of days):")
    for month, features in sorted(drifted.items()):
        print(f"  {month}: {features}")
    print("Alerts (episodes of consecutive firing days):")
    for severity, kind, n, still_open, days in alerts:
        print(f"  {severity:<5} {kind:<22} {n:>4} alerts, {still_open} open, {days} firing days")


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
