"""Turn a pandera schema of ``schemas/`` into one DuckDB query that checks every row.

The query reads the rows of one delivery of ``raw.<file>`` (text) and returns,
per row: its identity, the typed columns, the raw row as JSON and the list of
every rule it breaks (``reasons``: reason, column_name, detail). A row with no
reasons is valid. Every rule is decided within the delivery (keys, references,
lookups), so deliveries (concerns) are validated one at a time and never read
each other's rows. Everything runs inside DuckDB, so it scales with DuckDB, not
with Python memory. The schema is the only place a rule is written: a pandera
check this module cannot translate is an error, never skipped.
"""
from __future__ import annotations

import re

import pandera.ibis as pa

from rom_pipeline.lib.sqltext import literal

TYPE_PATTERNS = {
    # dtype -> (regex on the text, DuckDB type, what the contract expects)
    "date": (r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "DATE", "a date YYYY-MM-DD"),
    "int32": (r"[+-]?[0-9]{1,9}", "INTEGER", "an integer"),
    "float64": (r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", "DOUBLE", "a decimal number with '.'"),
}


def _quote(value) -> str:
    if isinstance(value, str):
        return literal(value)
    return repr(value)


def typed_expression(column: str, dtype) -> str:
    name = str(dtype)
    if name == "string":
        return f'"{column}"'
    if name == "boolean":
        return f"""CASE "{column}" WHEN '1' THEN true WHEN '0' THEN false END"""
    pattern, sql_type, _ = TYPE_PATTERNS[name]
    return f"""CASE WHEN regexp_full_match("{column}", '{pattern}') THEN TRY_CAST("{column}" AS {sql_type}) END"""


def _expected(dtype) -> str:
    name = str(dtype)
    if name == "boolean":
        return "0 or 1"
    return TYPE_PATTERNS[name][2]


def check_condition(column: str, check) -> tuple[str, str, str]:
    """(reason, SQL predicate TRUE when the typed value breaks the check, detail) for a pandera check."""
    s, c = check.statistics, f't."{column}"'
    if check.name == "isin":
        allowed = ", ".join(_quote(v) for v in s["allowed_values"])
        return "invalid_value", f"{c} NOT IN ({allowed})", f"not one of {allowed}"
    if check.name == "in_range":
        low = f"{c} {'<' if s.get('include_min', True) else '<='} {s['min_value']}"
        high = f"{c} {'>' if s.get('include_max', True) else '>='} {s['max_value']}"
        return "out_of_range", f"({low} OR {high})", f"outside {s['min_value']}..{s['max_value']}"
    if check.name == "greater_than_or_equal_to":
        return "out_of_range", f"{c} < {s['min_value']}", f"below {s['min_value']}"
    if check.name == "less_than_or_equal_to":
        return "out_of_range", f"{c} > {s['max_value']}", f"above {s['max_value']}"
    if check.name == "greater_than":
        return "out_of_range", f"{c} <= {s['min_value']}", f"not above {s['min_value']}"
    if check.name == "less_than":
        return "out_of_range", f"{c} >= {s['max_value']}", f"not below {s['max_value']}"
    raise NotImplementedError(f"no SQL translation for pandera check {check.name!r} on {column}")


def _reason(reason: str, column: str | None, detail: str | None, condition: str,
            detail_sql: str | None = None) -> tuple[str, str]:
    """(condition, struct literal) of one rule; the struct is built only for rows that break it.

    ``detail_sql``: an SQL expression over the checked row for a detail that depends on the row.
    """
    col = _quote(column) if column else "NULL"
    det = detail_sql or (_quote(detail) if detail else "NULL")
    return condition, f"{{'reason': {_quote(reason)}, 'column_name': {col}, 'detail': {det}}}"


def references(schema: pa.DataFrameSchema) -> list[tuple[str, str, str]]:
    """(column, parent file, parent column) of every reference of the schema."""
    return [(name, *col.metadata["references"]) for name, col in schema.columns.items()
            if (col.metadata or {}).get("references")]


def _quarantined_parents_sql(parent: str, parent_col: str, delivery: str) -> str:
    """The key values of the parent's *quarantined* rows in the delivery, with a detail naming why.

    The detail names the parent row and its reasons; a parent that was itself quarantined for its
    own parent carries that detail along, so the first cause is in the text.
    """
    return f"""(
            SELECT p.delivery_id, p."{parent_col}" AS ref_value,
                   min(q.file_name) || ' row ' || min(p.source_row_number)::VARCHAR || ' quarantined: '
                   || string_agg(DISTINCT CASE WHEN q.reason = 'parent_quarantined'
                                               THEN q.reason || ' (' || q.detail || ')' ELSE q.reason END,
                                 ', ' ORDER BY CASE WHEN q.reason = 'parent_quarantined'
                                                    THEN q.reason || ' (' || q.detail || ')' ELSE q.reason END)
                       AS detail
            FROM staging.{parent}_rejects AS q
            JOIN raw.{parent} AS p ON p.delivery_id = q.delivery_id AND p.source_row_number = q.source_row_number
            WHERE p."{parent_col}" IS NOT NULL AND q.delivery_id = {delivery} AND p.delivery_id = {delivery}
            GROUP BY p.delivery_id, p."{parent_col}"
        )"""


def key_columns(schema: pa.DataFrameSchema) -> list[str]:
    if schema.unique:
        return list(schema.unique)
    return [name for name, col in schema.columns.items() if col.unique]


def _columns_used(predicate: str, columns) -> list[str]:
    """Columns of the typed row ``t`` a row rule reads (``t.end_date`` or ``t."end_date"``)."""
    return [c for c in columns if re.search(rf'\bt\.(?:{re.escape(c)}\b|"{re.escape(c)}")', predicate)]


def reason_expressions(schema: pa.DataFrameSchema) -> list[tuple[str, str]]:
    out = []
    invalid_type: dict[str, str] = {}
    for name, col in schema.columns.items():
        raw = f't."{name}__raw"'
        if not col.nullable:
            out.append(_reason("missing_value", name, "required", f"{raw} IS NULL"))
        if str(col.dtype) != "string":
            invalid_type[name] = f't."{name}" IS NULL AND {raw} IS NOT NULL'
            out.append(_reason("invalid_type", name, f"expected {_expected(col.dtype)}", invalid_type[name]))
        for check in col.checks:
            reason, condition, detail = check_condition(name, check)
            out.append(_reason(reason, name, detail, condition))
        ref = (col.metadata or {}).get("references")
        if ref:
            # A value of no row of the parent file; a value whose parent row was itself quarantined is
            # a cascade with its own reason, naming the parent's (issue 10, item 14).
            missing = f't."{name}" IS NOT NULL AND ref_{name}.present IS NULL'
            out.append(_reason("unknown_reference", name, f"not a valid {ref[1]} of {ref[0]} in this delivery",
                               f"{missing} AND quarantined_{name}.detail IS NULL"))
            out.append(_reason("parent_quarantined", name, None,
                               f"{missing} AND quarantined_{name}.detail IS NOT NULL",
                               detail_sql=f"parent_detail_{name}"))
    keys = key_columns(schema)
    if keys:
        out.append(_reason("duplicate_key", ", ".join(keys), "a row earlier in the file has the same key",
                           "duplicates.first_row IS NOT NULL AND t.source_row_number > duplicates.first_row"))
    for reason, column, predicate in (schema.metadata or {}).get("row_rules", []):
        # A value that could not be typed is NULL in t; it is reported as invalid_type, and a rule
        # reading it (e.g. "end_date IS NULL AND end_reason IS NOT NULL") must not read it as missing.
        guards = [f"NOT ({invalid_type[c]})" for c in _columns_used(predicate, invalid_type)]
        out.append(_reason(reason, column, predicate, " AND ".join([f"({predicate})", *guards])))
    return out


# Stands for the delivery's id in the text that is hashed into the asset's code version.
DELIVERY_PLACEHOLDER = "{delivery_id}"


def _typed_select(schema: pa.DataFrameSchema, delivery: str) -> str:
    """The rows of one delivery of ``raw.<file>``: identity, each column as text (``<col>__raw``) and typed."""
    file = schema.name
    cols = list(schema.columns)
    raw_cols = ", ".join(f'r."{c}"' for c in cols)
    typed_cols = ",\n        ".join(
        f'"{c}" AS "{c}__raw", {typed_expression(c, schema.columns[c].dtype)} AS "{c}"' for c in cols)
    # Reference files carry concern_id as a column of their own; delivery files get it from the manifest.
    concern = "" if "concern_id" in cols else "concern_id, "
    meta = f"delivery_id, {concern}file_name, source_row_number, export_date"
    return f"""
    SELECT {meta},
        {typed_cols}
    FROM (
        SELECT r.delivery_id, {"" if concern == "" else "r.concern_id, "}r.file_name, r.source_row_number,
               (SELECT d.export_date FROM audit.deliveries AS d WHERE d.delivery_id = {delivery}) AS export_date,
               {raw_cols}
        FROM raw.{file} AS r
        WHERE r.delivery_id = {delivery}
    ) AS source_rows"""


def duplicate_keys_sql(schema: pa.DataFrameSchema, delivery_id: str = DELIVERY_PLACEHOLDER) -> str | None:
    """The keys that occur more than once in one delivery, with the first row that has each.

    A hash aggregate over the delivery's keys (DuckDB spills it beyond its memory limit); its
    result is small, and stored as a table of its own it tells the checking query's join to
    build on the duplicates, not on the delivery's rows. None for a file without a key.
    """
    keys = key_columns(schema)
    if not keys:
        return None
    key_list = ", ".join(f'"{k}"' for k in keys)
    return f"""
WITH typed_rows AS NOT MATERIALIZED ({_typed_select(schema, literal(delivery_id))}
)
SELECT delivery_id, {key_list}, min(source_row_number) AS first_row
FROM typed_rows
WHERE {" AND ".join(f'"{k}" IS NOT NULL' for k in keys)}
GROUP BY delivery_id, {key_list}
HAVING count(*) > 1
"""


def checked_rows_sql(schema: pa.DataFrameSchema, delivery_id: str = DELIVERY_PLACEHOLDER,
                     duplicates_table: str = "duplicate_keys") -> str:
    """The SELECT that types and checks every row of one delivery of ``raw.<schema.name>``.

    One delivery (one concern's file, or the reference inputs) at a time: every rule reads
    that delivery's rows only (keys are unique, references resolve, within the delivery), so
    the work and memory of one query are bounded by the largest delivery, not by all of them.
    Each rule is a cheap boolean per row; the reason structs and the raw row as JSON are built
    only for the rows that break a rule. ``duplicates_table`` holds :func:`duplicate_keys_sql`
    of the same delivery (a small table, so the join builds its hash table on the duplicates,
    never on the delivery's rows).
    """
    cols = list(schema.columns)
    delivery = literal(delivery_id)
    keys = key_columns(schema)
    joins = []
    if keys:
        joins.append(
            f"LEFT JOIN {duplicates_table} AS duplicates ON duplicates.delivery_id = t.delivery_id AND "
            + " AND ".join(f'duplicates."{k}" = t."{k}"' for k in keys))
    parent_details = []
    for name, parent, parent_col in references(schema):
        joins.append(
            f'LEFT JOIN (SELECT DISTINCT delivery_id, "{parent_col}" AS ref_value, true AS present '
            f"FROM staging.{parent} WHERE delivery_id = {delivery}) AS ref_{name} "
            f'ON ref_{name}.delivery_id = t.delivery_id AND ref_{name}.ref_value = t."{name}"')
        joins.append(
            f"LEFT JOIN {_quarantined_parents_sql(parent, parent_col, delivery)} AS quarantined_{name} "
            f'ON ref_{name}.present IS NULL AND quarantined_{name}.delivery_id = t.delivery_id '
            f'AND quarantined_{name}.ref_value = t."{name}"')
        parent_details.append(f"quarantined_{name}.detail AS parent_detail_{name}")
    joins += [j.replace("{delivery_id}", delivery) for j in (schema.metadata or {}).get("lookups", [])]
    rules = reason_expressions(schema)
    flags = ",\n        ".join(f"coalesce({cond}, false) AS rule_{i}" for i, (cond, _) in enumerate(rules))
    any_flag = " OR ".join(f"rule_{i}" for i in range(len(rules))) or "false"
    structs = ",\n                ".join(f"CASE WHEN rule_{i} THEN {struct} END" for i, (_, struct) in enumerate(rules))
    raw_json = ", ".join(f"\"{c}\" := \"{c}__raw\"" for c in cols)
    concern = "" if "concern_id" in cols else "concern_id, "
    meta = f"delivery_id, {concern}file_name, source_row_number, export_date"
    return f"""
WITH typed_rows AS NOT MATERIALIZED ({_typed_select(schema, delivery)}
),
rule_flags AS NOT MATERIALIZED (
    SELECT t.*,{"".join(chr(10) + "        " + d + "," for d in parent_details)}
        {flags}
    FROM typed_rows AS t
    {chr(10).join("    " + j for j in joins)}
)
SELECT {meta}, {", ".join(f'"{c}"' for c in cols)},
    CASE WHEN {any_flag} THEN to_json(struct_pack({raw_json}))::VARCHAR END AS raw_row,
    CASE WHEN {any_flag} THEN list_filter([
                {structs}
            ], lambda reason: reason IS NOT NULL)
        ELSE [] END AS reasons
FROM rule_flags
"""
