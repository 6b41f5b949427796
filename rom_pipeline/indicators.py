"""The indicator catalogue: the one place an indicator is defined (design s2).

Entries live in ``rom_pipeline/parameters.yaml`` under ``indicators.catalogue``; a
deployment adds or changes one in its ``ROM_PARAMETERS`` file, without code
(docs/outcome-rules.md, "Adding an indicator"). Everything else derives from an entry:

- the per-episode contributions (``sql/outcomes/indicator_contributions.sql`` renders
  :attr:`Indicator.contribution_sql` of every entry), which both the statistics
  (``marts.indicator_aggregates``) and the audit trail (``audit.figure_episodes``,
  read by ``rom-pipeline explain``) read;
- ``config.indicator_catalogue`` (kind, bounds, direction, target, cluster, labels,
  formula), read by the statistics, the targets, the concern benchmark and the reports;
- explain's formula text and the data dictionary's indicator list.

An episode counts in an indicator when it is closed in the period, lies in the entry's
population and its value is not NULL; its contribution is 1 (count), 100 or 0
(percentage: the value is a boolean) or the value itself (mean).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

AGGREGATIONS = ("count", "percentage", "mean")
COMPARATORS = (">=", ">", "<=", "<")
CLUSTERS = ("CQ", "kernset", "FP")
# Named populations; anything else is an SQL predicate over marts.episode_outcomes.
POPULATIONS = {"closed": "TRUE", "complete": "has_complete_scores"}
POPULATION_TEXT = {"closed": "closed episodes", "complete": "closed episodes with complete SCL90 scores"}
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
                 "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")

REQUIRED = {
    "count": ("label_nl", "label_en", "population", "aggregation"),
    "percentage": ("label_nl", "label_en", "population", "value", "aggregation", "higher_is_better", "cluster"),
    "mean": ("label_nl", "label_en", "population", "value", "aggregation", "higher_is_better", "cluster"),
}
OPTIONAL = ("target", "comparator", "target_source", "bounds", "formula", "unit", "chart", "breakdown",
            "higher_is_better", "cluster", "value", "source")
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class CatalogueError(ValueError):
    """A catalogue entry that cannot be used; the message names the entry and the field."""


@dataclass(frozen=True)
class Indicator:
    code: str
    position: int
    label_nl: str
    label_en: str
    population: str
    aggregation: str
    value: str | None = None
    higher_is_better: bool | None = None
    cluster: str | None = None
    target: float | None = None
    comparator: str | None = None
    target_source: str | None = None
    bounds: tuple[str, str] | None = None
    formula_text: str | None = None
    unit: str | None = None
    chart: bool = False
    breakdown: bool = False
    source: str | None = None

    # --- SQL ---------------------------------------------------------------------------------
    @property
    def population_sql(self) -> str:
        return POPULATIONS.get(self.population, f"({self.population})")

    @property
    def contribution_sql(self) -> str:
        """The episode's contribution (DOUBLE), NULL when it does not count in this indicator."""
        if self.aggregation == "count":
            x = "1.0"
        elif self.aggregation == "percentage":
            x = f"100.0 * ({self.value})::INTEGER"
        else:
            x = f"({self.value})"
        return f"CASE WHEN {self.population_sql} THEN CAST({x} AS DOUBLE) END"

    @property
    def bounds_sql(self) -> tuple[str, str]:
        """Lowest and highest value the indicator can take, as SQL (NULL: unbounded)."""
        if self.bounds is not None:
            return self.bounds
        return ("0", "100") if self.aggregation == "percentage" else ("NULL", "NULL")

    # --- text --------------------------------------------------------------------------------
    @property
    def population_text(self) -> str:
        return POPULATION_TEXT.get(self.population, f"closed episodes with {self.population}")

    @property
    def formula(self) -> str:
        if self.formula_text:
            return self.formula_text
        if self.aggregation == "count":
            return f"number of {self.population_text} whose end_date falls in the period"
        if self.aggregation == "percentage":
            return (f"{self.population_text} where {self.value} / {self.population_text} where it is known "
                    "* 100")
        return f"mean of {self.value} over {self.population_text} where it is known"

    @property
    def benchmark_id(self) -> str:
        """Its id in marts.concern_benchmark (supplied indicators must not use the rom_ prefix)."""
        return f"rom_{self.code}"


def _sql_expression(code: str, field: str, text: Any) -> str:
    if not isinstance(text, (str, int, float)) or isinstance(text, bool) or str(text).strip() == "":
        raise CatalogueError(f"indicators.catalogue.{code}.{field}: an SQL expression (text) is required, "
                             f"got {text!r}")
    text = str(text).strip()
    if ";" in text or "--" in text or "/*" in text:
        raise CatalogueError(f"indicators.catalogue.{code}.{field}: one SQL expression without ';' or "
                             f"comments, got {text!r}")
    return text


def parse_entry(code: str, position: int, entry: Any) -> Indicator:
    where = f"indicators.catalogue.{code}"
    if not CODE_PATTERN.match(code):
        raise CatalogueError(f"{where}: an indicator code is lower case letters, digits and _ "
                             "(at most 40, starting with a letter)")
    if not isinstance(entry, Mapping):
        raise CatalogueError(f"{where}: expected a mapping of fields, got {type(entry).__name__}")
    aggregation = entry.get("aggregation")
    if aggregation not in AGGREGATIONS:
        raise CatalogueError(f"{where}.aggregation: one of {', '.join(AGGREGATIONS)} is required, "
                             f"got {aggregation!r}")
    unknown = sorted(set(entry) - set(REQUIRED[aggregation]) - set(OPTIONAL))
    if unknown:
        raise CatalogueError(f"{where}.{unknown[0]}: unknown field (fields: "
                             f"{', '.join(sorted(set(REQUIRED[aggregation]) | set(OPTIONAL)))})")
    missing = [f for f in REQUIRED[aggregation] if f not in entry]
    if missing:
        raise CatalogueError(f"{where}.{missing[0]}: required field is missing")
    for field in ("label_nl", "label_en"):
        if not isinstance(entry[field], str) or not entry[field].strip():
            raise CatalogueError(f"{where}.{field}: a non-empty text is required")
    population = entry["population"]
    if population not in POPULATIONS:
        population = _sql_expression(code, "population", population)
    value = _sql_expression(code, "value", entry["value"]) if aggregation != "count" else None
    higher = entry.get("higher_is_better")
    if aggregation != "count" and not isinstance(higher, bool):
        raise CatalogueError(f"{where}.higher_is_better: true or false is required, got {higher!r}")
    cluster = entry.get("cluster")
    if cluster is not None and cluster not in CLUSTERS:
        raise CatalogueError(f"{where}.cluster: one of {', '.join(CLUSTERS)} or null (not benchmarked), "
                             f"got {cluster!r}")
    if aggregation == "count" and cluster is not None:
        raise CatalogueError(f"{where}.cluster: a count is a volume, not a quality; it is not benchmarked")
    target, comparator = entry.get("target"), entry.get("comparator")
    if (target is None) != (comparator is None):
        raise CatalogueError(f"{where}.{'comparator' if comparator is None else 'target'}: "
                             "target and comparator go together")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))):
        raise CatalogueError(f"{where}.target: a number is required, got {target!r}")
    if comparator is not None and comparator not in COMPARATORS:
        raise CatalogueError(f"{where}.comparator: one of {', '.join(COMPARATORS)}, got {comparator!r}")
    bounds = entry.get("bounds")
    if bounds is not None:
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise CatalogueError(f"{where}.bounds: [lowest, highest] is required (numbers or SQL), got {bounds!r}")
        bounds = tuple("NULL" if b is None else _sql_expression(code, "bounds", b) for b in bounds)
    for flag in ("chart", "breakdown"):
        if not isinstance(entry.get(flag, False), bool):
            raise CatalogueError(f"{where}.{flag}: true or false, got {entry[flag]!r}")
    return Indicator(
        code=code, position=position, label_nl=entry["label_nl"].strip(), label_en=entry["label_en"].strip(),
        population=population, aggregation=aggregation, value=value,
        higher_is_better=higher if aggregation != "count" else None, cluster=cluster,
        target=float(target) if target is not None else None, comparator=comparator,
        target_source=entry.get("target_source"), bounds=bounds, formula_text=entry.get("formula"),
        unit=entry.get("unit", "%" if aggregation == "percentage" else None),
        chart=entry.get("chart", False), breakdown=entry.get("breakdown", False), source=entry.get("source"),
    )


def parse_catalogue(tree: Mapping) -> list[Indicator]:
    """The catalogue of a parameter tree, in its order; CatalogueError names a bad entry and field."""
    catalogue = (tree.get("indicators") or {}).get("catalogue")
    if not isinstance(catalogue, Mapping) or not catalogue:
        raise CatalogueError("indicators.catalogue: a mapping of indicator code -> entry is required")
    out = []
    for position, (code, entry) in enumerate(catalogue.items(), start=1):
        if entry is None:  # an override may remove an indicator with `code: null`
            continue
        out.append(parse_entry(str(code), position, entry))
    return out


# --- checking the SQL against the real outcome table ------------------------------------------

def _empty_outcome_tables(con) -> None:
    """marts.episode_outcomes with its real columns and types, empty: the pipeline's own models
    run on no deliveries, so the check binds against exactly what a run will have."""
    from rom_pipeline.defs.staging.validate import build_empty_staging
    from rom_pipeline.lib.sqlfiles import SqlModel

    build_empty_staging(con)
    for layer, name in (("outcomes", "instrument_outcomes"), ("marts", "episode_outcomes")):
        SqlModel(layer, name).build(con)


def _type_of(con, code: str, field: str, expression: str) -> str:
    import duckdb

    try:
        return con.execute(f"DESCRIBE SELECT {expression} AS probe FROM marts.episode_outcomes").fetchone()[1]
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise CatalogueError(f"indicators.catalogue.{code}.{field}: {expression!r} does not work on the columns "
                             f"of marts.episode_outcomes: {first_line}") from None


def check_against_outcomes(params) -> None:
    """Bind every entry's SQL to marts.episode_outcomes (built empty in memory) and check its type.

    Raises CatalogueError naming the entry and field. Writes nothing anywhere: a run calls it
    before its first write (rom_pipeline.run preflight, and the audit/runs asset).
    """
    import duckdb

    from rom_pipeline.config import apply_parameters

    if params.sha256 in _PASSED:  # checked in this process already (the CLI's preflight, then audit/runs)
        return
    con = duckdb.connect()
    try:
        apply_parameters(con, params)
        _empty_outcome_tables(con)
        for ind in params.catalogue:
            population_type = _type_of(con, ind.code, "population", ind.population_sql)
            if population_type != "BOOLEAN":
                raise CatalogueError(f"indicators.catalogue.{ind.code}.population: a condition (BOOLEAN) is "
                                     f"required, {ind.population!r} is {population_type}")
            if ind.value is None:
                continue
            value_type = _type_of(con, ind.code, "value", f"({ind.value})")
            if ind.aggregation == "percentage" and value_type != "BOOLEAN":
                raise CatalogueError(f"indicators.catalogue.{ind.code}.value: a percentage counts episodes where "
                                     f"a condition holds (BOOLEAN); {ind.value!r} is {value_type}")
            if ind.aggregation == "mean" and not value_type.startswith(NUMERIC_TYPES):
                raise CatalogueError(f"indicators.catalogue.{ind.code}.value: a mean needs a number; "
                                     f"{ind.value!r} is {value_type}")
            _type_of(con, ind.code, "contribution", ind.contribution_sql)
    finally:
        con.close()
    _PASSED.add(params.sha256)


# Parameters (by sha256) whose catalogue bound in this process: the code cannot change within it.
_PASSED: set[str] = set()
