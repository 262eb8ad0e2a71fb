"""`mlops`: the model registry from the command line (list, show, promote, rollback) and backfills (score).

It writes the same registry rows and history as the Dagster promotion job, and the same predictions as the
Dagster scoring asset (one transaction per day), then republishes what it changed for readers. It opens the
warehouse as the one writer: while a Dagster run holds it, the command waits a few seconds and then says so.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.lifecycle import promote_version, rollback
from dagster_project.publish import publish
from dagster_project.registry import (
    CARD_FILE,
    REGISTRY_TABLES,
    ModelIntegrityError,
    RegistryError,
    ensure_registry,
    load_champion,
    version_row,
    versions,
)
from dagster_project.scoring import (
    DuplicateKeysError,
    ScoredDay,
    days,
    latest_view_sql,
    published_tables,
    score_days,
)
from dagster_project.settings import Settings
from dagster_project.use_case import load_use_case
from dagster_project.validation import InvalidInputError, SignatureMismatchError
from dagster_project.warehouse import connect

LOCK_RETRIES = 10


def _open_writer(path: Path) -> duckdb.DuckDBPyConnection:
    for attempt in range(LOCK_RETRIES):
        try:
            return connect(path)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or attempt == LOCK_RETRIES - 1:
                raise SystemExit(
                    f"mlops: cannot open the warehouse {path} for writing: {error}\n"
                    "A pipeline run holds it; retry when the run has finished."
                ) from None
            time.sleep(min(2**attempt * 0.2, 5))
    raise AssertionError("unreachable")


def _metric(row: dict, key: str = "roc_auc") -> str:
    value = json.loads(row["metrics"]).get(key) if row.get("metrics") else None
    return "" if value is None else f"{value:.4f}"


def cmd_list(con: duckdb.DuckDBPyConnection, model_name: str, _: argparse.Namespace) -> None:
    rows = versions(con, model_name)
    print(f"{'version':>7}  {'status':<9} {'trained on':<10}  {'test ROC-AUC':>12}  {'gate':<6} promoted_at")
    for row in rows:
        gate = "" if row["gate_passed"] is None else "passed" if row["gate_passed"] else "failed"
        print(
            f"{row['version']:>7}  {row['status']:<9} {row['as_of']!s:<10}  {_metric(row):>12}  {gate:<6} "
            f"{row['promoted_at'] or ''}"
        )


def cmd_show(con: duckdb.DuckDBPyConnection, model_name: str, args: argparse.Namespace) -> None:
    row = version_row(con, model_name, args.version)
    card = Path(row["artifact_path"]) / CARD_FILE
    print(card.read_text() if card.exists() else json.dumps(row, indent=2, default=str))
    print("History:")
    for at, event, actor, reason in con.execute(
        "select event_at, event, actor, reason from ml.model_history where model_name = ? and version = ? "
        "order by event_at",
        [model_name, args.version],
    ).fetchall():
        print(f"  {at:%Y-%m-%d %H:%M:%S}  {event:<11} {actor}: {reason}")


def cmd_promote(con: duckdb.DuckDBPyConnection, model_name: str, args: argparse.Namespace) -> None:
    previous = promote_version(con, model_name, args.version, _actor(), args.reason, force=args.force)
    print(
        f"{model_name} v{args.version} is the champion (was v{previous})."
        if previous
        else f"{model_name} v{args.version} is the champion."
    )


def cmd_rollback(con: duckdb.DuckDBPyConnection, model_name: str, args: argparse.Namespace) -> None:
    previous, restored = rollback(con, model_name, _actor(), args.reason, args.to)
    print(f"{model_name}: rolled back from v{previous} to v{restored}; the next scoring run uses v{restored}.")


def cmd_score(con: duckdb.DuckDBPyConnection, model_name: str, args: argparse.Namespace) -> None:
    uc = load_use_case(Settings.from_env().use_case_path)
    targets = list(days(args.start, args.end))
    run_id = f"{_actor()}:{uuid.uuid4().hex[:12]}"
    model = load_champion(con, model_name)
    print(f"scoring {targets[0]}..{targets[-1]} ({len(targets)} days) with {model_name} v{model.version}, run {run_id}")

    def report(scored: ScoredDay, progress: str) -> None:
        print(progress if scored.rows or scored.quarantined_rows else f"{progress} (no rows: nothing written)")
        sys.stdout.flush()

    results, _ = score_days(con, uc, model, targets, run_id, on_day=report)
    print(f"scored {sum(r.rows for r in results):,} rows over {len(results)} days; publishing for readers")


def _registry_publication(
    con: duckdb.DuckDBPyConnection, settings: Settings
) -> tuple[list[str], dict[str, str] | None]:
    return REGISTRY_TABLES, None


def _scoring_publication(con: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The same tables and view as the Dagster scoring asset publishes."""
    uc = load_use_case(settings.use_case_path)
    return published_tables(con, uc), {f"{uc.predictions_table}_latest": latest_view_sql(uc)}


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    groups = root.add_subparsers(dest="group", required=True)
    models = groups.add_parser("models", help="the model registry")
    commands = models.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every version with its status and test ROC-AUC").set_defaults(run=cmd_list)
    show = commands.add_parser("show", help="a version's model card and history")
    show.add_argument("version", type=int)
    show.set_defaults(run=cmd_show)
    promote = commands.add_parser("promote", help="make a version the champion")
    promote.add_argument("version", type=int)
    promote.add_argument("--reason", default="promoted by hand")
    promote.add_argument(
        "--force",
        action="store_true",
        help="promote even a rejected or tampered version (dangerous: the message says why)",
    )
    promote.set_defaults(run=cmd_promote, writes=True)
    back = commands.add_parser("rollback", help="put the previous champion back")
    back.add_argument("--to", type=int, help="a specific earlier version instead of the previous champion")
    back.add_argument("--reason", default="rolled back by hand")
    back.set_defaults(run=cmd_rollback, writes=True)
    score = groups.add_parser(
        "score",
        help="score a range of days with the champion, one transaction per day, printing progress",
        description="Score every day from --start to --end (inclusive) with the champion, as the Dagster asset "
        "daily_predictions does: each day replaced in one transaction (an interrupted run keeps the days done), "
        "one progress line per day, the predictions published for readers at the end.",
    )
    score.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    score.add_argument("--end", type=date.fromisoformat, required=True, help="last day, YYYY-MM-DD (inclusive)")
    score.set_defaults(run=cmd_score, writes=True, publication=_scoring_publication)
    return root


def main(argv: list[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    if getattr(args, "start", None) and args.end < args.start:
        arguments.error(f"--end {args.end} is before --start {args.start}")
    settings = Settings.from_env()
    model_name = load_use_case(settings.use_case_path).model_name
    writes = getattr(args, "writes", False)
    if not settings.warehouse_path.exists():
        raise SystemExit(f"mlops: no warehouse at {settings.warehouse_path}; run `make demo` first (MLOPS_WAREHOUSE)")
    con = _open_writer(settings.warehouse_path) if writes else connect(settings.warehouse_path, read_only=True)
    try:
        if writes:
            ensure_registry(con)
        args.run(con, model_name, args)
        if writes:
            tables, views = getattr(args, "publication", _registry_publication)(con, settings)
            publish(con, settings.published_path, tables, views=views, run_id=_actor())
    except (
        RegistryError,
        ModelIntegrityError,
        LookupError,
        SignatureMismatchError,
        InvalidInputError,
        DuplicateKeysError,
    ) as error:
        print(f"mlops: {error}", file=sys.stderr)
        return 2
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
