"""Publishing reader-facing tables into a separate read-only DuckDB file, swapped in atomically.

Readers (analysts, the Streamlit app) open only the published file, so they can never block the writer:
a reader holding the old file keeps a consistent old state; the next connection sees the new one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb

PUBLICATIONS_TABLE = "meta.publications"


def publish(
    con: duckdb.DuckDBPyConnection,
    published_path: Path,
    tables: list[str],
    views: dict[str, str] | None = None,
    run_id: str | None = None,
) -> Path:
    """Copy ``tables`` from the writer's connection into a fresh copy of the published file, then swap it in.

    Tables not named keep their previous published content; ``views`` (name -> select) are recreated.
    """
    published_path.parent.mkdir(parents=True, exist_ok=True)
    staging = published_path.with_name(f".{published_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if published_path.exists():
            shutil.copyfile(published_path, staging)
        con.execute(f"attach '{staging}' as _publish")
        try:
            for table in tables:
                schema, _ = table.split(".")
                con.execute(f"create schema if not exists _publish.{schema}")
                con.execute(f"create or replace table _publish.{table} as select * from {table}")
            con.execute("create schema if not exists _publish.meta")
            con.execute(
                f"create table if not exists _publish.{PUBLICATIONS_TABLE} "
                "(published_at timestamptz, run_id varchar, tables varchar)"
            )
            con.execute(
                f"insert into _publish.{PUBLICATIONS_TABLE} values (?, ?, ?)",
                [datetime.now(UTC), run_id, ", ".join(tables)],
            )
        finally:
            con.execute("detach _publish")
        if views:
            # Views are created on the file itself so their definitions do not name the attach alias.
            with duckdb.connect(str(staging)) as published:
                for name, select in views.items():
                    published.execute(f"create or replace view {name} as {select}")
        os.replace(staging, published_path)
    finally:
        staging.unlink(missing_ok=True)
    return published_path
