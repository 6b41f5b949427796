"""Benchmark assets (one per SQL model under ``sql/marts/``) and their blocking checks.

The rules live in the SQL files and ``docs/benchmark-rules.md``; this module only
says what each table depends on and what must hold before anything downstream runs.
Each check is a query that returns the offending rows: it passes when there are none.
"""
from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from rom_pipeline.defs.sql_asset import sql_model_asset
from rom_pipeline.lib.sqlfiles import SqlModel
from rom_pipeline.resources import Workspace

ANNUAL_REPORTS = ["staging", "annual_reports"]
QUALITY_INDICATORS = ["staging", "quality_indicators"]
INDICATORS = ["marts", "indicators"]
SIZE_GROUPS = ["marts", "concern_size_groups"]
CONCERN_BENCHMARK = ["marts", "concern_benchmark"]

ASSETS = [
    sql_model_asset(
        SqlModel("marts", "concern_size_groups"),
        deps=[ANNUAL_REPORTS],
        description="Size group of each concern and year: class of total revenue (seed 001 "
                    "benchmark group). Shared by the financial ratios and the concern benchmark.",
    ),
    sql_model_asset(
        SqlModel("marts", "financial_ratios"),
        deps=[ANNUAL_REPORTS, SIZE_GROUPS],
        description="Financial ratios and spending distribution of seed 001 bijlage 1 per concern "
                    "and year, with z-scores against all concerns and the size group.",
    ),
    sql_model_asset(
        SqlModel("marts", "concern_benchmark"),
        deps=[QUALITY_INDICATORS, INDICATORS, SIZE_GROUPS],
        description="Quality indicators (supplied CQ / kernset / FP plus the pipeline's ROM "
                    "indicators) per concern and year with z-scores against all concerns and "
                    "the size group; z_oriented is sign-flipped where lower is better.",
    ),
    sql_model_asset(
        SqlModel("marts", "concern_summary"),
        deps=[CONCERN_BENCHMARK, SIZE_GROUPS],
        description="Summary quality indicator: mean oriented z per concern, year and cluster "
                    "(all, CQ, kernset, FP), with the number of indicators it rests on.",
    ),
    sql_model_asset(
        SqlModel("marts", "internal_benchmark"),
        deps=[INDICATORS],
        description="Benchmark within a concern: locations and therapists against their peers, "
                    "deviation from the organisation, z, target met and funnel limits at 95% "
                    "and 99.8%. No ranks.",
    ),
]


@dataclass(frozen=True)
class SqlCheck:
    """A rule on a built table, stated as the query for the rows that break it."""

    table: str
    name: str
    description: str
    violations: str
    # Concern-level tables hold public figures only; the internal benchmark names
    # therapists, so its failures are reported as counts, never as rows.
    show_sample: bool = True


def _z_centred(table: str, z: str, group: str) -> str:
    """Groups whose z-scores do not have mean 0 and sample sd 1: the peer statistics are wrong."""
    return f"""
        SELECT {group}, avg({z}) AS mean_z, stddev_samp({z}) AS sd_z
        FROM {table}
        GROUP BY {group}
        HAVING count({z}) >= 2 AND (abs(avg({z})) > 1e-6 OR abs(stddev_samp({z}) - 1) > 1e-6)"""


def _duplicates(table: str, key: str) -> str:
    return f"SELECT {key}, count(*) AS rows FROM {table} GROUP BY {key} HAVING count(*) > 1"


SQL_CHECKS = [
    SqlCheck("marts.concern_size_groups", "one_row_per_concern_year",
             "One size group per concern and year.",
             _duplicates("marts.concern_size_groups", "concern_id, year")),
    SqlCheck("marts.financial_ratios", "one_row_per_key",
             "One value per concern, year and ratio.",
             _duplicates("marts.financial_ratios", "concern_id, year, ratio")),
    SqlCheck("marts.financial_ratios", "no_inf_or_nan",
             "A ratio is a number or NULL, never infinity or NaN.",
             """SELECT concern_id, year, ratio FROM marts.financial_ratios
                WHERE NOT isfinite(value) OR NOT isfinite(z) OR NOT isfinite(z_size_group)"""),
    SqlCheck("marts.financial_ratios", "z_centred_per_year",
             "Per year and ratio the z-scores average 0 with sd 1 (all concerns and per size group).",
             _z_centred("marts.financial_ratios", "z", "year, ratio")
             + "\nUNION ALL\n"
             + _z_centred("marts.financial_ratios", "z_size_group", "year, ratio || ' ' || size_group")),
    SqlCheck("marts.concern_benchmark", "one_row_per_key",
             "One row per concern, year, indicator and peer group (ROM ids start with rom_: a "
             "supplied indicator with such an id would collide).",
             _duplicates("marts.concern_benchmark", "concern_id, year, indicator_id, peer_group")),
    SqlCheck("marts.concern_benchmark", "no_inf_or_nan",
             "Values and z-scores are numbers or NULL.",
             """SELECT concern_id, year, indicator_id, peer_group FROM marts.concern_benchmark
                WHERE NOT isfinite(value) OR NOT isfinite(z)"""),
    SqlCheck("marts.concern_benchmark", "z_centred_per_indicator",
             "Per year, indicator and peer group the z-scores average 0 with sd 1.",
             _z_centred("marts.concern_benchmark", "z",
                        "year, indicator_id, peer_group, CASE WHEN peer_group = 'size_group' "
                        "THEN size_group END")),
    SqlCheck("marts.concern_benchmark", "one_direction_per_indicator",
             "An indicator has one cluster and one direction in a year, or its z-scores and "
             "their sign in the summary would mean different things for different concerns.",
             """SELECT year, indicator_id FROM marts.concern_benchmark GROUP BY year, indicator_id
                HAVING count(DISTINCT cluster) > 1 OR count(DISTINCT higher_is_better) > 1"""),
    SqlCheck("marts.concern_summary", "one_row_per_key",
             "One summary per concern, year, cluster and peer group.",
             _duplicates("marts.concern_summary", "concern_id, year, cluster, peer_group")),
    SqlCheck("marts.concern_summary", "score_iff_indicators",
             "A summary has a score exactly when it rests on at least one indicator.",
             """SELECT concern_id, year, cluster, peer_group FROM marts.concern_summary
                WHERE (summary_z IS NULL) <> (n_indicators = 0) OR NOT isfinite(summary_z)"""),
    SqlCheck("marts.internal_benchmark", "one_row_per_key",
             "One row per unit, period and indicator.",
             _duplicates("marts.internal_benchmark",
                         "concern_id, level, unit_id, period_type, period, indicator"),
             show_sample=False),
    SqlCheck("marts.internal_benchmark", "funnels_nested",
             "The 99.8% funnel contains the 95% funnel, and no limit is infinite or NaN.",
             """SELECT concern_id, level, unit_id FROM marts.internal_benchmark
                WHERE funnel_998_low > funnel_95_low OR funnel_998_high < funnel_95_high
                   OR NOT isfinite(z) OR NOT isfinite(funnel_95_low) OR NOT isfinite(funnel_95_high)
                   OR NOT isfinite(funnel_998_low) OR NOT isfinite(funnel_998_high)""",
             show_sample=False),
]


def _markdown_table(cursor) -> str:
    header = [d[0] for d in cursor.description]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in cursor.fetchall()]
    return "\n".join(lines)


def _asset_check(spec: SqlCheck) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey(spec.table.split(".")), name=spec.name,
                    description=spec.description, blocking=True)
    def _check(workspace: Workspace) -> dg.AssetCheckResult:
        with workspace.connect() as con:
            failing = con.execute(f"SELECT count(*) FROM ({spec.violations})").fetchone()[0]
            metadata: dict = {"failing_rows": failing, "query": dg.MetadataValue.md(
                f"```sql\n{spec.violations.strip()}\n```")}
            if failing and spec.show_sample:
                cursor = con.execute(f"SELECT * FROM ({spec.violations}) LIMIT 10")
                metadata["sample"] = dg.MetadataValue.md(_markdown_table(cursor))
        return dg.AssetCheckResult(passed=failing == 0, metadata=metadata)

    return _check


CHECKS = [_asset_check(spec) for spec in SQL_CHECKS]
