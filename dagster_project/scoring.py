"""Batch scoring: one partition day at a time, each day's rows replaced in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from dagster_project.dataset import partition_rows
from dagster_project.registry import LoadedModel
from dagster_project.use_case import UseCase
from dagster_project.warehouse import ensure_schema, replace_rows


def ensure_predictions_table(con: duckdb.DuckDBPyConnection, uc: UseCase) -> None:
    ensure_schema(con, "predictions")
    con.execute(
        f"create table if not exists {uc.predictions_table} ("
        f"{uc.partition_column} date not null, {uc.entity_key} varchar not null, model_name varchar not null, "
        "model_version integer not null, scored_at timestamptz not null, run_id varchar not null, "
        "probability double not null, decision boolean not null, threshold double not null, "
        f"primary key ({uc.partition_column}, {uc.entity_key}))"
    )
    con.execute(f"create or replace view {uc.predictions_table}_latest as {latest_view_sql(uc)}")


def latest_view_sql(uc: UseCase) -> str:
    """The analysts' `latest` view: the newest scored day (tomorrow's entities once the evening batch ran)."""
    return (
        f"select * from {uc.predictions_table} where {uc.partition_column} = "
        f"(select max({uc.partition_column}) from {uc.predictions_table})"
    )


def days(start: date, end: date) -> Iterator[date]:
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


@dataclass(frozen=True)
class ScoredDay:
    day: date
    rows: int
    mean_probability: float | None


def score_day(con: duckdb.DuckDBPyConnection, uc: UseCase, model: LoadedModel, day: date, run_id: str) -> ScoredDay:
    """Score every entity of ``day`` with ``model`` and replace that day's predictions atomically."""
    frame = partition_rows(con, uc, day, day, model.signature.features)
    scored_at = datetime.now(UTC)
    if frame.height:
        probability = model.scorer.predict(frame)
    else:
        probability = np.empty(0)
    rows = pa.table(
        {
            uc.partition_column: frame.get_column(uc.partition_column).to_arrow(),
            uc.entity_key: frame.get_column(uc.entity_key).cast(str).to_arrow(),
            "model_name": pa.array([model.model_name] * frame.height, pa.string()),
            "model_version": pa.array([model.version] * frame.height, pa.int32()),
            "scored_at": pa.array([scored_at] * frame.height, pa.timestamp("us", tz="UTC")),
            "run_id": pa.array([run_id] * frame.height, pa.string()),
            "probability": pa.array(probability, pa.float64()),
            "decision": pa.array(probability >= model.threshold, pa.bool_()),
            "threshold": pa.array([model.threshold] * frame.height, pa.float64()),
        }
    )
    # An empty day writes nothing but still clears stale rows of that day: the partition is what was scored.
    replace_rows(con, uc.predictions_table, f"{uc.partition_column} = ?", [day], rows)
    return ScoredDay(day, frame.height, float(probability.mean()) if frame.height else None)
