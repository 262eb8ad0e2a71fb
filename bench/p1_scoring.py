"""P1, P1b and P3 (issue 4): scoring a large partition end to end against the floor and the pandas pattern.

Needs the scale-up file of bench/generate_scale.py. Every measurement runs in its own subprocess (peak memory =
that process's VmHWM); the tools alternate run by run so the machine's load hits them alike:

    .venv/bin/python bench/p1_scoring.py --runs 5                          # P1 / P1b at 1M, reason codes at 100k
    .venv/bin/python bench/p1_scoring.py --runs 2 --only p3                # P3: 10M rows

Tools (timed region in brackets; the model is loaded and the input schema built before it):
- ``floor``: the partition's rows already in memory as the model's float64 NumPy matrix, row-major
  [``Booster.predict``].
- ``floor_batched``: the same matrix predicted in slices of ``scoring.batch_rows`` rows [``Booster.predict``
  per slice]. On this machine it is faster than one call over the whole matrix (the slices stay in cache), so
  the floor that ``ours`` is held against is the faster of the two.
- ``ours``: ``scoring.score_day`` without reason codes, replacing the day scored by the previous run [read
  Arrow batches from DuckDB, validate (pandera), encode, predict, calibrate, insert into
  predictions.flight_delay, check one row per entity, one transaction]. Per-phase times come from wrapping the
  module's functions with a timer (``read_delete`` is the rest: reading batches and the delete).
- ``ours_empty``: the same into an empty day (another process deleted the day's predictions beforehand).
- ``ours_rc``: ``ours`` with 3 reason codes (LightGBM ``pred_contrib``).
- ``pandas``: what a Dagster user writes first [``con.execute("select * ...").df()``, categoricals coded with
  ``pd.Categorical``, ``Booster.predict`` on ``df[features].to_numpy()``, calibrate, build the output frame,
  delete the day and ``insert into ... by name select * from out`` in one transaction]; no validation.
- ``pandas_empty``: the same into an empty day.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZE_DAYS = {100_000: date(2014, 1, 1), 1_000_000: date(2014, 1, 2), 10_000_000: date(2014, 1, 3)}


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(tool: str, db: str, day: date, memory_limit: str | None = None) -> dict:
    import duckdb
    import numpy as np

    from dagster_project import registry, scoring, training
    from dagster_project.use_case import load_use_case
    from dagster_project.validation import input_schema, training_ranges

    uc = load_use_case(REPO / "use_cases" / "flight_delay.yml")
    con = duckdb.connect(db)
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    model = registry.load_champion(con, uc.model_name)
    booster = model.scorer.booster
    features = [c for c in model.signature.features]
    result: dict = {"tool": tool, "day": str(day)}
    if tool == "empty":
        # Run in a process of its own before an ``*_empty`` tool, so that tool's peak memory is its own.
        scoring.ensure_predictions_table(con, uc)
        con.execute(f"delete from {uc.predictions_table} where {uc.partition_column} = ?", [day])
        con.execute("checkpoint")
        con.close()
        return result
    tool, empty = tool.removesuffix("_empty"), tool.endswith("_empty")
    result["empty_day"] = empty
    if tool in ("floor", "floor_batched"):
        sql = scoring._feature_sql(uc, features)
        frame = con.execute(sql, [day]).pl()
        # Row-major, the layout LightGBM predicts fastest (polars hands out a column-major matrix).
        matrix = np.ascontiguousarray(model.signature.matrix(frame))
        del frame
        result["rows"] = matrix.shape[0]
        step = uc.batch_rows if tool == "floor_batched" else matrix.shape[0]
        t0 = time.perf_counter()
        for start in range(0, matrix.shape[0], step):
            booster.predict(matrix[start : start + step])
        result["seconds"] = time.perf_counter() - t0
    elif tool in ("ours", "ours_rc"):
        uc = replace(uc, reason_codes=3 if tool == "ours_rc" else 0)
        scoring.ensure_predictions_table(con, uc)
        t0 = time.perf_counter()
        schema = input_schema(uc, model, training_ranges(con, uc, model))
        result["schema_seconds"] = time.perf_counter() - t0
        phases = {"validate": 0.0, "encode": 0.0, "predict_total": 0.0, "insert": 0.0, "unique_check": 0.0}

        def timed(name, fn):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    phases[name] += time.perf_counter() - start

            return wrapper

        phases["commit"] = 0.0
        plain_transaction = scoring.transaction

        @contextmanager
        def timed_transaction(connection):
            manager = plain_transaction(connection)
            inner = manager.__enter__()
            try:
                yield inner
            except BaseException:
                if not manager.__exit__(*sys.exc_info()):
                    raise
            else:
                start = time.perf_counter()
                manager.__exit__(None, None, None)
                phases["commit"] += time.perf_counter() - start

        scoring.transaction = timed_transaction
        scoring.validate_batch = timed("validate", scoring.validate_batch)
        scoring.predict_batch = timed("predict_total", scoring.predict_batch)
        scoring._insert = timed("insert", scoring._insert)
        scoring._check_unique = timed("unique_check", scoring._check_unique)
        training.Signature.matrix = timed("encode", training.Signature.matrix)
        t0 = time.perf_counter()
        scored = scoring.score_day(con, uc, model, day, run_id=f"bench-{tool}", schema=schema)
        result["seconds"] = time.perf_counter() - t0
        result["rows"] = scored.rows
        result["quarantined"] = scored.quarantined_rows
        result["batches"] = scored.batches
        phases["predict_model"] = phases["predict_total"] - phases["encode"]  # booster + calibration + arrow
        phases["read_delete"] = (
            result["seconds"]
            - phases["validate"]
            - phases["predict_total"]
            - phases["insert"]
            - phases["unique_check"]
            - phases["commit"]
        )
        result["phases"] = phases
    elif tool == "pandas":
        import pandas as pd

        scoring.ensure_predictions_table(con, uc)
        levels = model.signature.categorical_levels
        t0 = time.perf_counter()
        df = con.execute(f"select * from {uc.feature_model} where {uc.partition_column} = ?", [day]).df()
        for c, values in levels.items():
            codes = pd.Categorical(df[c], categories=values).codes.astype("float64")
            codes[codes < 0] = np.nan
            df[c] = codes
        raw = booster.predict(df[features].to_numpy(dtype="float64", na_value=np.nan))
        probability = model.scorer.calibrator.apply(raw)
        out = pd.DataFrame(
            {
                uc.partition_column: df[uc.partition_column],
                uc.entity_key: df[uc.entity_key].astype(str),
                "model_name": model.model_name,
                "model_version": model.version,
                "scored_at": datetime.now(UTC),
                "run_id": "bench-pandas",
                "probability": probability,
                "decision": probability >= model.threshold,
                "threshold": model.threshold,
            }
        )
        con.begin()
        con.execute(f"delete from {uc.predictions_table} where {uc.partition_column} = ?", [day])
        con.execute(f"insert into {uc.predictions_table} by name select * from out")
        con.commit()
        result["seconds"] = time.perf_counter() - t0
        result["rows"] = len(out)
    else:
        raise ValueError(tool)
    con.close()
    result["num_threads_param"] = booster.params.get("num_threads")
    result["peak_mib"] = vm_hwm_mib()
    return result


def run(tool: str, db: str, rows: int, memory_limit: str | None = None) -> dict:
    if tool.endswith("_empty"):
        emptied = subprocess.run(
            [sys.executable, __file__, "--worker", "empty", "--db", db, "--day", str(SIZE_DAYS[rows])],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if emptied.returncode:
            raise RuntimeError(f"emptying {SIZE_DAYS[rows]}: {emptied.stderr[-3000:]}")
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--worker", tool, "--db", db, "--day", str(SIZE_DAYS[rows])]
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"{tool} at {rows}: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["tool"] = tool
    result["load_1min_before"] = load
    result["size"] = rows
    result["memory_limit"] = memory_limit
    print(json.dumps(result), flush=True)
    return result


def summary(results: list[dict]) -> None:
    print(
        "\n| rows | tool | wall s median (min-max) | s per 1M rows | peak MiB median (min-max) | runs | "
        "load 1 min (min-max) |"
    )
    print("|---|---|---|---|---|---|---|")
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["size"], r["tool"]), []).append(r)
    for (rows, tool), rs in groups.items():
        s = [r["seconds"] for r in rs]
        m = [r["peak_mib"] for r in rs]
        med = statistics.median(s)
        print(
            f"| {rows:,} | {tool} | {med:.2f} ({min(s):.2f}-{max(s):.2f}) | {med / rows * 1e6:.2f} | "
            f"{statistics.median(m):.0f} ({min(m):.0f}-{max(m):.0f}) | {len(rs)} | "
            f"{min(r['load_1min_before'] for r in rs):.1f}-{max(r['load_1min_before'] for r in rs):.1f} |"
        )
        if "phases" in rs[0]:
            keys = [k for k in rs[0]["phases"] if all(k in r["phases"] for r in rs)]
            print(
                "    phases (median s): "
                + ", ".join(f"{k} {statistics.median(r['phases'][k] for r in rs):.2f}" for k in keys)
            )
    medians = {key: statistics.median(r["seconds"] for r in rs) for key, rs in groups.items()}
    for (rows, tool), med in medians.items():
        floors = [medians[(rows, f)] for f in ("floor", "floor_batched") if (rows, f) in medians]
        if floors and not tool.startswith("floor"):
            print(f"{rows:,} rows: {tool} = {med / min(floors):.2f}x the floor (the faster floor's median)")
    for suffix in ("", "_empty"):
        ours, pandas = medians.get((1_000_000, f"ours{suffix}")), medians.get((1_000_000, f"pandas{suffix}"))
        if ours and pandas:
            print(f"1,000,000 rows{suffix.replace('_', ', ')}: pandas{suffix} / ours{suffix} = {pandas / ours:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="/tmp/bench/scale.duckdb")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["p1", "rc", "p3"], nargs="+", default=["p1", "rc"])
    parser.add_argument("--memory-limit", help="DuckDB's memory_limit in the workers (default: DuckDB's own)")
    parser.add_argument("--worker")
    parser.add_argument("--day", type=date.fromisoformat)
    parser.add_argument("--out", default="/tmp/bench/p1_results.jsonl")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.db, args.day, args.memory_limit)))
        return
    plan = []
    if "p1" in args.only:
        plan += [(t, 1_000_000) for t in ("floor", "floor_batched", "ours_empty", "ours", "pandas_empty", "pandas")]
    if "rc" in args.only:
        plan += [(t, 100_000) for t in ("ours", "ours_rc")]
    if "p3" in args.only:
        plan += [(t, 10_000_000) for t in ("ours_empty", "ours")]
    results = []
    with open(args.out, "a") as out:
        for _ in range(args.runs):
            for tool, rows in plan:
                r = run(tool, args.db, rows, args.memory_limit)
                out.write(json.dumps(r) + "\n")
                out.flush()
                results.append(r)
    summary(results)


if __name__ == "__main__":
    main()
