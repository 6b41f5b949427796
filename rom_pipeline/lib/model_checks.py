"""Checks of a model, as declared in its sidecar (``sql/<layer>/<table>.yml``, ``checks:``).

A check is a query for the rows that break a rule; it passes when there are none.
Each entry has a ``name``, a ``description``, a ``severity`` (``ERROR``: blocking, nothing
downstream runs; ``WARN``: recorded, the figures are published anyway) and its query, one of:

- ``sql_file: <path>``: a file relative to the sidecar's folder (e.g. ``checks/x.sql``);
- ``sql: |`` the query inline;
- ``unique: <columns>``: the key combinations that occur more than once;
- ``z_centred: [{z: <column>, by: <SQL grouping expression>}, ...]``: the groups whose
  z-scores (at least two) do not have mean 0 and sample standard deviation 1.

Check queries are rendered like models (:func:`rom_pipeline.lib.sqlfiles.render_sql`).
Whether a failing check shows a sample of its rows is the model's ``person_level``
(default true: no sample where a row is about one client or one therapist).
"""
from __future__ import annotations

from dataclasses import dataclass
from rom_pipeline.lib.sqlfiles import ModelSpecError, SqlModel, render_sql
from rom_pipeline.paths import PROJECT_DIR, SQL_DIR

SEVERITIES = ("ERROR", "WARN")
CHECK_KEYS = {"name", "description", "severity", "sql", "sql_file", "unique", "z_centred", "requires"}
QUERY_KEYS = ("sql", "sql_file", "unique", "z_centred")


@dataclass(frozen=True)
class CheckSpec:
    """One rule on a table, stated as the query for the rows that break it."""

    table: str                       # schema.table the check is attached to
    name: str
    description: str
    sql: str
    severity: str = "ERROR"
    sample: bool = False             # show a few failing rows (only for tables without person-level rows)
    sql_file: str | None = None      # path relative to the project, when the query is a file
    requires: tuple[str, ...] = ()   # tables that must exist, else the check passes with a note

    @property
    def blocking(self) -> bool:
        return self.severity == "ERROR"

    def failing_rows(self, con) -> int:
        return con.execute(f"SELECT count(*) FROM (\n{self.sql.strip().rstrip(';')}\n) AS failing").fetchone()[0]


def unique_sql(table: str, key: str) -> str:
    return f"SELECT {key}, count(*) AS rows FROM {table} GROUP BY {key} HAVING count(*) > 1"


def z_centred_sql(table: str, z: str, by: str) -> str:
    return (f"SELECT {by}, avg({z}) AS mean_z, stddev_samp({z}) AS sd_z FROM {table} "
            f"GROUP BY {by} HAVING count({z}) >= 2 AND (abs(avg({z})) > 1e-6 OR abs(stddev_samp({z}) - 1) > 1e-6)")


def _query(model: SqlModel, entry: dict, where: str) -> tuple[str, str | None]:
    given = [k for k in QUERY_KEYS if k in entry]
    if len(given) != 1:
        raise ModelSpecError(f"{where}: give exactly one of {QUERY_KEYS}, not {given or 'none'}")
    kind = given[0]
    if kind == "sql":
        return str(entry["sql"]), None
    if kind == "sql_file":
        path = model.path.parent / entry["sql_file"]
        if not path.is_file():
            raise ModelSpecError(f"{where}: sql_file {entry['sql_file']} does not exist beside the model")
        return render_sql(path.relative_to(SQL_DIR).as_posix()), str(path.relative_to(PROJECT_DIR))
    if kind == "unique":
        return unique_sql(model.table, entry["unique"]), None
    groups = entry["z_centred"]
    return "\nUNION ALL\n".join(z_centred_sql(model.table, g["z"], g["by"]) for g in groups), None


def model_checks(model: SqlModel) -> list[CheckSpec]:
    """The checks the model's sidecar declares, validated."""
    specs = []
    for i, entry in enumerate(model.spec.get("checks") or []):
        where = f"{model.spec_path.relative_to(PROJECT_DIR)} checks[{i}]"
        if not isinstance(entry, dict):
            raise ModelSpecError(f"{where}: expected a mapping")
        unknown = set(entry) - CHECK_KEYS
        missing = {"name", "description", "severity"} - set(entry)
        if unknown or missing:
            raise ModelSpecError(f"{where}: unknown {sorted(unknown)}, missing {sorted(missing)}")
        if entry["severity"] not in SEVERITIES:
            raise ModelSpecError(f"{where}: severity must be one of {SEVERITIES}, not {entry['severity']!r}")
        sql, sql_file = _query(model, entry, where)
        specs.append(CheckSpec(table=model.table, name=entry["name"], description=" ".join(entry["description"].split()),
                               sql=sql, severity=entry["severity"], sample=not model.spec.get("person_level", True),
                               sql_file=sql_file, requires=tuple(entry.get("requires") or ())))
    return specs
