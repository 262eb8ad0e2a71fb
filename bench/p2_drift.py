"""Benchmark P2: this project's drift statistics in DuckDB against Evidently and NannyML (issue 5, point 7).

Run by hand from the repository root with the project's venv:

    .venv/bin/python bench/p2_drift.py                      # 100k and 1M rows each side, 3 runs per tool
    .venv/bin/python bench/p2_drift.py --sizes 100000 --runs 1 --tools ours_full evidently

Data: synthetic reference and current tables, 15 numeric and 5 categorical columns (some shifted, one with an
unseen level), no nulls (Evidently drops nulls; the project keeps them as a bin), written once as Parquet
(row groups of 122,880 rows, DuckDB's own size) to ``data/bench_p2/`` (git-ignored). Every tool reads the
same Parquet files inside its timed region.

Tools, each run in its own subprocess (peak RSS = that process's ``ru_maxrss``):
- ``ours_full``: ``store_reference`` on the reference rows, then ``feature_drift`` on the current rows
  (DuckDB in memory, reading the Parquet files); PSI, Jensen-Shannon and normed Wasserstein for every column.
- ``ours_drift``: ``feature_drift`` only, the reference profile stored beforehand in a DuckDB file (the daily
  monitoring case).
- ``evidently``: ``Report([DataDriftPreset(per_column_method=...)])``: ``wasserstein`` (normed) for numeric
  columns, ``jensenshannon`` for categorical ones, forced per column.
- ``nannyml``: ``UnivariateDriftCalculator`` with ``wasserstein`` for continuous and ``jensen_shannon`` for
  categorical columns, one chunk (``chunk_number=1``).

The peers are installed by this script into ``bench/.venv-peers`` from ``bench/peers_requirements.txt``
(Evidently 0.7 needs pandas<3; NannyML 0.13 pins lightgbm<4.6 and plotly<6).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "bench" / ".venv-peers"
PEERS_REQUIREMENTS = ROOT / "bench" / "peers_requirements.txt"
DATA_DIR = ROOT / "data" / "bench_p2"
NUMERIC = [f"n{i:02d}" for i in range(1, 16)]
CATEGORICAL = [f"c{i:02d}" for i in range(1, 6)]
TOOLS = ["ours_full", "ours_drift", "evidently", "nannyml"]
PEER_ENV = {"DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1"}
SQRT_LN2 = math.sqrt(math.log(2))


# ---------------------------------------------------------------------------------------------------------
# Data


def generate(n: int, current: bool, seed: int):
    """One synthetic table: 15 numeric, 5 categorical columns; ``current`` shifts some of them."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    s = 1 if current else 0

    def levels(k: int) -> list[str]:
        return [f"L{j:02d}" for j in range(k)]

    def choice(names: list[str], p: list[float]) -> pa.Array:
        p = np.asarray(p, dtype=float)
        return pa.array(np.asarray(names, dtype=object)[rng.choice(len(names), size=n, p=p / p.sum())])

    mix = rng.random(n) < (0.3 + 0.15 * s)
    zipf = 1 / np.arange(1, 21)
    columns = {
        "n01": rng.normal(0, 1, n),  # stable
        "n02": rng.normal(0.25 * s, 1, n),  # mean shift 0.25 sd
        "n03": rng.normal(5, 2 + s, n),  # scale change
        "n04": rng.lognormal(0, 1, n),  # skewed, stable
        "n05": rng.lognormal(0.2 * s, 1, n),  # skewed, shifted
        "n06": rng.exponential(1, n),  # stable
        "n07": rng.exponential(1 + 0.3 * s, n),  # scale change
        "n08": rng.uniform(0, 10, n),  # stable
        "n09": rng.uniform(s, 10 + s, n),  # shifted support
        "n10": rng.poisson(3, n).astype(float),  # integers (ties), stable
        "n11": rng.poisson(3 + s, n).astype(float),  # integers, shifted
        "n12": np.where(mix, rng.normal(4, 1, n), rng.normal(0, 1, n)),  # bimodal, weights change
        "n13": rng.standard_t(3, n),  # heavy tails, stable
        "n14": rng.standard_t(3, n) + 0.1 * s,  # heavy tails, small shift
        "n15": np.round(rng.normal(100 + 0.75 * s, 15, n), 1),  # rounded, tiny shift
        "c01": choice(levels(5), [1] * 5),  # stable
        "c02": choice(levels(5), [5, 4, 3, 2, 1] if not s else [3, 3, 3, 3, 3]),  # frequencies change
        "c03": choice(levels(20), zipf),  # long tail, stable
        "c04": choice(levels(10) + ["NEW"], [1] * 10 + [0.5 * s]),  # an unseen level (about 5%) in current
        "c05": choice(levels(3), [0.6, 0.3, 0.1] if not s else [0.55, 0.3, 0.15]),  # small change
    }
    return pa.table(columns)


def ensure_data(sizes: list[int]) -> dict[int, tuple[Path, Path]]:
    import pyarrow.parquet as pq

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    paths = {}
    for n in sizes:
        ref, cur = DATA_DIR / f"reference_{n}.parquet", DATA_DIR / f"current_{n}.parquet"
        for path, current, seed in ((ref, False, 1), (cur, True, 2)):
            if not path.exists():
                # DuckDB's own row-group size: DuckDB scans a Parquet file in parallel by row group
                pq.write_table(generate(n, current, seed), path, row_group_size=122_880)
        paths[n] = (ref, cur)
    return paths


# ---------------------------------------------------------------------------------------------------------
# Peers' environment


def peers_python() -> Path:
    """Create bench/.venv-peers and install the peers if they do not import yet."""
    python = PEERS_VENV / "bin" / "python"
    probe = [str(python), "-c", "import evidently, nannyml, pandas; assert pandas.__version__ < '3'"]
    env = {**os.environ, **PEER_ENV}
    if python.exists() and subprocess.run(probe, env=env, capture_output=True).returncode == 0:
        return python
    print(f"installing the peers into {PEERS_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(PEERS_REQUIREMENTS)], check=True)
    subprocess.run(probe, env=env, check=True)
    return python


# ---------------------------------------------------------------------------------------------------------
# Workers: one tool, one run, in its own process. Print one JSON line.


def worker(tool: str, ref: Path, cur: Path, profile: Path | None) -> dict:
    t_import = time.perf_counter()
    values: dict[str, dict[str, float]] = {}
    if tool == "ours_stream":
        # 10M current rows: the 1M current file read ten times over, against the stored 1M profile
        import duckdb

        sys.path.insert(0, str(ROOT))
        from dagster_project import drift_sql

        import_s = time.perf_counter() - t_import
        start = time.perf_counter()
        con = duckdb.connect(str(profile), read_only=True)
        files = ", ".join(f"'{cur}'" for _ in range(10))
        table = drift_sql.feature_drift(con, f"select * from read_parquet([{files}])", "p2", 1, NUMERIC, CATEGORICAL)
        values = {r["feature"]: {"n_rows": r["n_rows"]} for r in table.to_pylist()}
        con.close()
        wall_s, load_s = time.perf_counter() - start, 0.0
    elif tool in ("ours_full", "ours_drift", "ours_prepare"):
        import duckdb

        sys.path.insert(0, str(ROOT))
        from dagster_project import drift_sql

        import_s = time.perf_counter() - t_import
        start = time.perf_counter()
        if tool == "ours_drift":
            con = duckdb.connect(str(profile), read_only=True)
        else:
            con = duckdb.connect(str(profile) if tool == "ours_prepare" else ":memory:")
            drift_sql.store_reference(con, f"select * from read_parquet('{ref}')", NUMERIC, CATEGORICAL, "p2", 1)
        load_s = 0.0
        if tool != "ours_prepare":
            table = drift_sql.feature_drift(con, f"select * from read_parquet('{cur}')", "p2", 1, NUMERIC, CATEGORICAL)
            for row in table.to_pylist():
                values[row["feature"]] = {k: row[k] for k in ("psi", "js_distance", "wasserstein_normed")}
        con.close()
        wall_s = time.perf_counter() - start
    elif tool == "evidently":
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        import_s = time.perf_counter() - t_import
        start = time.perf_counter()
        reference, current = pd.read_parquet(ref), pd.read_parquet(cur)
        load_s = time.perf_counter() - start
        definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
        methods = {c: "wasserstein" for c in NUMERIC} | {c: "jensenshannon" for c in CATEGORICAL}
        report = Report([DataDriftPreset(per_column_method=methods)])
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        result = snapshot.dict()
        wall_s = time.perf_counter() - start
        for metric in result["metrics"]:
            config = metric["config"]
            if config.get("type", "").endswith("ValueDrift"):
                values[config["column"]] = {config["method"]: float(metric["value"])}
    elif tool == "nannyml":
        import nannyml as nml
        import pandas as pd

        import_s = time.perf_counter() - t_import
        start = time.perf_counter()
        reference, current = pd.read_parquet(ref), pd.read_parquet(cur)
        load_s = time.perf_counter() - start
        calculator = nml.UnivariateDriftCalculator(
            column_names=NUMERIC + CATEGORICAL,
            treat_as_categorical=CATEGORICAL,
            continuous_methods=["wasserstein"],
            categorical_methods=["jensen_shannon"],
            chunk_number=1,
        )
        calculator.fit(reference)
        data = calculator.calculate(current).filter(period="analysis").to_df()
        wall_s = time.perf_counter() - start
        for column in NUMERIC:
            values[column] = {"wasserstein": float(data[(column, "wasserstein", "value")].iloc[0])}
        for column in CATEGORICAL:
            values[column] = {"jensen_shannon": float(data[(column, "jensen_shannon", "value")].iloc[0])}
    else:
        raise ValueError(f"unknown tool {tool}")
    peak_mib = peak_rss_mib()
    return {
        "tool": tool,
        "wall_s": wall_s,
        "load_s": load_s,
        "import_s": import_s,
        "peak_rss_mib": peak_mib,
        "values": values,
    }


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: on Linux that keeps the high-water mark of
    the forked parent across exec, so every worker would report at least the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(tool: str, ref: Path, cur: Path, profile: Path, peers: Path | None) -> dict:
    python = peers if tool in ("evidently", "nannyml") else Path(sys.executable)
    command = [str(python), str(Path(__file__).resolve()), "--worker", tool, "--ref", str(ref), "--cur", str(cur)]
    command += ["--profile", str(profile)]
    done = subprocess.run(command, env={**os.environ, **PEER_ENV}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# Comparison


def exact_reference_values(ref: Path, cur: Path) -> dict[str, dict[str, float]]:
    """scipy's exact normed Wasserstein and the reference std, per numeric column (not timed)."""
    import numpy as np
    import pyarrow.parquet as pq
    from scipy.stats import wasserstein_distance

    reference, current = pq.read_table(ref, columns=NUMERIC), pq.read_table(cur, columns=NUMERIC)
    out = {}
    for column in NUMERIC:
        r, c = reference[column].to_numpy(), current[column].to_numpy()
        std = float(np.std(r))
        out[column] = {"std": std, "wasserstein_normed": wasserstein_distance(r, c) / max(std, 1e-3)}
    return out


def differences(ours: dict, peer: str, peer_values: dict, exact: dict) -> dict[str, tuple[float, str]]:
    """Largest absolute difference per statistic (ours minus peer, on this project's scale) and its column."""
    w, js = [], []
    for column in NUMERIC:
        mine = ours[column]["wasserstein_normed"]
        if peer == "evidently":
            theirs = peer_values[column]["wasserstein"]
        else:  # NannyML reports the raw distance (binned estimate above 10k rows): norm it the same way
            theirs = peer_values[column]["wasserstein"] / max(exact[column]["std"], 1e-3)
        w.append((abs(mine - theirs), column))
    for column in CATEGORICAL:
        mine = ours[column]["js_distance"]
        if peer == "evidently":
            theirs = peer_values[column]["jensenshannon"] / SQRT_LN2  # natural log -> base 2
        else:
            theirs = peer_values[column]["jensen_shannon"]  # NannyML: base 2 already
        js.append((abs(mine - theirs), column))
    return {"wasserstein_normed": max(w), "js_distance": max(js)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", nargs="+", default=TOOLS, choices=TOOLS)
    parser.add_argument("--json", type=Path, default=DATA_DIR / "p2_results.json", help="raw results")
    parser.add_argument(
        "--stream-check", action="store_true", help="also run ours_drift once on 10x the largest current file"
    )
    parser.add_argument("--worker", choices=[*TOOLS, "ours_prepare", "ours_stream"], help=argparse.SUPPRESS)
    parser.add_argument("--ref", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cur", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prepare-data", type=int, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--exact", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.ref, args.cur, args.profile)))
        return
    if args.prepare_data:
        ensure_data(args.prepare_data)
        return
    if args.exact:
        print(json.dumps(exact_reference_values(args.ref, args.cur)))
        return

    peers = peers_python() if {"evidently", "nannyml"} & set(args.tools) else None
    # data and exact values are made in subprocesses too, so this parent stays small
    subprocess.run([sys.executable, __file__, "--prepare-data", *map(str, args.sizes)], check=True)
    paths = {n: (DATA_DIR / f"reference_{n}.parquet", DATA_DIR / f"current_{n}.parquet") for n in args.sizes}
    report: dict = {"command": " ".join(sys.argv), "sizes": {}}
    for n in args.sizes:
        ref, cur = paths[n]
        profile = DATA_DIR / f"profile_{n}.duckdb"
        profile.unlink(missing_ok=True)
        run_worker("ours_prepare", ref, cur, profile, peers)
        exact = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--exact", "--ref", str(ref), "--cur", str(cur)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        per_tool = {}
        for tool in args.tools:
            runs = []
            for i in range(args.runs):
                load = os.getloadavg()[0]  # other processes on the 2 cores skew wall times: keep the evidence
                result = run_worker(tool, ref, cur, profile, peers)
                result["load_avg_1min_before"] = load
                print(
                    f"n={n:>9,} {tool:<10} run {i + 1}: {result['wall_s']:7.2f} s, "
                    f"{result['peak_rss_mib']:7.0f} MiB peak (load before {load:.2f})",
                    flush=True,
                )
                runs.append(result)
            walls = [r["wall_s"] for r in runs]
            peaks = [r["peak_rss_mib"] for r in runs]
            per_tool[tool] = {
                "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
                "peak_rss_mib": {"median": statistics.median(peaks), "min": min(peaks), "max": max(peaks)},
                "load_s_median": statistics.median(r["load_s"] for r in runs),
                "import_s_median": statistics.median(r["import_s"] for r in runs),
                "load_avg_1min_before": [r["load_avg_1min_before"] for r in runs],
                "values": runs[0]["values"],
            }
        entry: dict = {"tools": per_tool, "exact": exact}
        ours_key = "ours_full" if "ours_full" in per_tool else "ours_drift" if "ours_drift" in per_tool else None
        if ours_key:
            ours = per_tool[ours_key]["values"]
            errors = [(abs(ours[c]["wasserstein_normed"] - exact[c]["wasserstein_normed"]), c) for c in NUMERIC]
            entry["wasserstein_estimate_error_max"] = max(errors)
            for peer in ("evidently", "nannyml"):
                if peer in per_tool:
                    entry[f"max_abs_difference_vs_{peer}"] = differences(ours, peer, per_tool[peer]["values"], exact)
        report["sizes"][str(n)] = entry
        print(json.dumps({k: v for k, v in entry.items() if k not in ("tools", "exact")}), flush=True)
    if args.stream_check:
        n = max(args.sizes)
        stream = run_worker("ours_stream", *paths[n], DATA_DIR / f"profile_{n}.duckdb", peers)
        report["stream_check"] = {
            "current_rows": stream["values"]["n01"]["n_rows"],
            "wall_s": stream["wall_s"],
            "peak_rss_mib": stream["peak_rss_mib"],
        }
        print(f"stream check: {report['stream_check']}", flush=True)
    report["parent_peak_rss_mib"] = peak_rss_mib()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print_summary(report)


def print_summary(report: dict) -> None:
    print("\n| rows each side | tool | wall s median (min–max) | peak RSS MiB median (min–max) | load s |")
    print("|---|---|---|---|---|")
    for n, entry in report["sizes"].items():
        for tool, r in entry["tools"].items():
            w, p = r["wall_s"], r["peak_rss_mib"]
            print(
                f"| {int(n):,} | {tool} | {w['median']:.2f} ({w['min']:.2f}–{w['max']:.2f}) | "
                f"{p['median']:.0f} ({p['min']:.0f}–{p['max']:.0f}) | {r['load_s_median']:.2f} |"
            )
        tools = entry["tools"]
        if "evidently" in tools:
            for ours in ("ours_full", "ours_drift"):
                if ours in tools:
                    ratio = tools["evidently"]["wall_s"]["median"] / tools[ours]["wall_s"]["median"]
                    print(f"speed-up of {ours} over Evidently at {int(n):,}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
