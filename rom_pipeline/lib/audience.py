"""Which figure rows an output publishes: the one statement the audit trail and the reports share.

A figure is published when some output shows it: the shared warehouse (and its CSV exports) shows
the rows its table's ``where`` in ``schemas/warehouse.yaml`` keeps (therapist rows only where the
deployment allows them, ``ROM_PUBLISH_THERAPIST_LEVEL``); a location manager's package shows its
therapists by year and quarter. A therapist's month figure is therefore, by default, published
nowhere: the models do not compute it (:func:`computed_sql`) and the audit trail has nothing to
record (issue 11: therapist month figures were 60% of the figures a night recorded, and about half
of every indicator model's rows).
"""
from __future__ import annotations

import functools

from rom_pipeline.lib.warehouse_spec import load_spec

# The periods a manager package shows of its therapists (rom_pipeline/reports/data.py reads them).
MANAGER_PACKAGE_PERIOD_TYPES = ("year", "quarter")


def period_types_sql(period_types: tuple[str, ...] = MANAGER_PACKAGE_PERIOD_TYPES) -> str:
    """``('year', 'quarter')``: the tuple as a SQL list."""
    return "(" + ", ".join(f"'{p}'" for p in period_types) + ")"


@functools.cache
def _warehouse_where() -> dict[str, str | None]:
    return {table.name: table.where for table in load_spec()}


def published_somewhere_sql(table: str) -> str:
    """SQL condition on a row of the work table ``table`` (a published table of warehouse.yaml): some
    output publishes it. Everything, when the warehouse publishes the table whole; else the rows its
    ``where`` keeps, and a therapist's year and quarter figures (the manager packages)."""
    where = _warehouse_where()[table]
    if where is None:
        return "true"
    return f"(({where}) OR (level = 'therapist' AND period_type IN {period_types_sql()}))"


def computed_sql() -> str:
    """SQL condition on an indicator figure's ``level`` and ``period_type``: the models compute it.

    A figure is computed where some output publishes it: the rows of ``marts.indicators`` that
    :func:`published_somewhere_sql` keeps. A therapist's month figure only where the deployment
    publishes therapist level (``ROM_PUBLISH_THERAPIST_LEVEL``); by default no output shows it, and
    it was half of every indicator model's rows (issue 11). The sums behind it stay in
    ``marts.indicator_cells`` (per concern), so the night the setting is turned on computes it.
    Models read the condition as ``{{ figure_computed() }}`` (rom_pipeline/lib/sqlfiles.py).
    """
    return published_somewhere_sql("marts.indicators")
