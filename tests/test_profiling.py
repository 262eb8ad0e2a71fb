"""The data profile against values computed by hand."""

from __future__ import annotations

import duckdb
import pytest

from dagster_project.profiling import profile_table


def test_profile_of_a_small_table():
    con = duckdb.connect()
    con.execute("create schema s")
    con.execute("create table s.t as select * from (values (1, 'a'), (3, null), (null, 'b'), (3, 'a')) v(n, c)")
    profile = {r["column_name"]: r for r in profile_table(con, "s.t").to_dicts()}
    assert profile["n"]["row_count"] == 4
    assert profile["n"]["null_share"] == pytest.approx(0.25)
    assert profile["n"]["distinct_count"] == 2
    assert (profile["n"]["min_value"], profile["n"]["max_value"]) == ("1", "3")
    assert profile["n"]["mean"] == pytest.approx(7 / 3)
    assert profile["c"]["mean"] is None and profile["c"]["distinct_count"] == 2


def test_profiling_a_missing_table_fails_loudly():
    with pytest.raises(LookupError, match="s.missing"):
        profile_table(duckdb.connect(), "s.missing")
