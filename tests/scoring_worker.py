"""Score one partition in a process of its own, slowly and in tiny batches, announcing each batch written.

Used by tests/test_scoring_scale.py, which kills this process with SIGKILL in the middle of the inserts.
Usage: python -m tests.scoring_worker WAREHOUSE USE_CASE_YAML DAY
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

from dagster_project.registry import load_champion
from dagster_project.scoring import ensure_predictions_table, score_day
from dagster_project.use_case import load_use_case
from dagster_project.warehouse import connect


def main(warehouse: str, use_case: str, day: str) -> None:
    uc = load_use_case(Path(use_case))
    con = connect(Path(warehouse))
    model = load_champion(con, uc.model_name)
    ensure_predictions_table(con, uc)

    def announce(rows: int) -> None:
        sys.stdout.write(f"written {rows}\n")
        sys.stdout.flush()
        time.sleep(0.02)

    score_day(con, uc, model, date.fromisoformat(day), "killed-run", on_batch=announce)
    sys.stdout.write("committed\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
