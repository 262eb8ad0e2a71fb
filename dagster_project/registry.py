"""The model registry: a warehouse index (``ml.model_versions`` with ``ml.model_history``,
``ml.tuning_trials`` and ``ml.model_segment_metrics``) plus one folder per version holding the LightGBM
text model, the calibration knots (JSON), a JSON metadata file with the files' SHA-256, the training
reference profile and a model card. No pickle."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import lightgbm as lgb
import pyarrow as pa

from dagster_project.settings import PROJECT_ROOT
from dagster_project.training import Calibrator, Scorer, Signature
from dagster_project.warehouse import ensure_schema, insert_rows, transaction

MODEL_FILE = "model.txt"
CALIBRATION_FILE = "calibration.json"
METADATA_FILE = "metadata.json"
PROFILE_FILE = "reference_profile.json"
CARD_FILE = "model_card.md"
VERIFIED_FILES = (MODEL_FILE, CALIBRATION_FILE)
# The registry tables readers see: republished after every change to the registry.
REGISTRY_TABLES = ["ml.model_versions", "ml.model_history", "ml.tuning_trials", "ml.model_segment_metrics"]

# Added columns are migrated with `add column if not exists`, so an older warehouse keeps working.
VERSION_COLUMNS = {
    "model_name": "varchar not null",
    "version": "integer not null",
    "status": "varchar not null",
    "created_at": "timestamptz not null",
    "as_of": "date",
    "train_start": "date",
    "train_end": "date",
    "validation_start": "date",
    "validation_end": "date",
    "test_start": "date",
    "test_end": "date",
    "params": "varchar",
    "best_params": "varchar",
    "n_trials": "integer",
    "tuning_seconds": "double",
    "calibration": "varchar",
    "metrics": "varchar",
    "validation_metrics": "varchar",
    "baseline_metrics": "varchar",
    "champion_version": "integer",
    "champion_metrics": "varchar",
    "gate_passed": "boolean",
    "gate_reasons": "varchar",
    "threshold": "double",
    "artifact_path": "varchar not null",
    "artifact_sha256": "varchar not null",
    "code_version": "varchar",
    "dbt_manifest_sha256": "varchar",
    "dagster_run_id": "varchar",
    "promoted_at": "timestamptz",
    "promoted_by": "varchar",
}
HISTORY_DDL = """
create table if not exists ml.model_history (
    model_name varchar not null, version integer not null, event varchar not null, event_at timestamptz not null,
    actor varchar, reason varchar, run_id varchar
)"""
TRIALS_DDL = """
create table if not exists ml.tuning_trials (
    model_name varchar not null, version integer not null, trial integer not null, state varchar, value double,
    params varchar, best_iteration integer, seconds double
)"""
SEGMENTS_DDL = """
create table if not exists ml.model_segment_metrics (
    model_name varchar not null, version integer not null, scorer varchar not null, segment_column varchar not null,
    segment_value varchar not null, gated boolean, n_rows integer, base_rate double, mean_prediction double,
    roc_auc double, pr_auc double, brier double, log_loss double, ece double, precision double, recall double,
    f1 double
)"""
SEGMENT_FIELDS = [
    "scorer",
    "segment_column",
    "segment_value",
    "gated",
    "n_rows",
    "base_rate",
    "mean_prediction",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "precision",
    "recall",
    "f1",
]


class ModelIntegrityError(RuntimeError):
    """A model's files do not match the SHA-256 the registry recorded: it is refused."""


class RegistryError(ValueError):
    """A registry operation that cannot be done as asked (the message says why and what to do)."""


@dataclass
class LoadedModel:
    model_name: str
    version: int
    scorer: Scorer
    threshold: float
    reference_profile: dict
    metadata: dict

    @property
    def signature(self) -> Signature:
        return self.scorer.signature


def ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schema(con, "ml")
    columns = ", ".join(f"{name} {kind}" for name, kind in VERSION_COLUMNS.items())
    con.execute(f"create table if not exists ml.model_versions ({columns}, primary key (model_name, version))")
    for name, kind in VERSION_COLUMNS.items():
        con.execute(f"alter table ml.model_versions add column if not exists {name} {kind.replace(' not null', '')}")
    for ddl in (HISTORY_DDL, TRIALS_DDL, SEGMENTS_DDL):
        con.execute(ddl)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_version() -> str:
    """The git commit of the code, with ``-dirty`` when tracked files have changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{sha}-dirty" if dirty else sha


def next_version(con: duckdb.DuckDBPyConnection, model_name: str) -> int:
    row = con.execute(
        "select coalesce(max(version), 0) + 1 from ml.model_versions where model_name = ?", [model_name]
    ).fetchone()
    return int(row[0])


def write_artifacts(
    models_dir: Path,
    model_name: str,
    version: int,
    scorer: Scorer,
    metadata: dict,
    profile: dict,
    card: Callable[[str], str],
) -> tuple[Path, str]:
    """Write the version folder atomically (a temp folder renamed into place); return it and the model's SHA-256."""
    final = models_dir / model_name / f"v{version}"
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=final.parent))
    files = {
        MODEL_FILE: scorer.booster.model_to_string().encode(),
        CALIBRATION_FILE: json.dumps({"x": scorer.calibrator.x, "y": scorer.calibrator.y}).encode(),
    }
    hashes = {name: sha256_bytes(data) for name, data in files.items()}
    for name, data in files.items():
        (staging / name).write_bytes(data)
    full = metadata | {
        "signature": scorer.signature.to_dict(),
        "model_sha256": hashes[MODEL_FILE],
        "files_sha256": hashes,
    }
    (staging / METADATA_FILE).write_text(json.dumps(full, indent=2, default=str))
    (staging / PROFILE_FILE).write_text(json.dumps(profile))
    (staging / CARD_FILE).write_text(card(hashes[MODEL_FILE]))
    if final.exists():
        # A folder without a registry row is the leftover of a run that died before registering.
        shutil.rmtree(final)
    os.rename(staging, final)
    return final, hashes[MODEL_FILE]


def register(con: duckdb.DuckDBPyConnection, row: dict, trials: list[dict], segments: list[dict], actor: str) -> None:
    """Insert the version's row, its tuning trials, its segment metrics and its history event, atomically."""
    key = {"model_name": row["model_name"], "version": row["version"]}
    with transaction(con):
        columns = ", ".join(row)
        con.execute(
            f"insert into ml.model_versions ({columns}) values ({', '.join('?' * len(row))})", list(row.values())
        )
        insert_rows(
            con,
            "ml.tuning_trials",
            pa.Table.from_pylist([key | t | {"params": json.dumps(t["params"])} for t in trials]),
        )
        insert_segment_metrics(con, row["model_name"], row["version"], segments)
        history(con, row["model_name"], row["version"], "registered", actor, "trained", row["dagster_run_id"])


def insert_segment_metrics(con: duckdb.DuckDBPyConnection, model_name: str, version: int, segments: list[dict]) -> None:
    rows = [{"model_name": model_name, "version": version} | {f: s.get(f) for f in SEGMENT_FIELDS} for s in segments]
    insert_rows(con, "ml.model_segment_metrics", pa.Table.from_pylist(rows))


def history(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    version: int,
    event: str,
    actor: str,
    reason: str,
    run_id: str | None,
) -> None:
    con.execute(
        "insert into ml.model_history values (?, ?, ?, ?, ?, ?, ?)",
        [model_name, version, event, datetime.now(UTC), actor, reason, run_id],
    )


def version_row(con: duckdb.DuckDBPyConnection, model_name: str, version: int) -> dict:
    cursor = con.execute("select * from ml.model_versions where model_name = ? and version = ?", [model_name, version])
    row = cursor.fetchone()
    if row is None:
        raise LookupError(f"ml.model_versions: no version {version} of model {model_name}")
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def versions(con: duckdb.DuckDBPyConnection, model_name: str) -> list[dict]:
    cursor = con.execute("select * from ml.model_versions where model_name = ? order by version", [model_name])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def champion_row(con: duckdb.DuckDBPyConnection, model_name: str) -> dict | None:
    found = con.execute(
        "select version from ml.model_versions where model_name = ? and status = 'champion'", [model_name]
    ).fetchone()
    return None if found is None else version_row(con, model_name, found[0])


def promote(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    version: int,
    actor: str,
    reason: str,
    run_id: str | None,
    event: str = "promoted",
) -> int | None:
    """Make ``version`` the champion and archive the previous one, in one transaction; return the previous."""
    with transaction(con):
        previous = con.execute(
            "select version from ml.model_versions where model_name = ? and status = 'champion'", [model_name]
        ).fetchone()
        old = None if previous is None else previous[0]
        if old is not None and old != version:
            con.execute(
                "update ml.model_versions set status = 'archived' where model_name = ? and version = ?",
                [model_name, old],
            )
            history(
                con,
                model_name,
                old,
                "rolled_back" if event == "rollback" else "archived",
                actor,
                f"replaced by v{version}: {reason}",
                run_id,
            )
        con.execute(
            "update ml.model_versions set status = 'champion', promoted_at = ?, promoted_by = ? "
            "where model_name = ? and version = ?",
            [datetime.now(UTC), actor, model_name, version],
        )
        history(con, model_name, version, "promoted", actor, reason, run_id)
    return old


def reject(
    con: duckdb.DuckDBPyConnection, model_name: str, version: int, actor: str, reason: str, run_id: str | None
) -> None:
    with transaction(con):
        con.execute(
            "update ml.model_versions set status = 'rejected' where model_name = ? and version = ?",
            [model_name, version],
        )
        history(con, model_name, version, "rejected", actor, reason, run_id)


def record_gate(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    version: int,
    passed: bool,
    reasons: list[str],
    champion_version: int | None,
    champion_metrics: dict | None,
) -> None:
    con.execute(
        "update ml.model_versions set gate_passed = ?, gate_reasons = ?, champion_version = ?, "
        "champion_metrics = ? where model_name = ? and version = ?",
        [
            passed,
            "; ".join(reasons),
            champion_version,
            None if champion_metrics is None else json.dumps(champion_metrics),
            model_name,
            version,
        ],
    )


def verify_files(row: dict) -> dict:
    """Check every verified file of a version against the registry and its metadata; return the metadata."""
    folder = Path(row["artifact_path"])
    label = f"{row['model_name']} v{row['version']}"
    metadata_path = folder / METADATA_FILE
    if not metadata_path.exists() or not (folder / MODEL_FILE).exists():
        raise ModelIntegrityError(f"{label}: {folder} lacks {MODEL_FILE} or {METADATA_FILE}; it cannot be used")
    metadata = json.loads(metadata_path.read_text())
    expected = metadata.get("files_sha256", {MODEL_FILE: metadata.get("model_sha256")})
    for name in VERIFIED_FILES:
        path = folder / name
        if name not in expected:
            continue
        actual = sha256_bytes(path.read_bytes()) if path.exists() else "missing"
        recorded = row["artifact_sha256"] if name == MODEL_FILE else expected[name]
        if actual != recorded or actual != expected[name]:
            raise ModelIntegrityError(
                f"{label}: {path} has SHA-256 {actual}, the registry recorded {recorded}; the file was changed "
                f"after registration and is refused. Restore it or retrain."
            )
    return metadata


def load_model(row: dict) -> LoadedModel:
    """Load a registered version after checking its files against the recorded SHA-256."""
    folder = Path(row["artifact_path"])
    model_bytes = (folder / MODEL_FILE).read_bytes()
    metadata = verify_files(row)
    if sha256_bytes(model_bytes) != row["artifact_sha256"]:  # changed between the check and the read
        raise ModelIntegrityError(f"{row['model_name']} v{row['version']}: model file changed while loading")
    calibration_path = folder / CALIBRATION_FILE
    calibration = json.loads(calibration_path.read_text()) if calibration_path.exists() else {"x": [], "y": []}
    scorer = Scorer(
        lgb.Booster(model_str=model_bytes.decode()),
        Signature.from_dict(metadata["signature"]),
        Calibrator(calibration["x"], calibration["y"]),
    )
    return LoadedModel(
        model_name=row["model_name"],
        version=int(row["version"]),
        scorer=scorer,
        threshold=float(row["threshold"]),
        reference_profile=json.loads((folder / PROFILE_FILE).read_text()),
        metadata=metadata,
    )


def load_champion(con: duckdb.DuckDBPyConnection, model_name: str) -> LoadedModel:
    row = champion_row(con, model_name)
    if row is None:
        raise LookupError(f"ml.model_versions: model {model_name} has no champion; train and promote one first")
    return load_model(row)


def previous_champion(con: duckdb.DuckDBPyConnection, model_name: str) -> int | None:
    """The rollback target: the most recently promoted version other than the current champion that was
    never rolled back itself and is not rejected (so repeated rollbacks walk further back)."""
    current = champion_row(con, model_name)
    found = con.execute(
        """
        select h.version from ml.model_history h join ml.model_versions v using (model_name, version)
        where h.model_name = ? and h.event = 'promoted' and v.status <> 'rejected' and h.version <> ?
          and h.version not in (select version from ml.model_history where model_name = ? and event = 'rolled_back')
        order by h.event_at desc limit 1
        """,
        [model_name, -1 if current is None else current["version"], model_name],
    ).fetchone()
    return None if found is None else int(found[0])
