"""SQL models: one file per table under ``sql/<layer>/<table>.sql``, each a single SELECT.

The runner, not the file, decides where the result goes (``CREATE OR REPLACE
TABLE <schema>.<table> AS <select>``), so a model can be read, tested and run
on its own. Parameters come from DuckDB variables (``getvariable('norm_score')``)
and ``config.*`` tables set by :func:`rom_pipeline.config.apply_parameters`.

A model file is a Jinja template (:meth:`SqlModel.render`, the one place SQL is
rendered): a plain SELECT renders to itself; a generated model loops over what the
context holds (``params``: the rule parameters; ``delivered_files``: the files of
``schemas/``). What a model reads (:attr:`SqlModel.reads`) is derived from its
rendered SQL with sqlglot: every ``schema.table`` it selects from, except CTE names,
table functions and the ``config`` tables that ``apply_parameters`` creates.

Beside each model, ``sql/<layer>/<table>.yml`` says what the SQL cannot: its
description, its refresh mode, its column lineage and its checks (:attr:`SqlModel.spec`,
docs/conventions.md).

Incremental nights (``refresh_concerns``): a per-concern table is refreshed for
some concerns only, from the same file, filtered on ``concern_id``
(``DELETE`` + ``INSERT BY NAME``, in one transaction); see
:mod:`rom_pipeline.lib.concern_scope`.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import jinja2
import sqlglot
import yaml
from sqlglot import exp

from rom_pipeline.lib.audience import computed_sql
from rom_pipeline.lib.sqltext import in_list
from rom_pipeline.paths import PROJECT_DIR, SQL_DIR

# Tables every connection has before any model runs (rom_pipeline.config.apply_parameters).
PROVIDED_SCHEMAS = ("config",)
REFRESH_MODES = ("per_concern", "cross_concern")
SPEC_KEYS = {"description", "refresh", "person_level", "kinds", "column_lineage", "checks", "built_by"}


class ModelSpecError(ValueError):
    """A model's sidecar (``<table>.yml``) or SQL cannot be read as the conventions ask."""


@jinja2.pass_context
def concern_rows(context, table: str) -> str:
    """A ``per_concern`` model's source table, as the model names it: ``{{ concern_rows('staging.episodes') }}``.

    The table itself; or, when the model is rendered for some concerns (``concern_filter`` in the
    context: :meth:`SqlModel.build_by_concern`, :meth:`SqlModel.refresh_concerns`), only their rows.
    A filter on the model's output alone is not enough: DuckDB computes a CTE that is read more than
    once for every concern before the filter applies (issue 11: ten concerns' refreshes cost ten
    whole builds).
    """
    condition = context.get("concern_filter")
    return table if condition is None else f"(SELECT * FROM {table} WHERE {condition})"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(SQL_DIR), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.globals["concern_rows"] = concern_rows
    env.globals["figure_computed"] = computed_sql
    return env


def default_context(params=None) -> dict[str, Any]:
    """What every model is rendered with: the rule parameters and the registry of delivered files.

    ``params`` defaults to :func:`rom_pipeline.config.load_parameters` (``ROM_PARAMETERS`` applied);
    a run passes its own. ``delivered_files``: every file name of ``schemas/contract.py`` and
    ``schemas/reference.py``, in their order (what ``audit.quarantine`` and ``audit.reconciliation`` union).
    """
    from schemas.contract import FILES
    from schemas.reference import REFERENCE_FILES

    return {"params": params if params is not None else _default_parameters(*_parameter_sources()),
            "delivered_files": [*FILES, *REFERENCE_FILES]}


def _parameter_sources() -> tuple:
    """What the default parameters are read from, with modification times: the cache key of
    :func:`_default_parameters` (every model's text renders with them; the definitions render
    every model at import, so reading the YAML once instead of once per model saves seconds)."""
    import os

    from rom_pipeline.config import DEFAULTS_FILE, INSTRUMENTS_FILE

    override = os.environ.get("ROM_PARAMETERS") or None
    files = [DEFAULTS_FILE, INSTRUMENTS_FILE] + ([Path(override)] if override else [])
    return override, tuple(f.stat().st_mtime_ns if f.is_file() else None for f in files)


@functools.lru_cache(maxsize=4)
def _default_parameters(override: str | None, mtimes: tuple):
    from rom_pipeline.config import load_parameters

    return load_parameters(override)


def render_sql(relative_path: str, context: dict | None = None) -> str:
    """Render ``sql/<relative_path>`` with ``context`` (default: :func:`default_context`)."""
    return _environment().get_template(relative_path).render(
        context if context is not None else default_context())


def render_macro(relative_path: str, macro: str, **arguments) -> str:
    """Call the Jinja macro ``macro`` of ``sql/<relative_path>``: Python code that builds SQL reads
    the same rule as the models and checks that import it."""
    return str(getattr(_environment().get_template(relative_path).module, macro)(**arguments))


def tables_read(sql: str) -> list[tuple[str, str]]:
    """(schema, table) of every table ``sql`` reads, sorted: CTEs, table functions and ``config.*`` left out."""
    return list(_tables_read(sql))


@functools.lru_cache(maxsize=256)
def _tables_read(sql: str) -> tuple[tuple[str, str], ...]:
    """Parsing is the slow part (sqlglot, about 0.1 s a model) and the definitions ask several times."""
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ModelSpecError(f"sqlglot cannot parse the SQL: {str(exc)[:300]}") from None
    found: set[tuple[str, str]] = set()
    for tree in filter(None, statements):
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):  # a table function: range(), read_csv(), ...
                continue
            if not table.db:
                if table.name not in ctes:
                    raise ModelSpecError(f"table {table.name!r} is neither a CTE nor schema-qualified "
                                         "(write <layer>.<table>)")
                continue
            if table.db not in PROVIDED_SCHEMAS:
                found.add((table.db, table.name))
    return tuple(sorted(found))


@dataclass(frozen=True)
class SqlModel:
    layer: str
    name: str

    @property
    def path(self) -> Path:
        return SQL_DIR / self.layer / f"{self.name}.sql"

    @property
    def spec_path(self) -> Path:
        return self.path.with_suffix(".yml")

    @property
    def relative_path(self) -> str:
        return str(self.path.relative_to(PROJECT_DIR))

    @property
    def table(self) -> str:
        return f"{self.layer}.{self.name}"

    def render(self, context: dict | None = None) -> str:
        """The model's SELECT, rendered with ``context`` (default: :func:`default_context`)."""
        return render_sql(f"{self.layer}/{self.name}.sql", context)

    @property
    def text(self) -> str:
        return self.render(default_context())

    @property
    def sha256(self) -> str:
        """Of the rendered SQL (default context): changes when the file or what it is generated from does."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def reads(self) -> list[tuple[str, str]]:
        """(schema, table) of every table the rendered model reads: its dependencies."""
        try:
            reads = tables_read(self.text)
        except ModelSpecError as exc:
            raise ModelSpecError(f"{self.relative_path}: {exc}") from None
        if (self.layer, self.name) in reads:
            raise ModelSpecError(f"{self.relative_path} reads its own table")
        return reads

    @functools.cached_property
    def spec(self) -> dict[str, Any]:
        """The sidecar ``<table>.yml``, checked (an empty dict when there is none)."""
        if not self.spec_path.is_file():
            return {}
        where = self.spec_path.relative_to(PROJECT_DIR)
        doc = yaml.safe_load(self.spec_path.read_text()) or {}
        if not isinstance(doc, dict):
            raise ModelSpecError(f"{where}: expected a mapping")
        unknown = set(doc) - SPEC_KEYS
        if unknown:
            raise ModelSpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
        if not str(doc.get("description") or "").strip():
            raise ModelSpecError(f"{where}: description is missing")
        if doc.get("refresh", "cross_concern") not in REFRESH_MODES:
            raise ModelSpecError(f"{where}: refresh must be one of {REFRESH_MODES}, not {doc['refresh']!r}")
        return doc

    @property
    def per_concern(self) -> bool:
        return self.spec.get("refresh", "cross_concern") == "per_concern"

    def build(self, con, schema: str | None = None, context: dict | None = None) -> int:
        """(Re)create ``<schema>.<name>`` from the model in one statement; returns its row count."""
        target = f"{schema or self.layer}.{self.name}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema or self.layer}")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS\n{self.render(context)}")
        return con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]

    def render_for(self, context: dict | None, concern_filter: str) -> str:
        """The model rendered to read only the rows meeting ``concern_filter`` (see :func:`concern_rows`)."""
        return self.render({**(context if context is not None else default_context()),
                            "concern_filter": concern_filter}).strip().rstrip(";")

    def build_by_concern(self, con, concerns: Sequence[str], schema: str | None = None,
                         context: dict | None = None) -> int:
        """(Re)create ``<schema>.<name>`` from the model one concern at a time; returns its row count.

        A ``per_concern`` model's rows of one concern read that concern's rows only
        (:func:`concern_rows`), so each INSERT holds one concern's hash tables, not every concern's
        (issue 11: at tier L the one-statement build of outcomes.instrument_outcomes ran out of a
        2.5 GB memory limit). Rows of no listed concern (reference-file concerns, NULL) come in one
        last INSERT. The rows go into ``<name>__building``, which replaces the table in one
        transaction once complete: a reader (or a crash) sees the old table or the new one.
        The empty table is committed before the INSERTs: DuckDB 2.0 returned no rows, in the same
        connection, from large INSERTs into a table created in their own transaction.
        """
        layer = schema or self.layer
        target, building = f"{layer}.{self.name}", f"{layer}.{self.name}__building"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")

        def rest(column: str) -> str:  # the rows of no listed concern
            return f"{column} IS NULL OR {column} NOT IN ({in_list(concerns)})" if concerns else "true"

        parts = [(f"concern_id IN ({in_list([c])})", f"model.concern_id IN ({in_list([c])})") for c in sorted(concerns)]
        parts.append((rest("concern_id"), rest("model.concern_id")))
        con.execute(f"CREATE OR REPLACE TABLE {building} AS SELECT * FROM (\n{self.render_for(context, 'false')}\n)"
                    " AS model LIMIT 0")
        for source_filter, output_filter in parts:
            con.execute(f"INSERT INTO {building} SELECT * FROM (\n{self.render_for(context, source_filter)}\n) AS model "
                        f"WHERE {output_filter}")
        con.begin()
        try:
            con.execute(f"DROP TABLE IF EXISTS {target}")
            con.execute(f"ALTER TABLE {building} RENAME TO {self.name}")
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]

    def exists(self, con, schema: str | None = None) -> bool:
        return con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ?", [schema or self.layer, self.name]).fetchone()[0] > 0

    def refresh_concerns(self, con, concerns: Sequence[str], schema: str | None = None,
                         context: dict | None = None) -> tuple[int, int]:
        """Replace the rows of ``concerns`` only, from this model filtered on ``concern_id``.

        One transaction: a reader (or a crash) sees the old rows or the new ones, never
        neither. The table must exist (else use :meth:`build`). Returns (deleted, inserted).
        """
        if not concerns:
            return 0, 0
        target = f"{schema or self.layer}.{self.name}"
        concern_list = in_list(concerns)
        con.begin()
        try:
            deleted = con.execute(f"DELETE FROM {target} WHERE concern_id IN ({concern_list})").fetchone()[0]
            inserted = con.execute(
                f"INSERT INTO {target} BY NAME\nSELECT * FROM (\n{self.render_for(context, f'concern_id IN ({concern_list})')}\n)"
                f" AS model\nWHERE model.concern_id IN ({concern_list})").fetchone()[0]
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return deleted, inserted


def discover_models(layers: Sequence[str] | None = None) -> list[SqlModel]:
    """Every ``sql/<layer>/<table>.sql`` (sql/macros and check folders aside), by layer and name."""
    models = []
    for path in sorted(SQL_DIR.glob("*/*.sql")):
        layer = path.parent.name
        if layer == "macros" or (layers is not None and layer not in layers):
            continue
        models.append(SqlModel(layer, path.stem))
    return models


def in_build_order(models: Sequence[SqlModel]) -> list[SqlModel]:
    """``models`` ordered so that each comes after the models it reads (stable otherwise)."""
    by_table = {m.table: m for m in models}
    ordered: list[SqlModel] = []
    visiting: set[str] = set()

    def visit(model: SqlModel) -> None:
        if model in ordered:
            return
        if model.table in visiting:
            raise ModelSpecError(f"models read each other in a cycle through {model.table}")
        visiting.add(model.table)
        for schema, table in model.reads:
            upstream = by_table.get(f"{schema}.{table}")
            if upstream is not None:
                visit(upstream)
        visiting.discard(model.table)
        ordered.append(model)

    for model in models:
        visit(model)
    return ordered
