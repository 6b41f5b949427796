"""Models that wire themselves: SQL rendering, dependencies from the SQL, sidecars, the check factory.

Literal expectations throughout: the tables a query reads are written out by hand, as is
what a generated union must contain when the registry of delivered files grows.
"""
from __future__ import annotations

import re

import dagster as dg
import duckdb
import pytest

from rom_pipeline.defs import models
from rom_pipeline.defs.checks import asset_check
from rom_pipeline.definitions import defs
from rom_pipeline.lib.model_checks import CheckSpec
from rom_pipeline.lib.sqlfiles import ModelSpecError, SqlModel, default_context, discover_models, tables_read
from rom_pipeline.lib.sqltext import in_list, literal
from rom_pipeline.lib.warehouse_reader import attach_options, open_read_only
from rom_pipeline.resources import Workspace


def test_tables_read_leaves_out_ctes_table_functions_and_config():
    sql = """
        WITH closed AS (SELECT * FROM marts.episode_outcomes WHERE is_closed),
        targets AS (SELECT * FROM config.indicator_targets)
        SELECT c.*, s.n FROM closed AS c
        JOIN (SELECT concern_id, count(*) AS n FROM staging.locations GROUP BY ALL) AS s USING (concern_id)
        CROSS JOIN range(3) AS r(i)
        CROSS JOIN (VALUES ('a'), ('b')) AS v(x)
        WHERE EXISTS (SELECT 1 FROM audit.deliveries AS d WHERE d.concern_id = c.concern_id)"""
    assert tables_read(sql) == [("audit", "deliveries"), ("marts", "episode_outcomes"), ("staging", "locations")]


def test_an_unqualified_table_that_is_no_cte_is_an_error():
    with pytest.raises(ModelSpecError, match="'episodes' is neither a CTE nor schema-qualified"):
        tables_read("SELECT * FROM episodes")


def test_a_plain_model_renders_to_its_own_text():
    for model in discover_models():
        text = model.path.read_text()
        if "{{" not in text and "{%" not in text:
            assert model.text == text, model.relative_path


def test_every_model_has_a_sidecar_and_every_dependency_is_an_asset():
    graph = defs.resolve_asset_graph()
    executable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_executable}
    for model in discover_models():
        assert model.spec, f"{model.relative_path} has no {model.spec_path.name}"
        for schema, table in model.reads:
            assert dg.AssetKey([schema, table]) in executable, (model.table, schema, table)


def test_the_quarantine_and_reconciliation_unions_follow_the_file_registry():
    """A new delivered file (here 'referrals') needs no edit of either model."""
    context = {**default_context(), "delivered_files": ["locations", "measurements", "referrals"]}
    assert tables_read(SqlModel("audit", "quarantine").render(context)) == [
        ("raw", "measurements"), ("staging", "locations_rejects"), ("staging", "measurement_scoring"),
        ("staging", "measurements_rejects"), ("staging", "referrals_rejects")]
    assert tables_read(SqlModel("audit", "reconciliation").render(context)) == [
        ("audit", "deliveries"), ("audit", "delivery_files"), ("audit", "quarantine"), ("staging", "locations"),
        ("staging", "measurement_scores"), ("staging", "referrals")]


def test_rendering_is_strict_about_missing_context():
    with pytest.raises(Exception, match="delivered_files"):
        SqlModel("audit", "quarantine").render({"params": None})


def test_sidecar_checks_become_checks_with_one_vocabulary():
    by_name = {(s.table, s.name): s for s in models.CHECK_SPECS}
    assert len(by_name) == len(models.CHECK_SPECS)
    # Every check blocks, except the one that lists what complementary suppression left (the figures are right).
    assert [s.name for s in models.CHECK_SPECS if s.severity == "WARN"] == ["no_single_hidden_part"]
    unique = by_name[("marts.concern_size_groups", "one_row_per_concern_year")]
    assert unique.sql == ("SELECT concern_id, year, count(*) AS rows FROM marts.concern_size_groups "
                          "GROUP BY concern_id, year HAVING count(*) > 1")
    assert unique.sample  # concern-level public figures
    assert not by_name[("marts.internal_benchmark", "funnels_nested")].sample  # names therapists
    assert not by_name[("marts.episode_outcomes", "improvement_in_range")].sample
    assert by_name[("marts.indicators", "n_adds_up_between_levels")].sql_file == \
        "sql/marts/checks/n_adds_up_between_levels.sql"


@dg.asset(key=["marts", "toy"])
def toy(workspace: Workspace) -> None:
    with workspace.connect() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("CREATE OR REPLACE TABLE marts.toy AS SELECT * FROM (VALUES (1, 5.0), (2, -1.0), (3, -2.0)) t(id, v)")


@dg.asset(deps=[toy])
def downstream() -> None:
    return None


def _toy_check(severity: str, sample: bool = True) -> CheckSpec:
    return CheckSpec(table="marts.toy", name=f"non_negative_{severity.lower()}", severity=severity, sample=sample,
                     description="v is not negative.", sql="SELECT id, v FROM marts.toy WHERE v < 0")


def test_a_warn_check_is_recorded_and_does_not_block(tmp_path):
    result = dg.materialize([toy, downstream, asset_check(_toy_check("WARN"))], raise_on_error=False,
                            resources={"workspace": Workspace(data_dir=str(tmp_path))})
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["failing_rows"].value == 2 and evaluation.metadata["severity"].value == "WARN"
    assert "| id | v |" in evaluation.metadata["sample"].value
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"toy", "downstream"}


def test_an_error_check_blocks_and_a_person_level_table_shows_no_sample(tmp_path):
    result = dg.materialize([toy, downstream, asset_check(_toy_check("ERROR", sample=False))], raise_on_error=False,
                            resources={"workspace": Workspace(data_dir=str(tmp_path))})
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["failing_rows"].value == 2 and "sample" not in evaluation.metadata
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"toy"}


def test_sql_literal():
    assert literal("O'Brien") == "'O''Brien'"
    assert literal("''") == "''''''"
    assert in_list(["C1", "x'y"]) == "'C1', 'x''y'"
    assert duckdb.connect().execute(f"SELECT {literal(chr(39) + 'a;--')}").fetchone() == ("'a;--",)


def test_the_warehouse_reader_opens_read_only(tmp_path, monkeypatch):
    path = tmp_path / "it's.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT 42 AS x")
    assert attach_options(None) == "READ_ONLY"
    assert attach_options("k'ey") == "READ_ONLY, ENCRYPTION_KEY 'k''ey'"
    con = open_read_only(path, alias="wh")
    try:
        assert con.execute("SELECT x FROM t").fetchone() == (42,)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("INSERT INTO t VALUES (1)")
    finally:
        con.close()
    monkeypatch.delenv("ROM_WAREHOUSE_ENCRYPTION_KEY", raising=False)
    workspace = Workspace(data_dir=str(tmp_path))
    (tmp_path / "warehouse.duckdb").write_bytes(path.read_bytes())
    with workspace.open_warehouse() as con:
        assert con.execute("SELECT x FROM t").fetchone() == (42,)


PER_CONCERN_MODELS = [m for m in discover_models() if m.per_concern]


@pytest.mark.parametrize("model", PER_CONCERN_MODELS, ids=lambda m: m.table)
def test_a_per_concern_model_reads_every_source_through_concern_rows(model):
    """Rendered for some concerns, every table a per-concern model reads (config aside) is filtered
    to them before anything is computed (issue 11: a filter on the output alone left DuckDB to
    compute the CTEs read twice for every concern, ten whole builds for ten concerns)."""
    sentinel = "concern_id IN ('X')"
    filtered = re.sub(r"--[^\n]*", "", model.render({**default_context(), "concern_filter": sentinel}))
    for schema, table in model.reads:
        if schema == "config":
            continue
        occurrences = re.findall(rf"\b{schema}\.{table}\b(.{{0,{len(sentinel) + 8}}})", filtered)
        assert occurrences, f"{model.table} reads {schema}.{table}"
        assert all(o.startswith(f" WHERE {sentinel}") for o in occurrences), \
            f"{model.table} reads {schema}.{table} without {{{{ concern_rows('{schema}.{table}') }}}}"


def test_a_build_concern_by_concern_gives_the_rows_of_the_one_statement_build(tmp_path):
    """Two concerns with the same ids (tests/test_indicators.py's case): every per-concern model built
    one concern at a time holds exactly the rows of its one-statement build, readable at once in the
    same connection (DuckDB 2.0 returned none from large INSERTs into a table created in their own
    transaction, hence the table built aside and renamed)."""
    from outcomes_fixtures import OUTCOME_MODELS, Staging, build_outcomes, connect
    from test_indicators import build_case

    con = connect(tmp_path / "work.duckdb")
    build_case(Staging(con))
    build_outcomes(con, upto="indicator_cells")
    con.execute("INSERT INTO audit.deliveries (delivery_id, concern_id, status) VALUES ('C1/d', 'C1', 'current'), "
                "('C2/d', 'C2', 'current')")
    from rom_pipeline.lib.concern_scope import delivered_concerns

    assert delivered_concerns(con) == ["C1", "C2"]
    built = [m for m in OUTCOME_MODELS if m.per_concern]  # the fixture writes staging.measurement_scores itself
    assert [m.table for m in built] == ["outcomes.instrument_outcomes", "marts.episode_outcomes",
                                        "outcomes.indicator_contributions", "marts.indicator_cells"]
    for model in built:
        whole = sorted(con.execute(f"SELECT * FROM {model.table}").fetchall(), key=repr)
        count = model.build_by_concern(con, delivered_concerns(con))
        by_concern = sorted(con.execute(f"SELECT * FROM {model.table}").fetchall(), key=repr)
        assert by_concern == whole and count == len(whole), model.table
        per_concern = dict(con.execute(f"SELECT concern_id, count(*) FROM {model.table} GROUP BY 1").fetchall())
        assert sum(per_concern.values()) == len(whole), model.table
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%\\_\\_building' "
                               "ESCAPE '\\'").fetchone()[0]
    con.close()
