"""Generate docs/data-dictionary.md from the schemas: the contract (pandera) and the warehouse (YAML).

`rom-pipeline dictionary` rewrites the file; `rom-pipeline dictionary --check` fails when it is
stale (a test runs the check, so the documentation cannot drift from the code).
"""
from __future__ import annotations

from pathlib import Path

from rom_pipeline.config import load_parameters
from rom_pipeline.lib.warehouse_spec import load_spec
from rom_pipeline.paths import PROJECT_DIR
from schemas.contract import CONTRACT_VERSION, FILES
from schemas.reference import REFERENCE_FILES

DICTIONARY_PATH = PROJECT_DIR / "docs" / "data-dictionary.md"


def _rules(column) -> str:
    rules = ["required" if not column.nullable else "nullable"]
    if column.unique:
        rules.append("unique")
    for check in column.checks:
        stats = check.statistics
        if check.name == "isin":
            rules.append("one of " + ", ".join(f"`{v}`" for v in stats["allowed_values"]))
        elif check.name == "in_range":
            rules.append(f"{stats['min_value']}..{stats['max_value']}")
        elif check.name == "greater_than_or_equal_to":
            rules.append(f">= {stats['min_value']}")
        else:
            rules.append(check.name)
    ref = (column.metadata or {}).get("references")
    if ref:
        rules.append(f"must exist in {ref[0]}.{ref[1]}")
    if (column.metadata or {}).get("pseudonymise"):
        rules.append("pseudonymised (HMAC-SHA256) before storage")
    return "; ".join(rules)


def _schema_section(title: str, schemas: dict) -> list[str]:
    lines = [f"## {title}", ""]
    for name, schema in schemas.items():
        lines += [f"### `{name}`", "", "| column | type | rules |", "|---|---|---|"]
        for col_name, col in schema.columns.items():
            lines.append(f"| {col_name} | {col.dtype} | {_rules(col)} |")
        if schema.unique:
            lines += ["", f"Unique together: {', '.join(schema.unique)} (a later duplicate is quarantined)."]
        for reason, column, predicate in (schema.metadata or {}).get("row_rules", []):
            lines.append(f"- `{reason}` ({column}): quarantined when `{predicate}`")
        lines.append("")
    return lines


def _catalogue_section() -> list[str]:
    """The indicator catalogue as the parameters define it (an override file's entries included)."""
    lines = ["## Indicator catalogue", "",
             "Every indicator of `marts.indicators` (rom_pipeline/parameters.yaml, `indicators.catalogue`; "
             "a `ROM_PARAMETERS` file adds one, see docs/outcome-rules.md). Periods are by the episodes' "
             "end date; an episode counts when it is in the population and its value is not NULL.", "",
             "| code | label (nl / en) | kind | population | per-episode value | bounds | higher is better "
             "| target | cluster | formula |", "|---|---|---|---|---|---|---|---|---|---|"]
    for ind in load_parameters().catalogue:
        target = f"{ind.comparator} {ind.target:g}" if ind.target is not None else ""
        bounds = " .. ".join(ind.bounds_sql) if ind.bounds_sql != ("NULL", "NULL") else ""
        cells = [f"`{ind.code}`", f"{ind.label_nl} / {ind.label_en}", ind.aggregation, f"`{ind.population}`",
                 f"`{ind.value}`" if ind.value else "", f"`{bounds}`" if bounds else "",
                 "" if ind.higher_is_better is None else str(ind.higher_is_better).lower(), target,
                 ind.cluster or "", ind.formula]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines + [""]


def render() -> str:
    lines = [
        "# Data dictionary",
        "",
        "Generated from `schemas/` by `rom-pipeline dictionary`; do not edit by hand.",
        "",
    ]
    lines += _schema_section(f"Export contract {CONTRACT_VERSION} (input files, typed as in staging)", FILES)
    lines += _schema_section("Reference inputs (`reference/` under the export root)", REFERENCE_FILES)
    lines += _catalogue_section()
    lines += ["## Published warehouse (`$ROM_DATA_DIR/warehouse.duckdb`)", ""]
    for table in load_spec():
        lines += [f"### `{table.name}`", "", table.description, "",
                  f"Audience: {table.audience} (" + ("also exported as CSV for spreadsheets and publication"
                                                     if table.audience == "public" else
                                                     "the analysts' warehouse only") + ").", ""]
        if table.where:
            lines += [f"Rows published: `{table.where}`.", ""]
        lines += ["| column | description |", "|---|---|"]
        for col in table.columns:
            masked = f" Published as `{col.publish_as}`." if col.publish_as else ""
            lines.append(f"| {col.name} | {col.description}{masked} |")
        lines.append("")
    return "\n".join(lines)


def write(path: Path = DICTIONARY_PATH) -> None:
    path.write_text(render())


def is_current(path: Path = DICTIONARY_PATH) -> bool:
    return path.is_file() and path.read_text() == render()
