"""Scale-up dataset for the scoring benchmarks (issue 4, point 5): partitions of 1M and 10M flights.

Multiplies the flights schedule of a built warehouse (features.flight_features) into single partitions of
``--sizes`` rows each, all in DuckDB SQL (no Python loop over rows), and writes them into a DuckDB file outside
the repo together with the original feature rows (the champion's training window: validation reads its ranges
there) and the ml.* registry tables (the champion's artifact paths are absolute, so it loads as is):

    .venv/bin/python bench/generate_scale.py --source /tmp/bench/wh.duckdb --target /tmp/bench/scale.duckdb

Variation: each generated row is a row of the source drawn with replacement (a hash of the row number picks
it, so the draw is reproducible); every DOUBLE feature (weather, trailing late rates) is multiplied by a
uniform factor in [1 - jitter, 1 + jitter] and kept inside the column's observed minimum and maximum; integer
and categorical features (hours, distance, plane, carrier, airports) keep the drawn row's values. Every row gets
a unique flight_id (``S<rows>-<n>``), the partition one flight_date, and day_of_week is that date's (taken from
a source row of the same weekday, whatever convention the column uses). Partition k of ``--sizes`` is dated
``--first-day`` + k days.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

FEATURES = "features.flight_features"
KEY, DAY = "flight_id", "flight_date"
REPO = Path(__file__).resolve().parents[1]


def column_types(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = 'src' and table_schema = 'features' and table_name = 'flight_features' "
        "order by ordinal_position"
    ).fetchall()


def partition_sql(columns: list[tuple[str, str]], rows: int, n: int, day: date, jitter: float, seed: int) -> str:
    """One SELECT producing ``rows`` rows dated ``day`` from the ``n`` source rows in ``base`` (rn 0..n-1).

    ``n`` is a literal: a scalar subquery in the join condition made DuckDB fall back to a nested-loop join.
    """
    select = []
    for name, kind in columns:
        if name == KEY:
            select.append(f"('S{rows}-' || r.i)::{kind} as {name}")
        elif name == DAY:
            select.append(f"DATE '{day}' as {name}")
        elif name == "day_of_week":
            select.append(f"dow.day_of_week as {name}")
        elif kind == "DOUBLE":
            # Multiplicative jitter, clipped to the column's observed range (rates stay in [0, 1], no negative
            # precipitation); nulls stay null.
            select.append(
                f"least(greatest(b.{name} * (1 + {jitter} * (2 * random() - 1)), lim.min_{name}), lim.max_{name}) "
                f"as {name}"
            )
        else:
            select.append(f"b.{name}")
    return (
        f"select {', '.join(select)} from range({rows}) r(i) "
        f"join base b on b.rn = hash(r.i + {seed}) % {n} "
        f"cross join limits lim "
        f"cross join (select any_value(day_of_week) as day_of_week from base "
        f"where dayofweek({DAY}) = dayofweek(DATE '{day}')) dow"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="a built warehouse with a champion")
    parser.add_argument("--target", type=Path, default=Path("/tmp/bench/scale.duckdb"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--first-day", type=date.fromisoformat, default=date(2014, 1, 1))
    parser.add_argument("--jitter", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.target.resolve().is_relative_to(REPO):
        parser.error(f"--target {args.target} is inside the repository; write it elsewhere (e.g. /tmp/bench)")
    args.target.parent.mkdir(parents=True, exist_ok=True)
    args.target.unlink(missing_ok=True)
    Path(f"{args.target}.wal").unlink(missing_ok=True)

    con = duckdb.connect(str(args.target))
    con.execute(f"attach '{args.source}' as src (read_only)")
    started = time.monotonic()
    # The registry: every table of schema ml, so registry.load_champion works on the target.
    con.execute("create schema ml")
    for (table,) in con.execute(
        "select table_name from information_schema.tables where table_catalog = 'src' and table_schema = 'ml' "
        "and table_type = 'BASE TABLE'"
    ).fetchall():
        con.execute(f"create table ml.{table} as select * from src.ml.{table}")
    con.execute("create schema features")
    con.execute(f"create table {FEATURES} as select * from src.{FEATURES}")
    columns = column_types(con)
    doubles = [name for name, kind in columns if kind == "DOUBLE"]
    con.execute(f"create temp table base as select *, (row_number() over () - 1)::ubigint as rn from src.{FEATURES}")
    limits = ", ".join(f"min({c}) as min_{c}, max({c}) as max_{c}" for c in doubles)
    con.execute(f"create temp table limits as select {limits} from base")
    (n,) = con.execute("select count(*) from base").fetchone()
    print(f"source: {n:,} rows; {len(doubles)} jittered columns")
    for k, rows in enumerate(args.sizes):
        day = args.first_day + timedelta(days=k)
        t0 = time.monotonic()
        con.execute(f"insert into {FEATURES} {partition_sql(columns, rows, n, day, args.jitter, args.seed + k)}")
        print(f"{day}: {rows:,} rows in {time.monotonic() - t0:.1f} s")
    con.execute("checkpoint")
    con.close()
    size = args.target.stat().st_size / 2**20
    print(f"wrote {args.target} ({size:,.0f} MiB) in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
