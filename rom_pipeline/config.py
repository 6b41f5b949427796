"""The rule parameters: defaults in ``parameters.yaml``, user overrides by ``ROM_PARAMETERS``.

Parameters reach SQL in two ways, both set by :func:`apply_parameters`:
scalars as DuckDB variables (``getvariable('norm_score')``) and tables in the
``config`` schema (instruments, reliable-change constants, indicator targets).
Rules shared by several models are TEMP macros from ``sql/macros/``.
Every run records the flattened values and their hash.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import yaml

from rom_pipeline.indicators import CatalogueError, Indicator, parse_catalogue
from rom_pipeline.paths import PACKAGE_DIR, SCHEMAS_DIR, SQL_DIR

DEFAULTS_FILE = PACKAGE_DIR / "parameters.yaml"
INSTRUMENTS_FILE = SCHEMAS_DIR / "instruments.yaml"
MACROS_DIR = SQL_DIR / "macros"
# libyaml's parser where PyYAML has it (its wheels do): the same safe constructor and resolver as
# yaml.safe_load, about ten times faster. Every step of a run loads the parameters (~100 times a run).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(text: str):
    return yaml.load(text, Loader=_YAML_LOADER)


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Parameters:
    tree: dict[str, Any]
    instruments: dict[str, Any]

    @property
    def scalars(self) -> dict[str, float | str]:
        """Flat name -> value of the single-valued parameters (the DuckDB variables)."""
        out: dict[str, float | str] = {}
        for section in ("outcomes", "indicators", "benchmarks"):
            for name, entry in self.tree[section].items():
                if isinstance(entry, dict) and "value" in entry:
                    out[name] = entry["value"]
                elif not isinstance(entry, dict):
                    out[name] = entry
        out["reliable_change_z"] = self.tree["reliable_change"]["z_critical"]["value"]
        out["max_blank_share"] = self.instruments["max_blank_share"]
        out["total_mismatch_tolerance"] = self.instruments["total_mismatch_tolerance"]
        return out

    @cached_property
    def catalogue(self) -> list[Indicator]:
        """The indicator catalogue (rom_pipeline.indicators), in its order."""
        return parse_catalogue(self.tree)

    def as_json(self) -> str:
        return json.dumps({"parameters": self.tree, "instruments": self.instruments}, sort_keys=True)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.as_json().encode()).hexdigest()


def load_parameters(override_file: str | os.PathLike | None = None) -> Parameters:
    override_file = override_file or os.environ.get("ROM_PARAMETERS")
    override_text = None
    if override_file:
        path = Path(override_file)
        if not path.is_file():
            raise FileNotFoundError(f"ROM_PARAMETERS names {path}, which is not a file")
        override_text = path.read_text()
    return _parameters_of(DEFAULTS_FILE.read_text(), override_text, INSTRUMENTS_FILE.read_text())


@functools.lru_cache(maxsize=8)
def _parameters_of(defaults_text: str, override_text: str | None, instruments_text: str) -> Parameters:
    """The parameters parsed from the files' texts, once per process and texts: every step of a run
    loads them (about 100 times a run; ~4 ms of YAML each). Keyed on the texts, not on modification
    times, so that a file rewritten within the file system's clock tick is read anew. Callers only
    read the result (it is shared)."""
    tree = _yaml(defaults_text)
    if override_text is not None:
        tree = _deep_merge(tree, _yaml(override_text) or {})
    if "targets" in (tree.get("indicators") or {}):
        raise CatalogueError("indicators.targets: targets are part of the indicator catalogue now; write "
                             "indicators.catalogue.<code>.target and .comparator instead")
    instruments = _yaml(instruments_text)
    params = Parameters(tree=tree, instruments=instruments)
    params.catalogue  # a bad entry stops here, naming the entry and the field
    return params


def publish_therapist_level() -> bool:
    """Deployment setting: may the warehouse's readers see therapist-level results?

    Default no: seed 000 shows a therapist's results to the manager of their location
    only, so the shared warehouse leaves them out (manager packages carry them).
    """
    return os.environ.get("ROM_PUBLISH_THERAPIST_LEVEL", "").lower() in ("1", "true", "yes")


def load_rule_macros(con) -> None:
    """The shared rules (``sql/macros/*.sql``) as TEMP macros on this connection: the pipeline's
    connections, and ``explain``'s read-only ones that recompute a figure by the same rule."""
    for macro_file in sorted(MACROS_DIR.glob("*.sql")):
        con.execute(macro_file.read_text())


def apply_parameters(con, params: Parameters) -> None:
    """Make the parameters visible to SQL: variables plus ``config.*`` tables."""
    for name, value in params.scalars.items():
        con.execute(f"SET VARIABLE {name} = ?", [value])
    con.execute("SET VARIABLE publish_therapist_level = ?", [publish_therapist_level()])
    load_rule_macros(con)
    digest = _config_digest(params)
    if _config_tables_hold(con, digest):
        return  # every step of a run connects: the tables are written once per parameters and code, not per step
    con.execute("CREATE SCHEMA IF NOT EXISTS config")
    rc = params.tree["reliable_change"]["instruments"]
    instrument_rows = [
        (code, spec["name"], spec["items"], spec["item_min"], spec["item_max"], spec["total_min"],
         spec["total_max"], spec["higher_is"], spec["scoring"],
         rc.get(code, {}).get("s_pre"), rc.get(code, {}).get("r_xx"), rc.get(code, {}).get("cutoff"),
         rc.get(code, {}).get("source"))
        for code, spec in params.instruments["instruments"].items()
    ]
    con.execute("""
        CREATE OR REPLACE TABLE config.instruments (
            code VARCHAR PRIMARY KEY, name VARCHAR, items INTEGER, item_min INTEGER, item_max INTEGER,
            total_min DOUBLE, total_max DOUBLE, higher_is VARCHAR, scoring VARCHAR,
            rc_s_pre DOUBLE, rc_r_xx DOUBLE, rc_cutoff DOUBLE, rc_source VARCHAR)""")
    con.executemany("INSERT INTO config.instruments VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", instrument_rows)
    _create_catalogue_tables(con, params.catalogue)
    con.execute("CREATE OR REPLACE TABLE config.parameters (name VARCHAR PRIMARY KEY, value VARCHAR)")
    con.executemany("INSERT INTO config.parameters VALUES (?, ?)",
                    [(k, str(v)) for k, v in sorted(params.scalars.items())])
    con.execute(f"CREATE OR REPLACE TABLE {APPLIED_TABLE} AS SELECT ? AS sha256", [digest])


# What the config.* tables of a database were made from (parameters and code); not published.
APPLIED_TABLE = "config.applied_parameters"


def _config_digest(params: Parameters) -> str:
    from rom_pipeline.lib.fingerprint import source_sha256

    return hashlib.sha256((params.sha256 + source_sha256()).encode()).hexdigest()


def _config_tables_hold(con, digest: str) -> bool:
    try:
        row = con.execute(f"SELECT sha256 FROM {APPLIED_TABLE}").fetchone()
    except duckdb.CatalogException:
        return False
    return row is not None and row[0] == digest


def _create_catalogue_tables(con, catalogue: list[Indicator]) -> None:
    """``config.indicator_catalogue`` (every entry, bounds evaluated) and ``config.indicator_targets``
    (its entries with a target), the tables the SQL models and the reports read."""
    con.execute("""
        CREATE OR REPLACE TABLE config.indicator_catalogue (
            indicator VARCHAR PRIMARY KEY, position INTEGER, kind VARCHAR, label_nl VARCHAR, label_en VARCHAR,
            population VARCHAR, value_sql VARCHAR, lower_bound DOUBLE, upper_bound DOUBLE,
            higher_is_better BOOLEAN, cluster VARCHAR, benchmark_id VARCHAR, target DOUBLE, comparator VARCHAR,
            target_source VARCHAR, unit VARCHAR, chart BOOLEAN, breakdown BOOLEAN, formula VARCHAR,
            source VARCHAR)""")
    for ind in catalogue:
        lower, upper = ind.bounds_sql
        try:
            con.execute(f"""
                INSERT INTO config.indicator_catalogue VALUES
                (?, ?, ?, ?, ?, ?, ?, CAST(({lower}) AS DOUBLE), CAST(({upper}) AS DOUBLE),
                 ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        [ind.code, ind.position, ind.aggregation, ind.label_nl, ind.label_en, ind.population,
                         ind.value, ind.higher_is_better, ind.cluster, ind.benchmark_id if ind.cluster else None,
                         ind.target, ind.comparator, ind.target_source, ind.unit, ind.chart, ind.breakdown,
                         ind.formula, ind.source])
        except duckdb.Error as exc:
            raise CatalogueError(f"indicators.catalogue.{ind.code}.bounds: {[lower, upper]} cannot be evaluated: "
                                 f"{str(exc).splitlines()[0]}") from None
    con.execute("""
        CREATE OR REPLACE TABLE config.indicator_targets AS
        SELECT indicator, comparator, target, target_source AS source
        FROM config.indicator_catalogue WHERE target IS NOT NULL ORDER BY position""")
