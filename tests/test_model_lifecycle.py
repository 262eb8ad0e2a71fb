"""The model lifecycle on a copy of the session warehouse: retraining on later windows, determinism, the
gate (shuffled labels, schema), promotion and rollback from the command line and from Dagster, scoring after
a rollback, the retraining schedule and the alert sensor."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from dagster_project.cli import main as mlops
from tests.conftest import AS_OF, Pipeline

LATER = "2013-04-06"  # labels up to 5 April: the windows slide by five days


@dataclass
class Copy:
    warehouse: object  # WarehouseResource
    root: Path

    def train(self, as_of: str, use_case: Path | None = None) -> dg.ExecuteInProcessResult:
        from dagster_project.defs.training import candidate_model, champion_model

        warehouse = self.warehouse if use_case is None else _resource(self.warehouse, use_case_path=str(use_case))
        return dg.materialize(
            [candidate_model, champion_model],
            resources={"warehouse": warehouse},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config={"ops": {"candidate_model": {"config": {"as_of": as_of}}}},
        )

    def score(self, day: str) -> dg.ExecuteInProcessResult:
        from dagster_project.defs.scoring import daily_predictions

        return dg.materialize(
            [daily_predictions],
            resources={"warehouse": self.warehouse},
            partition_key=day,
            instance=dg.DagsterInstance.ephemeral(),
        )

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(self.warehouse.warehouse_path, read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def execute(self, sql: str, params: list | dict | None = None) -> None:
        with duckdb.connect(self.warehouse.warehouse_path) as con:
            con.execute(sql, params or [])

    def status(self) -> dict[int, str]:
        return dict(self.query("select version, status from ml.model_versions order by version"))


def _resource(warehouse, **changes: str):
    """The same resource with some paths changed."""
    fields = ("warehouse_path", "published_path", "models_dir", "use_case_path", "source_dir")
    return type(warehouse)(**({f: getattr(warehouse, f) for f in fields} | changes))


def _copy(pipeline: Pipeline, target: Path) -> Copy:
    from dagster_project.defs.resources import WarehouseResource

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(pipeline.settings.warehouse_path, target / "warehouse.duckdb")
    shutil.copy(pipeline.settings.published_path, target / "published.duckdb")
    warehouse = WarehouseResource(
        warehouse_path=str(target / "warehouse.duckdb"),
        published_path=str(target / "published.duckdb"),
        models_dir=str(target / "models"),
        use_case_path=str(pipeline.settings.use_case_path),
        source_dir=str(pipeline.settings.source_dir),
    )
    return Copy(warehouse, target)


@pytest.fixture(scope="module")
def lifecycle(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Copy:
    """A copy of the session warehouse with two more versions trained on the later windows."""
    root = tmp_path_factory.mktemp("lifecycle")
    copy = _copy(pipeline, root)
    # These tests are about the lifecycle's mechanics, so the later candidates must pass the gate: on two
    # weeks of test rows the strict champion tolerances would make that a coin toss (the gate's failures
    # are tested on their own below).
    raw = yaml.safe_load(pipeline.settings.use_case_path.read_text())
    raw["gate"] |= {"max_drop_vs_champion": 0.05, "max_segment_drop_vs_champion": 0.5}
    (root / "use_case.yml").write_text(yaml.safe_dump(raw))
    copy.warehouse = _resource(copy.warehouse, use_case_path=str(root / "use_case.yml"))
    assert copy.train(LATER).success
    assert copy.train(LATER).success  # same data, same seed
    return copy


@pytest.fixture
def cli_env(lifecycle: Copy, monkeypatch: pytest.MonkeyPatch) -> Copy:
    monkeypatch.setenv("MLOPS_WAREHOUSE", lifecycle.warehouse.warehouse_path)
    monkeypatch.setenv("MLOPS_PUBLISHED", lifecycle.warehouse.published_path)
    return lifecycle


def test_windows_are_consecutive_and_the_champion_is_judged_on_the_same_test_rows(lifecycle: Copy):
    rows = lifecycle.query(
        "select version, as_of, train_start, train_end, validation_start, validation_end, test_start, test_end, "
        "champion_version, champion_metrics, gate_passed, status from ml.model_versions order by version"
    )
    assert [r[0] for r in rows] == [1, 2, 3]
    for version, as_of, t0, t1, v0, v1, s0, s1, *_ in rows:
        assert t0 <= t1 < v0 <= v1 < s0 <= s1 < as_of, version
    _, as_of, *_, champion_version, champion_metrics, gate_passed, status = rows[1]
    assert as_of == date.fromisoformat(LATER) and champion_version == 1
    assert (
        json.loads(champion_metrics)["n_rows"]
        == lifecycle.query(
            "select count(*) from features.flight_features where flight_date between ? and ?", list(rows[1][6:8])
        )[0][0]
    )
    assert status == ("archived" if gate_passed else "rejected")  # v3 replaced v2 when both passed
    champion_segments = lifecycle.query(
        "select count(*) from ml.model_segment_metrics where version = 2 and scorer = 'champion'"
    )[0][0]
    assert champion_segments > 10


def test_same_data_and_seed_give_a_byte_identical_model(lifecycle: Copy):
    folders = dict(lifecycle.query("select version, artifact_path from ml.model_versions where version in (2, 3)"))
    for name in ("model.txt", "calibration.json"):
        assert (Path(folders[2]) / name).read_bytes() == (Path(folders[3]) / name).read_bytes(), name
    trials = lifecycle.query(
        "select version, list(value order by trial) from ml.tuning_trials where version in (2, 3) group by 1 order by 1"
    )
    assert trials[0][1] == trials[1][1]


def test_the_gate_metadata_shows_each_value_next_to_its_threshold(pipeline: Pipeline):
    evaluation = next(e for e in pipeline.stage("train").get_asset_check_evaluations() if e.check_name == "passes_gate")
    metadata = evaluation.metadata
    for check in ("beats_baseline", "not_behind_champion", "input_schema_matches"):
        assert f"{check}_value" in metadata and f"{check}_threshold" in metadata
    assert metadata["beats_baseline_threshold"].value == 0.02


def test_a_model_trained_on_shuffled_labels_is_rejected_and_the_champion_stays(pipeline, tmp_path):
    copy = _copy(pipeline, tmp_path)
    # Permute the labels of the training and validation windows; the test window keeps the truth.
    copy.execute(
        """
        update features.flight_labels l set is_late = s.is_late from (
            with rows as (select flight_id, row_number() over (order by flight_id) as n
                          from features.flight_labels where flight_date < $cut),
                 labels as (select is_late, row_number() over (order by hash(flight_id, 7)) as n
                            from features.flight_labels where flight_date < $cut)
            select rows.flight_id, labels.is_late from rows join labels using (n)
        ) s where l.flight_id = s.flight_id
        """,
        {"cut": date(2013, 3, 18)},
    )
    before = copy.status()

    result = copy.train(AS_OF.isoformat())

    assert not result.success  # stopped by the blocking gate check
    gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "passes_gate")
    assert not gate.passed
    after = copy.status()
    new = max(after)
    assert after == before | {new: "rejected"}
    (reasons,) = copy.query("select gate_reasons from ml.model_versions where version = ?", [new])[0]
    assert "FAILED" in reasons and "baseline" in reasons
    assert copy.query("select event from ml.model_history where version = ? order by event_at", [new]) == [
        ("registered",),
        ("rejected",),
    ]


def test_single_class_training_data_registers_nothing(pipeline, tmp_path):
    copy = _copy(pipeline, tmp_path)
    copy.execute("update features.flight_labels set is_late = 0")
    before = copy.status()

    result = copy.train(AS_OF.isoformat())

    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "one class only" in (error.cause.message if error.cause else error.message)
    assert copy.status() == before
    assert not (tmp_path / "models").exists()


def test_a_yaml_naming_a_missing_column_fails_naming_the_key(pipeline, tmp_path):
    copy = _copy(pipeline, tmp_path)
    raw = yaml.safe_load(pipeline.settings.use_case_path.read_text())
    raw["features"]["numeric"].append("wingspan")
    use_case = tmp_path / "use_case.yml"
    use_case.write_text(yaml.safe_dump(raw))

    result = copy.train(AS_OF.isoformat(), use_case)

    error = result.get_step_failure_events()[0].step_failure_data.error
    message = error.cause.message if error.cause else error.message
    assert "features.numeric" in message and "wingspan" in message and "fix those keys" in message


def test_rollback_from_the_command_line_and_scoring_uses_the_restored_champion(cli_env: Copy, capsys):
    champion = max(v for v, s in cli_env.status().items() if s == "champion")
    assert mlops(["models", "rollback", "--reason", "bad week"]) == 0
    restored = next(v for v, s in cli_env.status().items() if s == "champion")
    assert restored != champion
    assert f"to v{restored}" in capsys.readouterr().out

    cli_env.score("2013-04-08")

    assert cli_env.query(
        "select distinct model_version from predictions.flight_delay where flight_date = '2013-04-08'"
    ) == [(restored,)]
    events = cli_env.query("select version, event, actor from ml.model_history order by event_at desc limit 2")
    assert {(v, e) for v, e, _ in events} == {(champion, "rolled_back"), (restored, "promoted")}
    assert all(actor.startswith("cli:") for *_, actor in events)
    with duckdb.connect(cli_env.warehouse.published_path, read_only=True) as con:
        assert con.execute("select version from ml.model_versions where status = 'champion'").fetchone() == (restored,)


def test_the_dagster_promotion_job_writes_the_same_history(cli_env: Copy):
    from dagster_project.defs.training import model_promotion_job

    target = next(v for v, s in cli_env.status().items() if s == "archived")
    result = model_promotion_job.execute_in_process(
        resources={"warehouse": cli_env.warehouse},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {
                "change_champion": {"config": {"action": "promote", "version": target, "reason": "back to the best"}}
            }
        },
    )
    assert result.success
    assert cli_env.status()[target] == "champion"
    version, event, actor = cli_env.query(
        "select version, event, actor from ml.model_history order by event_at desc limit 1"
    )[0]
    assert (version, event) == (target, "promoted") and actor == f"dagster run {result.run_id}"


def test_promoting_a_rejected_or_tampered_version_needs_force(cli_env: Copy, capsys):
    cli_env.execute("update ml.model_versions set status = 'rejected', gate_reasons = 'FAILED: test' where version = 1")
    assert mlops(["models", "promote", "1"]) == 2
    assert "failed the validation gate" in capsys.readouterr().err
    assert cli_env.status()[1] == "rejected"

    folder = Path(cli_env.query("select artifact_path from ml.model_versions where version = 2")[0][0])
    calibration = folder / "calibration.json"
    original = calibration.read_bytes()
    calibration.write_bytes(original.replace(b"[", b"[0.0, ", 1))
    try:
        if cli_env.status()[2] == "champion":
            mlops(["models", "promote", "3"])
        assert mlops(["models", "promote", "2"]) == 2
        assert "SHA-256" in capsys.readouterr().err
    finally:
        calibration.write_bytes(original)

    assert mlops(["models", "promote", "1", "--force", "--reason", "analyst asked"]) == 0
    assert cli_env.status()[1] == "champion"
    (reason,) = cli_env.query(
        "select reason from ml.model_history where version = 1 and event = 'promoted' order by event_at desc limit 1"
    )[0]
    assert "forced" in reason and "failed the validation gate" in reason


def test_the_retraining_schedule_trains_on_the_data_of_its_day():
    from dagster_project.defs.jobs import retraining_schedule

    context = dg.build_schedule_context(scheduled_execution_time=datetime(2013, 8, 1, 21, tzinfo=UTC))
    request = retraining_schedule(context)
    assert request.run_config == {"ops": {"candidate_model": {"config": {"as_of": "2013-08-01"}}}}


def test_an_open_error_alert_requests_retraining_once_per_cooldown(lifecycle: Copy, tmp_path: Path):
    from dagster_project.defs.jobs import retrain_on_alert_sensor
    from dagster_project.monitoring import ALERTS_TABLE, ensure_monitoring_tables

    published = tmp_path / "published.duckdb"
    warehouse = _resource(lifecycle.warehouse, published_path=str(published))

    def add_alert(kind: str, severity: str, state: str = "open") -> str:
        alert_id = f"flight_delay_lgbm:{kind}:roc_auc:2013-04-0{len(ids) + 1}"
        ids.append(alert_id)
        with duckdb.connect(str(published)) as con:
            ensure_monitoring_tables(con)
            con.execute(
                f"insert into {ALERTS_TABLE} (alert_id, model_name, kind, subject, severity, state, opened_on, "
                "last_firing_on, opened_at, days_firing, opened_by_version, model_version, message) "
                "values (?, 'flight_delay_lgbm', ?, 'roc_auc', ?, ?, '2013-04-01', '2013-04-01', now(), 1, 1, 1, "
                "'7-day mean realised daily ROC-AUC below the floor')",
                [alert_id, kind, severity, state],
            )
        return alert_id

    def evaluate(cursor: str | None):
        context = dg.build_sensor_context(cursor=cursor, resources={"warehouse": warehouse})
        return retrain_on_alert_sensor(context), context.cursor

    ids: list[str] = []
    result, cursor = evaluate(None)
    assert isinstance(result, dg.SkipReason)  # no published file yet
    add_alert("estimated_performance", "warn")
    add_alert("missing_feature", "error")  # an error a new model cannot fix: training would fail the same way
    add_alert("performance", "error", state="closed")
    result, cursor = evaluate(cursor)
    assert isinstance(result, dg.SkipReason) and "no open error alert" in result.skip_message
    opened = add_alert("performance", "error")
    result, cursor = evaluate(cursor)
    assert isinstance(result, dg.RunRequest) and result.tags["alert"] == opened
    result, cursor = evaluate(cursor)
    assert isinstance(result, dg.SkipReason) and "cooldown" in result.skip_message
    # Still open after the cooldown (the candidate was rejected, or did not help): retrain again.
    eight_days_ago = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    result, _ = evaluate(json.dumps({"requested_at": eight_days_ago}))
    assert isinstance(result, dg.RunRequest) and result.tags["alert"] == opened
