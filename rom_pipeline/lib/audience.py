"""Which figure rows an output publishes: the one statement the audit trail and the reports share.

A figure is published when some output shows it: the shared warehouse (and its CSV exports) shows
every level but therapists, and therapists too where the deployment allows it
(``ROM_PUBLISH_THERAPIST_LEVEL``, the DuckDB variable ``publish_therapist_level``; the tables'
``where`` in ``schemas/warehouse.yaml``); a location manager's package shows its therapists by year
and quarter. A therapist's month figure is therefore computed (the warehouse may publish it) but,
by default, published nowhere, and the audit trail does not record it (issue 11: those were 60% of
the figures a night recorded).
"""

# The periods a manager package shows of its therapists (rom_pipeline/reports/data.py reads them).
MANAGER_PACKAGE_PERIOD_TYPES = ("year", "quarter")


def period_types_sql(period_types: tuple[str, ...] = MANAGER_PACKAGE_PERIOD_TYPES) -> str:
    """``('year', 'quarter')``: the tuple as a SQL list."""
    return "(" + ", ".join(f"'{p}'" for p in period_types) + ")"


def published_somewhere_sql(level: str = "level", period_type: str = "period_type") -> str:
    """SQL condition on a figure row (its level and period type columns): some output publishes it."""
    return (f"({level} IS DISTINCT FROM 'therapist' OR getvariable('publish_therapist_level') "
            f"OR {period_type} IN {period_types_sql()})")
