"""CSV exports safe to open in a spreadsheet (issue 6): the neutralising rule, and the exports of a real run.

The end-to-end part reads the shared baseline night (tests/cli_runs.py). The exports are the
publishable tables only (aggregates: issue 10 item 9), so the formula test puts its text into one of them.
"""
from __future__ import annotations

import csv
import shutil

import duckdb
import pytest
from cli_runs import HYPERLINK_NAME, baseline, connect_warehouse

from rom_pipeline.defs.publish.exports import CSV_DIR_NAME, exported_tables, write_csv_exports
from rom_pipeline.lib.warehouse_spec import load_spec
from rom_pipeline.lib.spreadsheet import neutralise_sql


@pytest.mark.parametrize("cell, expected", [
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
    ("+1", "'+1"),
    ("-cmd", "'-cmd"),
    ("-5", "'-5"),                      # text that looks like a number, in a text column: neutralised too
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("\uff1d1+1", "'\uff1d1+1"),        # full-width equals sign
    ("Utrecht", "Utrecht"),
    ("Den Haag - Centrum", "Den Haag - Centrum"),  # a sign inside the text is harmless
    (" =1", " =1"),                     # only the first character counts
    ("'=1", "'=1"),                     # already text
    ("", ""),
])
def test_text_cells_that_a_spreadsheet_would_run_get_a_leading_apostrophe(cell, expected):
    """The rule as the exporter runs it: a DuckDB expression over a VARCHAR column."""
    assert duckdb.connect().execute(f"SELECT {neutralise_sql('x')} FROM (SELECT ?::VARCHAR AS x)", [cell]
                                    ).fetchone()[0] == expected


def test_null_stays_null():
    assert duckdb.connect().execute(f"SELECT {neutralise_sql('x')} FROM (SELECT NULL::VARCHAR AS x)").fetchone() == (None,)


def test_rows_come_in_the_order_the_spec_gives_whatever_the_files_order(tmp_path):
    """A table whose rows were written in another order is exported in its spec's order_by."""
    from rom_pipeline.lib.warehouse_spec import PublishedColumn, PublishedTable

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.t AS SELECT * FROM (VALUES ('C2', 2), ('C1', 9), ('C2', 1), ('C1', 3)) AS v(c, n)")
    table = PublishedTable("marts.t", "a table", (PublishedColumn("c", "c"), PublishedColumn("n", "n")),
                           order_by="c, n", audience="public")
    write_csv_exports(warehouse, tmp_path / "csv", [table])
    assert [(r["c"], r["n"]) for r in _read(tmp_path / "csv" / "marts.t.csv")] == [
        ("C1", "3"), ("C1", "9"), ("C2", "1"), ("C2", "2")]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return baseline(tmp_path_factory)


def _read(path):
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_writes_one_csv_per_publishable_table(base):
    folder = base.data_dir / CSV_DIR_NAME
    expected = {f"{t.name}.csv" for t in exported_tables(load_spec())}
    assert expected and {p.name for p in folder.iterdir()} == expected
    con = connect_warehouse(base.data_dir / "warehouse.duckdb")
    for name in expected:
        table = name[: -len(".csv")]
        rows = _read(folder / name)
        assert len(rows) == con.execute(f"SELECT count(*) FROM {table}").fetchone()[0], name
        columns = [r[0] for r in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
        assert list(rows[0]) == columns if rows else True


def test_the_exports_hold_aggregates_only(base):
    """The public audience gets no episode rows: no episode-level table, no episode or client column."""
    names = {p.name for p in (base.data_dir / CSV_DIR_NAME).glob("*.csv")}
    assert "marts.episode_outcomes.csv" not in names and "marts.indicators.csv" in names
    for path in (base.data_dir / CSV_DIR_NAME).glob("*.csv"):
        header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
        assert not {"episode_id", "client_pseudonym", "measurement_id"} & set(header), path.name


def test_a_formula_in_a_text_cell_reaches_the_csv_as_text(base, tmp_path):
    """A delivered text that a spreadsheet would run (here an indicator name of the reference input,
    which reaches marts.concern_benchmark) is written with a leading apostrophe."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(base.data_dir / "warehouse.duckdb", warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE marts.concern_benchmark SET indicator_name = ? WHERE indicator_id = "
                    "(SELECT min(indicator_id) FROM marts.concern_benchmark)", [HYPERLINK_NAME])
    folder = tmp_path / "csv"
    write_csv_exports(warehouse, folder, load_spec())
    names = {r["indicator_name"] for r in _read(folder / "marts.concern_benchmark.csv")}
    assert "'" + HYPERLINK_NAME in names and HYPERLINK_NAME not in names
    # Every text cell of every file: none starts like a formula (numbers and blanks aside).
    for path in folder.glob("*.csv"):
        for row in _read(path):
            for column, cell in row.items():
                if cell[:1] in ("=", "+", "@", "\t", "\r"):
                    pytest.fail(f"{path.name} {column}: {cell!r}")
                if cell.startswith("-"):
                    float(cell)  # only a number may start with '-' (a negative value of a numeric column)


def test_negative_numbers_stay_numbers(base):
    rows = _read(base.data_dir / CSV_DIR_NAME / "marts.financial_ratios.csv")
    negative = [r["z"] for r in rows if r["z"].startswith("-")]
    assert negative and all(float(v) < 0 for v in negative)


def test_the_csv_carries_the_warehouse_suppression(base):
    con = connect_warehouse(base.data_dir / "warehouse.duckdb")
    min_n = int(float(con.execute("SELECT value FROM config.parameters WHERE name = 'min_n'").fetchone()[0]))
    rows = _read(base.data_dir / CSV_DIR_NAME / "marts.indicators.csv")
    suppressed = [r for r in rows if r["suppressed"] == "true"]
    assert suppressed and all(r["value"] == "" and r["ci_low"] == "" and r["target_met"] == "" for r in suppressed)
    assert not [r for r in rows if r["n"] and 1 <= int(r["n"]) <= 4]
    assert all(r["n"] and int(r["n"]) >= min_n for r in rows if r["suppressed"] == "false")
    assert "therapist" not in {r["level"] for r in rows}


def test_an_encrypted_warehouse_gets_no_plain_text_copy(base, tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "marts.indicators.csv").write_text("old plain text\n")
    result = write_csv_exports(base.data_dir / "warehouse.duckdb", folder, load_spec(), encryption_key="k" * 20)
    assert result.skipped_reason and "encrypted" in result.skipped_reason
    assert result.removed == ["marts.indicators.csv"] and not list(folder.iterdir())
