"""P4: wall time of `make demo` after the environment is installed, by stage, median of N runs.

Each run replays 2013-07-01..12-31 (`python -m dagster_project.replay`, what `make demo` runs after its
install step) into a fresh temporary warehouse, models folder and Dagster instance, so runs do not see each
other's state; the stage times are the replay's own ("done in X s" after each "==> stage" line). Stages of
the same kind are summed per run (train = the 6 training runs, and so on).

    .venv/bin/python bench/p4_demo.py --runs 5

Results are appended as JSON lines to data/bench_p4/p4_runs.jsonl and summarised on stdout (median, min, max).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"^==> (\w+)")
DONE = re.compile(r"^\s+done in ([0-9.]+)s")
KINDS = {
    "extract": "extract",
    "profile": "profile",
    "build": "dbt",
    "train": "train",
    "score": "score",
    "monitor": "monitor",
}


def one_run(replay_args: list[str]) -> dict:
    root = Path(tempfile.mkdtemp(prefix="p4-"))
    env = os.environ | {
        "MLOPS_WAREHOUSE": str(root / "warehouse.duckdb"),
        "MLOPS_PUBLISHED": str(root / "published.duckdb"),
        "MLOPS_MODELS_DIR": str(root / "models"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "PYTHONUNBUFFERED": "1",
    }
    (root / "dagster_home").mkdir()
    shutil.copy(REPO / ".dagster_home" / "dagster.yaml", root / "dagster_home" / "dagster.yaml")
    load = os.getloadavg()[0]
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-m", "dagster_project.replay", *replay_args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    if process.returncode:
        raise SystemExit(f"replay failed:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}")
    stages: dict[str, float] = {}
    kind = None
    for line in process.stdout.splitlines():
        if match := STAGE.match(line):
            kind = KINDS.get(match.group(1), match.group(1))
        elif (match := DONE.match(line)) and kind:
            stages[kind] = stages.get(kind, 0.0) + float(match.group(1))
    trials = re.findall(
        r"^\s+\d+ \d{4}-\d{2}-\d{2}\s+\S+\s+\S+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+(\d+)\s+[0-9.]+\s+\w+$",
        process.stdout,
        re.MULTILINE,
    )
    shutil.rmtree(root, ignore_errors=True)
    return {"wall_s": wall, "load_before": load, "stages": stages, "trials_per_version": [int(t) for t in trials]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--end", help="replay only up to this day (a quick check of the script)")
    args = parser.parse_args()
    replay_args = ["--end", args.end] if args.end else []
    out = REPO / "data" / "bench_p4"
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for i in range(args.runs):
        result = one_run(replay_args)
        runs.append(result)
        with (out / "p4_runs.jsonl").open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        print(
            f"run {i + 1}: {result['wall_s']:.1f} s (load {result['load_before']:.2f}) {result['stages']}", flush=True
        )
    print(f"\n{'stage':<10} {'median s':>9} {'min':>8} {'max':>8}")
    for stage in [*runs[0]["stages"], "wall_s"]:
        values = [r["wall_s"] if stage == "wall_s" else r["stages"].get(stage, 0.0) for r in runs]
        print(f"{stage:<10} {statistics.median(values):>9.1f} {min(values):>8.1f} {max(values):>8.1f}")


if __name__ == "__main__":
    main()
