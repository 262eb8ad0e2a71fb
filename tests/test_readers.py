"""Readers never block the writer: an analyst holding the published file open in another process does not
stop the nightly run, keeps a consistent old state, and a new connection sees the new one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.conftest import LAST_SOURCE_DAY, Pipeline

READER = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
query = ("select (select count(*) from predictions.flight_delay), "
         "(select count(*) from monitoring.performance_daily), "
         "(select max(flight_date)::varchar from predictions.flight_delay)")
print(json.dumps(con.execute(query).fetchone()), flush=True)
sys.stdin.readline()
print(json.dumps(con.execute(query).fetchone()), flush=True)
"""


def _state(path: Path) -> list:
    with duckdb.connect(str(path), read_only=True) as con:
        return list(
            con.execute(
                "select (select count(*) from predictions.flight_delay), "
                "(select count(*) from monitoring.performance_daily), "
                "(select max(flight_date)::varchar from predictions.flight_delay)"
            ).fetchone()
        )


def test_an_open_reader_neither_blocks_the_run_nor_sees_half_of_it(pipeline: Pipeline, published_db: Path):
    day = LAST_SOURCE_DAY.isoformat()  # not scored by the replay
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(published_db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = json.loads(reader.stdout.readline())
        assert before[2] < day

        scoring = pipeline.run("scoring_job", day)
        monitoring = pipeline.run("monitoring_job", day)

        reader.stdin.write("\n")
        reader.stdin.flush()
        seen_by_open_reader = json.loads(reader.stdout.readline())
    finally:
        reader.kill()
        reader.wait()

    assert scoring.success and monitoring.success
    assert seen_by_open_reader == before
    after = _state(published_db)
    assert after[2] == day
    assert after[0] > before[0] and after[1] == before[1] + 1
