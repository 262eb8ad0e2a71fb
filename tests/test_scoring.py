"""Scoring partitions: reruns are idempotent, a tampered model is refused, an empty day writes nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.conftest import REPLAY, Pipeline


def _day(path: Path, day: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "select count(*), count(distinct flight_id), min(scored_at), max(run_id), sum(probability) "
            "from predictions.flight_delay where flight_date = ?",
            [day],
        ).fetchall()


def test_rerunning_a_partition_replaces_its_rows(pipeline: Pipeline):
    day = REPLAY[0].isoformat()
    warehouse = pipeline.settings.warehouse_path
    ((count, distinct, scored_at, run_id, total),) = _day(warehouse, day)
    assert count == distinct > 0

    result = pipeline.run("scoring_job", day)

    assert result.success
    ((count_after, distinct_after, scored_at_after, run_id_after, total_after),) = _day(warehouse, day)
    assert (count_after, distinct_after) == (count, distinct)
    assert total_after == total
    assert run_id_after == result.run_id != run_id
    assert scored_at_after > scored_at
    with duckdb.connect(str(warehouse), read_only=True) as con:
        duplicates = con.execute(
            "select count(*) from (select flight_id from predictions.flight_delay "
            "group by flight_id having count(*) > 1)"
        ).fetchone()[0]
    assert duplicates == 0


def test_a_model_file_that_differs_from_its_sha256_is_refused_before_scoring(pipeline: Pipeline):
    day = REPLAY[1].isoformat()
    warehouse = pipeline.settings.warehouse_path
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (folder,) = con.execute("select artifact_path from ml.model_versions where status = 'champion'").fetchone()
    model_file = Path(folder) / "model.txt"
    original = model_file.read_bytes()
    before = _day(warehouse, day)
    try:
        # One changed leaf value: the file still parses, only its bytes differ.
        model_file.write_bytes(original.replace(b"leaf_value=", b"leaf_value=1", 1))
        result = pipeline.run("scoring_job", day)
    finally:
        model_file.write_bytes(original)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = failure.message + "".join(cause.message for cause in [failure.cause] if cause)
    assert "SHA-256" in text and "refused" in text
    assert _day(warehouse, day) == before


def test_a_day_without_rows_is_scored_as_empty_not_as_an_error(pipeline: Pipeline):
    # The sources end on 2013-04-10: a later day has no scheduled flights yet.
    result = pipeline.run("scoring_job", "2013-04-20")

    assert result.success
    materialization = result.asset_materializations_for_node("daily_predictions")[0]
    assert materialization.metadata["dagster/row_count"].value == 0
    assert _day(pipeline.settings.warehouse_path, "2013-04-20")[0][0] == 0
