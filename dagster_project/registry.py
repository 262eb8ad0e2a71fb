"""The model registry: a warehouse index (``ml.model_versions``, ``ml.model_history``) plus one folder per
version holding the LightGBM text model, its JSON metadata and the training reference profile. No pickle."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import lightgbm as lgb

from dagster_project.settings import PROJECT_ROOT
from dagster_project.training import Signature
from dagster_project.warehouse import ensure_schema, transaction

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
PROFILE_FILE = "reference_profile.json"

VERSIONS_DDL = """
create table if not exists ml.model_versions (
    model_name varchar not null,
    version integer not null,
    status varchar not null,
    created_at timestamptz not null,
    train_start date,
    train_end date,
    validation_start date,
    validation_end date,
    params varchar,
    metrics varchar,
    baseline_metrics varchar,
    champion_version integer,
    champion_metrics varchar,
    gate_passed boolean,
    gate_reasons varchar,
    threshold double,
    artifact_path varchar not null,
    artifact_sha256 varchar not null,
    code_version varchar,
    dagster_run_id varchar,
    promoted_at timestamptz,
    primary key (model_name, version)
)"""

HISTORY_DDL = """
create table if not exists ml.model_history (
    model_name varchar not null,
    version integer not null,
    event varchar not null,
    event_at timestamptz not null,
    actor varchar,
    reason varchar,
    run_id varchar
)"""


class ModelIntegrityError(RuntimeError):
    """A model file does not match the SHA-256 the registry recorded: it is refused."""


@dataclass
class LoadedModel:
    model_name: str
    version: int
    booster: lgb.Booster
    signature: Signature
    threshold: float
    reference_profile: dict
    metadata: dict


def ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schema(con, "ml")
    con.execute(VERSIONS_DDL)
    con.execute(HISTORY_DDL)


def code_version() -> str:
    """The git commit of the code, with ``-dirty`` when the work tree has changes."""
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
    models_dir: Path, model_name: str, version: int, booster: lgb.Booster, metadata: dict, profile: dict
) -> tuple[Path, str]:
    """Write the version folder atomically (a temp folder renamed into place); return it and the SHA-256."""
    final = models_dir / model_name / f"v{version}"
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=final.parent))
    model_text = booster.model_to_string().encode()
    sha = hashlib.sha256(model_text).hexdigest()
    (staging / MODEL_FILE).write_bytes(model_text)
    (staging / METADATA_FILE).write_text(json.dumps(metadata | {"model_sha256": sha}, indent=2, default=str))
    (staging / PROFILE_FILE).write_text(json.dumps(profile))
    if final.exists():
        # A folder without a registry row is the leftover of a run that died before registering.
        shutil.rmtree(final)
    os.rename(staging, final)
    return final, sha


def register(con: duckdb.DuckDBPyConnection, row: dict, actor: str) -> None:
    """Insert the version's row and its history event in one transaction."""
    with transaction(con):
        columns = ", ".join(row)
        con.execute(
            f"insert into ml.model_versions ({columns}) values ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        _history(con, row["model_name"], row["version"], "registered", actor, "trained", row["dagster_run_id"])


def _history(
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


def champion_row(con: duckdb.DuckDBPyConnection, model_name: str) -> dict | None:
    found = con.execute(
        "select version from ml.model_versions where model_name = ? and status = 'champion'", [model_name]
    ).fetchone()
    return None if found is None else version_row(con, model_name, found[0])


def promote(
    con: duckdb.DuckDBPyConnection, model_name: str, version: int, actor: str, reason: str, run_id: str | None
) -> None:
    """Make ``version`` the champion and archive the previous one, in one transaction."""
    with transaction(con):
        previous = con.execute(
            "select version from ml.model_versions where model_name = ? and status = 'champion'", [model_name]
        ).fetchall()
        for (old,) in previous:
            if old != version:
                con.execute(
                    "update ml.model_versions set status = 'archived' where model_name = ? and version = ?",
                    [model_name, old],
                )
                _history(con, model_name, old, "archived", actor, f"replaced by v{version}", run_id)
        con.execute(
            "update ml.model_versions set status = 'champion', promoted_at = ? where model_name = ? and version = ?",
            [datetime.now(UTC), model_name, version],
        )
        _history(con, model_name, version, "promoted", actor, reason, run_id)


def reject(
    con: duckdb.DuckDBPyConnection, model_name: str, version: int, actor: str, reason: str, run_id: str | None
) -> None:
    with transaction(con):
        con.execute(
            "update ml.model_versions set status = 'rejected' where model_name = ? and version = ?",
            [model_name, version],
        )
        _history(con, model_name, version, "rejected", actor, reason, run_id)


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


def load_model(row: dict) -> LoadedModel:
    """Load a registered version after checking its model file against the recorded SHA-256."""
    folder = Path(row["artifact_path"])
    model_path = folder / MODEL_FILE
    if not model_path.exists():
        raise ModelIntegrityError(f"{row['model_name']} v{row['version']}: model file {model_path} is missing")
    model_bytes = model_path.read_bytes()
    actual = hashlib.sha256(model_bytes).hexdigest()
    metadata = json.loads((folder / METADATA_FILE).read_text())
    if actual != row["artifact_sha256"] or actual != metadata.get("model_sha256"):
        raise ModelIntegrityError(
            f"{row['model_name']} v{row['version']}: {model_path} has SHA-256 {actual}, the registry recorded "
            f"{row['artifact_sha256']}; the file was changed after registration and is refused. Restore it or "
            f"retrain."
        )
    # Load from the bytes that were hashed, so the checked file is the one used.
    booster = lgb.Booster(model_str=model_bytes.decode())
    return LoadedModel(
        model_name=row["model_name"],
        version=int(row["version"]),
        booster=booster,
        signature=Signature.from_dict(metadata["signature"]),
        threshold=float(row["threshold"]),
        reference_profile=json.loads((folder / PROFILE_FILE).read_text()),
        metadata=metadata,
    )


def load_champion(con: duckdb.DuckDBPyConnection, model_name: str) -> LoadedModel:
    row = champion_row(con, model_name)
    if row is None:
        raise LookupError(f"ml.model_versions: model {model_name} has no champion; train and promote one first")
    return load_model(row)
