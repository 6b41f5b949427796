"""Generate docs/data-dictionary.md from the schemas: the contract (pandera) and the warehouse (YAML).

`rom-pipeline dictionary` rewrites the file; `rom-pipeline dictionary --check` fails when it is
stale (a test runs the check, so the documentation cannot drift from the code).
"""
from __future__ import annotations

from pathlib import Path

from rom_pipeline.defs.publish.warehouse import load_spec
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


def render() -> str:
    lines = [
        "# Data dictionary",
        "",
        "Generated from `schemas/` by `rom-pipeline dictionary`; do not edit by hand.",
        "",
    ]
    lines += _schema_section(f"Export contract {CONTRACT_VERSION} (input files, typed as in staging)", FILES)
    lines += _schema_section("Reference inputs (`reference/` under the export root)", REFERENCE_FILES)
    lines += ["## Published warehouse (`$ROM_DATA_DIR/warehouse.duckdb`)", ""]
    for table in load_spec():
        lines += [f"### `{table.name}`", "", table.description, ""]
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
