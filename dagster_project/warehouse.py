"""The DuckDB warehouse: connections, transactions and atomic partition replacement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file; the writer creates its folder on first use."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: all of it commits or none of it does."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def ensure_schema(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    con.execute(f"create schema if not exists {schema}")


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """Insert an Arrow table's rows into ``table``, matching columns by name (no Python loop over rows)."""
    if not rows.num_rows:
        return
    con.register("_rows_to_insert", rows)
    try:
        con.execute(f"insert into {table} by name select * from _rows_to_insert")
    finally:
        con.unregister("_rows_to_insert")


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    where: str,
    params: list,
    rows: pa.Table,
) -> int:
    """Delete the rows matching ``where`` and insert ``rows`` in one transaction (idempotent rewrite).

    ``rows`` must carry the table's columns by name; the table must already exist.
    """
    with transaction(con):
        con.execute(f"delete from {table} where {where}", params)
        insert_rows(con, table, rows)
    return rows.num_rows


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    """(name, type) of each column of ``schema.table``, in order; a missing relation fails with its name."""
    schema, name = relation.split(".")
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()
    if not rows:
        raise LookupError(f"relation {relation} does not exist in the warehouse")
    return rows
