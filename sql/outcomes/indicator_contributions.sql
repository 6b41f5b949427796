-- outcomes.indicator_contributions: what every closed episode contributes to every
-- indicator of the catalogue (rom_pipeline/parameters.yaml, indicators.catalogue),
-- rendered from the catalogue's entries (rom_pipeline/indicators.py): the one place an
-- episode's part in an indicator is computed. marts.indicator_aggregates computes the
-- statistics from it, audit.figure_episodes records it for the auditor (explain).
--
-- One row per closed episode and indicator. x is the episode's contribution: 1 for a
-- count, 100 or 0 for a percentage (the entry's value is a condition), the value for a
-- mean; NULL when the episode is outside the indicator's population or its value is
-- NULL, i.e. not in that indicator's n. Periods and units come from marts.episode_outcomes.
WITH
closed_episodes AS (
    SELECT *
    FROM {{ concern_rows('marts.episode_outcomes') }}
    WHERE is_closed
)

SELECT
    e.concern_id,
    e.episode_id,
    c.indicator,
    c.x
FROM closed_episodes AS e
CROSS JOIN LATERAL (VALUES
{%- for indicator in params.catalogue %}
    -- {{ indicator.code }} ({{ indicator.aggregation }})
    ('{{ indicator.code }}', {{ indicator.contribution_sql }}){{ "," if not loop.last }}
{%- endfor %}
) AS c(indicator, x)
ORDER BY e.concern_id, e.episode_id, c.indicator
