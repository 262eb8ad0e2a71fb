"""Genericity: a synthetic churn use case with its own dbt models, key, label, label delay, features and
YAML runs training, the gate, scoring and monitoring through the same Dagster assets, with no Python change."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa

from dagster_project.use_case import load_use_case

HERE = Path(__file__).parent / "second_use_case"
DAYS = 62  # 2021-01-01 .. 2021-03-03
ACCOUNTS = 300


def _generate(warehouse: Path) -> None:
    """Accounts whose churn depends on tickets, spend, tenure and plan; regions differ in base rate."""
    rng = np.random.default_rng(11)
    account = np.repeat(np.arange(ACCOUNTS), DAYS)
    day = np.tile(np.arange(DAYS), ACCOUNTS)
    plan = np.array(["basic", "plus", "pro"])[account % 3]
    region = np.array(["north", "south", "east", "west"])[(account // 3) % 4]
    tenure = (account * 7) % 900 + day
    spend = np.round(20 + 30 * (account % 3) + rng.normal(0, 5, account.size), 2)
    tickets = rng.poisson(0.5 + 2.0 * (account % 5 == 0), account.size)
    logit = -2.5 + 0.9 * tickets - 0.002 * tenure + 0.6 * (plan == "basic") + 0.3 * (region == "south")
    churned = rng.uniform(size=account.size) < 1 / (1 + np.exp(-logit))
    region_rate = {"north": 0.12, "south": 0.2, "east": 0.13, "west": 0.14}
    rows = pa.table(
        {
            "account_id": [f"A{a:04d}" for a in account],
            "snapshot_date": [date(2021, 1, 1) + timedelta(days=int(d)) for d in day],
            "plan": plan,
            "region": region,
            "tenure_days": tenure,
            "monthly_spend": spend,
            "support_tickets_30d": tickets,
            "churned_7d": churned,
            "region_churn_rate_prior": [region_rate[r] for r in region],
        }
    )
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw_synth")
        con.register("rows", rows)
        con.execute("create table raw_synth.account_days as select * from rows")


def test_a_second_use_case_runs_the_whole_lifecycle_without_python_changes(tmp_path: Path):
    from dagster_project.defs.monitoring import daily_monitoring
    from dagster_project.defs.resources import WarehouseResource
    from dagster_project.defs.scoring import daily_predictions
    from dagster_project.defs.training import candidate_model, champion_model

    warehouse_path = tmp_path / "churn.duckdb"
    _generate(warehouse_path)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "run",
            "--project-dir",
            str(HERE / "dbt"),
            "--profiles-dir",
            str(HERE / "dbt"),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
            "--quiet",
        ],
        env=os.environ | {"MLOPS_WAREHOUSE": str(warehouse_path)},
        check=True,
    )
    warehouse = WarehouseResource(
        warehouse_path=str(warehouse_path),
        published_path=str(tmp_path / "published.duckdb"),
        models_dir=str(tmp_path / "models"),
        use_case_path=str(HERE / "use_case.yml"),
        source_dir=str(tmp_path),
    )
    resources = {"warehouse": warehouse}
    instance = dg.DagsterInstance.ephemeral()

    trained = dg.materialize([candidate_model, champion_model], resources=resources, instance=instance)
    assert trained.success
    for day in ("2021-03-01", "2021-03-02"):
        assert dg.materialize([daily_predictions], resources=resources, partition_key=day, instance=instance).success
        assert dg.materialize([daily_monitoring], resources=resources, partition_key=day, instance=instance).success

    uc = load_use_case(HERE / "use_case.yml")
    with duckdb.connect(str(tmp_path / "published.duckdb"), read_only=True) as con:
        ((status, metrics, as_of, test_end),) = con.execute(
            "select status, metrics, as_of, test_end from ml.model_versions where model_name = 'churn_lgbm'"
        ).fetchall()
        assert status == "champion" and as_of == uc.initial_as_of
        assert test_end == as_of - timedelta(days=7)  # the label lands a week later
        scored = con.execute(
            "select snapshot_date, count(*), count(distinct snapshot_id) from predictions.churn group by 1 order by 1"
        ).fetchall()
        assert scored == [(date(2021, 3, 1), ACCOUNTS, ACCOUNTS), (date(2021, 3, 2), ACCOUNTS, ACCOUNTS)]
        performance = con.execute(
            "select n_labelled, status, roc_auc from monitoring.performance_daily order by partition_date"
        ).fetchall()
        assert [(n, s) for n, s, _ in performance] == [(ACCOUNTS, "ok"), (ACCOUNTS, "ok")]
        drift = {f for (f,) in con.execute("select distinct feature from monitoring.feature_drift_daily").fetchall()}
        assert drift == {"plan", "region", "tenure_days", "monthly_spend", "support_tickets_30d", "__prediction__"}
        segments = con.execute("select distinct segment_value from ml.model_segment_metrics").fetchall()
        assert {s for (s,) in segments} == {"basic", "plus", "pro"}
