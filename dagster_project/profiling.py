"""Data profiles of warehouse tables: per column null share, distinct count, min, max and mean."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl

from dagster_project.warehouse import columns_of, ensure_schema, replace_rows

PROFILE_TABLE = "analysis.table_profiles"
NUMERIC_PREFIXES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)


def ensure_profile_table(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schema(con, "analysis")
    con.execute(
        f"create table if not exists {PROFILE_TABLE} (table_name varchar not null, column_name varchar not null, "
        "column_type varchar, row_count bigint, null_share double, distinct_count bigint, min_value varchar, "
        "max_value varchar, mean double, profiled_at timestamptz, run_id varchar, "
        "primary key (table_name, column_name))"
    )


def profile_table(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    """One row per column of ``table``; computed in DuckDB in one statement."""
    columns = columns_of(con, table)
    parts = []
    for column, data_type in columns:
        quoted = '"' + column.replace('"', '""') + '"'
        numeric = data_type.upper().startswith(NUMERIC_PREFIXES)
        mean = f"avg({quoted})::double" if numeric else "null::double"
        parts.append(
            f"select '{column}' as column_name, '{data_type}' as column_type, count(*) as row_count, "
            f"coalesce(1 - count({quoted}) / nullif(count(*), 0), 0)::double as null_share, "
            f"count(distinct {quoted}) as distinct_count, min({quoted})::varchar as min_value, "
            f"max({quoted})::varchar as max_value, {mean} as mean from {table}"
        )
    return con.execute(" union all ".join(parts)).pl()


def write_profile(con: duckdb.DuckDBPyConnection, table: str, run_id: str) -> pl.DataFrame:
    """Profile ``table`` and replace its rows in the profile table (one transaction)."""
    ensure_profile_table(con)
    profile = profile_table(con, table).with_columns(
        pl.lit(table).alias("table_name"),
        pl.lit(datetime.now(UTC)).alias("profiled_at"),
        pl.lit(run_id).alias("run_id"),
    )
    replace_rows(con, PROFILE_TABLE, "table_name = ?", [table], profile.to_arrow())
    return profile
