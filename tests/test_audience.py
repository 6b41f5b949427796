"""Which figure rows some output publishes (rom_pipeline/lib/audience.py), read from warehouse.yaml."""
from __future__ import annotations

import duckdb
import pytest

from rom_pipeline.defs.audit.trail import FIGURE_SOURCES
from rom_pipeline.lib.audience import published_somewhere_sql
from rom_pipeline.lib.warehouse_spec import load_spec


@pytest.mark.parametrize("level, period_type, therapists_published, published", [
    ("location", "month", False, True),      # the warehouse
    ("concern", "year", False, True),
    ("therapist", "year", False, True),      # the manager packages: years and quarters
    ("therapist", "quarter", False, True),
    ("therapist", "month", False, False),    # nowhere
    ("therapist", "month", True, True),      # the warehouse, where the deployment allows therapists
])
def test_a_figure_is_published_by_the_warehouse_or_a_manager_package(level, period_type, therapists_published,
                                                                     published):
    con = duckdb.connect()
    con.execute(f"SET VARIABLE publish_therapist_level = {therapists_published}")
    condition = published_somewhere_sql("marts.indicators")
    assert con.execute(f"SELECT {condition} FROM (SELECT ? AS level, ? AS period_type)",
                       [level, period_type]).fetchone()[0] is published


def test_every_figure_table_is_published_and_whole_where_the_warehouse_keeps_it_whole():
    where = {t.name: t.where for t in load_spec()}
    for source in FIGURE_SOURCES:
        assert source.table in where, source.table   # a figure of the trail is a published figure
        assert (source.published == "true") == (where[source.table] is None), source.table
