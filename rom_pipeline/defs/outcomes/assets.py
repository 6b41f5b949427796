"""Outcome and indicator assets: thin wrappers around the SQL models, plus blocking checks.

Assets (asset key = DuckDB table):
    outcomes.instrument_outcomes   pre/post per episode and instrument, reliable change
    marts.episode_outcomes         SCL90 outcome per episode, % improvement with its rule code
    marts.indicator_aggregates  every indicator x unit x period (x case-mix category), n, CI
    marts.indicators               published indicators with targets and suppression
    marts.indicator_breakdowns     published case-mix breakdowns

Each check is a query in ``sql/checks/<name>.sql`` that returns offending rows;
it passes when there are none. Check metadata carries the count only, never rows.
"""

from dataclasses import dataclass

import dagster as dg

from rom_pipeline.defs.sql_asset import sql_model_asset
from rom_pipeline.lib.sqlfiles import SqlModel
from rom_pipeline.paths import SQL_DIR
from rom_pipeline.resources import Workspace

CHECKS_DIR = SQL_DIR / "checks"

STAGING_EPISODES = ["staging", "episodes"]
STAGING_THERAPISTS = ["staging", "therapists"]
STAGING_LOCATIONS = ["staging", "locations"]
STAGING_SCORES = ["staging", "measurement_scores"]

INSTRUMENT_OUTCOMES_MODEL = SqlModel("outcomes", "instrument_outcomes")
EPISODE_OUTCOMES_MODEL = SqlModel("marts", "episode_outcomes")
INDICATOR_CONTRIBUTIONS_MODEL = SqlModel("outcomes", "indicator_contributions")
INDICATOR_AGGREGATES_MODEL = SqlModel("marts", "indicator_aggregates")
INDICATORS_MODEL = SqlModel("marts", "indicators")
INDICATOR_BREAKDOWNS_MODEL = SqlModel("marts", "indicator_breakdowns")

# In build order (each model reads only the ones before it and staging/config).
MODELS = [INSTRUMENT_OUTCOMES_MODEL, EPISODE_OUTCOMES_MODEL, INDICATOR_CONTRIBUTIONS_MODEL,
          INDICATOR_AGGREGATES_MODEL, INDICATORS_MODEL, INDICATOR_BREAKDOWNS_MODEL]


def _key(model: SqlModel) -> dg.AssetKey:
    return dg.AssetKey([model.layer, model.name])


def _from(asset: dg.AssetKey, *columns: str) -> list[dg.TableColumnDep]:
    return [dg.TableColumnDep(asset_key=asset, column_name=c) for c in columns]


_EPISODES = dg.AssetKey(STAGING_EPISODES)
_SCORES = dg.AssetKey(STAGING_SCORES)
_INSTRUMENT_OUTCOMES = _key(INSTRUMENT_OUTCOMES_MODEL)

INSTRUMENT_OUTCOMES_LINEAGE = dg.TableColumnLineage(deps_by_column={
    "pre_measurement_id": _from(_SCORES, "measurement_id", "administered_on") + _from(_EPISODES, "start_date"),
    "pre_score": _from(_SCORES, "total_score", "administered_on") + _from(_EPISODES, "start_date"),
    "post_measurement_id": _from(_SCORES, "measurement_id", "administered_on") + _from(_EPISODES, "end_date"),
    "post_score": _from(_SCORES, "total_score", "administered_on") + _from(_EPISODES, "end_date"),
    "is_closed": _from(_EPISODES, "end_date"),
})

EPISODE_OUTCOMES_LINEAGE = dg.TableColumnLineage(deps_by_column={
    "concern_id": _from(_EPISODES, "concern_id"),
    "episode_id": _from(_EPISODES, "episode_id"),
    "location_id": _from(_EPISODES, "location_id"),
    "therapist_id": _from(_EPISODES, "therapist_id"),
    "start_date": _from(_EPISODES, "start_date"),
    "end_date": _from(_EPISODES, "end_date"),
    "is_closed": _from(_EPISODES, "end_date"),
    "pre_measurement_id": _from(_INSTRUMENT_OUTCOMES, "pre_measurement_id"),
    "pre_score": _from(_INSTRUMENT_OUTCOMES, "pre_score"),
    "post_measurement_id": _from(_INSTRUMENT_OUTCOMES, "post_measurement_id"),
    "post_score": _from(_INSTRUMENT_OUTCOMES, "post_score"),
    "has_complete_scores": _from(_INSTRUMENT_OUTCOMES, "has_complete_scores"),
    "pct_improvement": _from(_INSTRUMENT_OUTCOMES, "pre_score", "post_score"),
    "improvement_rule": _from(_INSTRUMENT_OUTCOMES, "pre_score", "post_score"),
    "reliable_change": _from(_INSTRUMENT_OUTCOMES, "reliable_change"),
})

_EPISODE_OUTCOMES = _key(EPISODE_OUTCOMES_MODEL)
_AGGREGATES = _key(INDICATOR_AGGREGATES_MODEL)
# What each indicator is computed from: the contributions rendered from the catalogue.
_INDICATOR_INPUTS = _from(_key(INDICATOR_CONTRIBUTIONS_MODEL), "indicator", "x")
_UNIT_INPUTS = _from(_EPISODE_OUTCOMES, "concern_id", "location_id", "therapist_id")

INDICATOR_AGGREGATES_LINEAGE = dg.TableColumnLineage(deps_by_column={
    "concern_id": _from(_EPISODE_OUTCOMES, "concern_id"),
    "unit_id": _UNIT_INPUTS,
    "period": _from(_EPISODE_OUTCOMES, "end_date"),
    "category": _from(_EPISODE_OUTCOMES, "diagnosis_group", "referrer", "care_type", "therapist_experience",
                      "baseline_severity_band"),
    "value": _INDICATOR_INPUTS,
    "n": _INDICATOR_INPUTS,
    "ci_low": _INDICATOR_INPUTS,
    "ci_high": _INDICATOR_INPUTS,
})

INDICATORS_LINEAGE = dg.TableColumnLineage(deps_by_column={
    **{col: _from(_AGGREGATES, col) for col in ("concern_id", "level", "unit_id", "period_type", "period",
                                                "indicator", "aggregation", "value", "n", "ci_low", "ci_high")},
    "target_met": _from(_AGGREGATES, "value", "indicator"),  # against config.indicator_targets
    "suppressed": _from(_AGGREGATES, "n"),                    # against the min_n parameter
})

instrument_outcomes = sql_model_asset(
    INSTRUMENT_OUTCOMES_MODEL,
    per_concern=True,  # an episode's outcome depends on its own concern's delivery only
    deps=[STAGING_EPISODES, STAGING_SCORES],
    description="Per episode and instrument: the pre- and post-measurement chosen by the date windows, "
                "their scores, raw change and reliable-change category (docs/outcome-rules.md).",
    column_lineage=INSTRUMENT_OUTCOMES_LINEAGE,
)
episode_outcomes = sql_model_asset(
    EPISODE_OUTCOMES_MODEL,
    per_concern=True,
    deps=[_INSTRUMENT_OUTCOMES, STAGING_EPISODES, STAGING_THERAPISTS, STAGING_LOCATIONS],
    description="One row per episode: SCL90 pre/post, complete scores, percentage improvement with its "
                "rule code, reliable change, case-mix attributes and the not-on-track flag of open episodes.",
    column_lineage=EPISODE_OUTCOMES_LINEAGE,
)
indicator_contributions = sql_model_asset(
    INDICATOR_CONTRIBUTIONS_MODEL,
    per_concern=True,  # an episode's contributions depend on its own outcome only
    deps=[_EPISODE_OUTCOMES],
    description="What every closed episode contributes to every indicator of the catalogue "
                "(indicators.catalogue in parameters.yaml), NULL where it does not count: the one place "
                "an episode's part in an indicator is computed, read by the statistics and the audit trail.",
)
indicator_aggregates = sql_model_asset(
    INDICATOR_AGGREGATES_MODEL,
    deps=[_EPISODE_OUTCOMES, _key(INDICATOR_CONTRIBUTIONS_MODEL)],
    description="Every indicator per unit, period and case-mix category, per aggregation, with n and "
                "95% confidence interval: the one place the indicator statistics are computed "
                "(working table of marts.indicators and marts.indicator_breakdowns, not published).",
    column_lineage=INDICATOR_AGGREGATES_LINEAGE,
)
indicators = sql_model_asset(
    INDICATORS_MODEL,
    deps=[_key(INDICATOR_AGGREGATES_MODEL)],
    description="Published indicators per therapist, location, concern and all concerns, per month, "
                "quarter and year: value, n, CI, target met, suppressed.",
    column_lineage=INDICATORS_LINEAGE,
)
indicator_breakdowns = sql_model_asset(
    INDICATOR_BREAKDOWNS_MODEL,
    deps=[_key(INDICATOR_AGGREGATES_MODEL)],
    description="Published indicators per location and concern by case mix (diagnosis group, referrer, "
                "care type, trainee/experienced therapist, baseline severity), per quarter and year.",
)

ASSETS = [instrument_outcomes, episode_outcomes, indicator_contributions, indicator_aggregates, indicators,
          indicator_breakdowns]


@dataclass(frozen=True)
class SqlCheck:
    """A query in ``sql/checks/<name>.sql`` that returns the rows breaking a rule of ``asset``."""

    name: str
    asset: tuple[str, str]
    description: str

    @property
    def sql(self) -> str:
        return (CHECKS_DIR / f"{self.name}.sql").read_text()

    def offending_rows(self, con) -> int:
        return con.execute(f"SELECT count(*) FROM (\n{self.sql}\n) AS offending").fetchone()[0]


CHECK_SPECS = [
    SqlCheck("pre_post_within_windows", ("outcomes", "instrument_outcomes"),
             "Every pre-measurement lies in the pre window, every post-measurement in the post window of a "
             "closed episode and on a later date than the pre-measurement; one row per episode and instrument."),
    SqlCheck("episodes_counted_once", ("marts", "episode_outcomes"),
             "Every episode of staging.episodes appears exactly once in marts.episode_outcomes."),
    SqlCheck("improvement_in_range", ("marts", "episode_outcomes"),
             "pct_improvement lies in [-cap, 100], is present exactly for complete episodes, and agrees "
             "with its rule code."),
    SqlCheck("indicators_percentages_in_range", ("marts", "indicators"),
             "Percentages and their CIs lie in [0, 100], mean improvement in [-cap, 100], and every CI "
             "contains its value."),
    SqlCheck("n_adds_up_between_levels", ("marts", "indicators"),
             "n_closed: therapists and locations add up to their concern, concerns add up to all, and all "
             "equals the closed episodes of marts.episode_outcomes (each counted once)."),
    SqlCheck("breakdowns_add_up", ("marts", "indicator_breakdowns"),
             "Per unit, period, dimension and indicator, the categories' n add up to the unit's n in "
             "marts.indicators, and percentages lie in [0, 100]."),
]


def _asset_check(spec: SqlCheck) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey(list(spec.asset)), name=spec.name, description=spec.description,
                    blocking=True)
    def _check(workspace: Workspace) -> dg.AssetCheckResult:
        with workspace.connect() as con:
            count = spec.offending_rows(con)
        return dg.AssetCheckResult(passed=count == 0, severity=dg.AssetCheckSeverity.ERROR,
                                   metadata={"offending_rows": count,
                                             "check_sql": dg.MetadataValue.path(f"sql/checks/{spec.name}.sql")})

    return _check


CHECKS = [_asset_check(spec) for spec in CHECK_SPECS]
