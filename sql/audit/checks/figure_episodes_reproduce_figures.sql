-- Blocking check on audit.figure_episodes: the episodes recorded behind every figure of
-- marts.indicators (levels therapist, location, concern; aggregation 'episodes') give
-- its n and value back: n = the episodes whose contributions name the indicator,
-- value = the mean of those contributions (a count: their number).
-- Reads the latest recorded version of every unit and period, this run's included
-- (getvariable('run_id')), so it checks the trail an auditor will read, not a recomputation.
{% from "macros/history.jinja" import latest_versions %}
WITH
latest_cells AS (
    {{ latest_versions("audit.figure_episodes", "unit_period_key", "v.*", "getvariable('run_id')") }}
),

entries AS (
    SELECT concern_id, level, unit_id, period_type, period, unnest(map_entries(contributions)) AS entry
    FROM latest_cells
),

contributions AS (
    SELECT concern_id, level, unit_id, period_type, period, entry.key AS indicator, entry.value AS x
    FROM entries
),

recomputed AS (
    SELECT
        concern_id,
        level,
        unit_id,
        period_type,
        period,
        indicator,
        count(*) AS n,
        CASE WHEN any_value(d.kind) = 'count' THEN count(*)::DOUBLE ELSE avg(x) END AS value
    FROM contributions
    JOIN config.indicator_catalogue AS d USING (indicator)
    WHERE {{ figure_computed() }}  -- the cells of a figure that is not computed have no figure to give back
    GROUP BY concern_id, level, unit_id, period_type, period, indicator
),

published AS (
    SELECT concern_id, level, unit_id, period_type, period, indicator, n, value
    FROM marts.indicators
    WHERE aggregation = 'episodes' AND level IN ('therapist', 'location', 'concern')
)

SELECT
    coalesce(p.concern_id, r.concern_id) AS concern_id,
    coalesce(p.level, r.level) AS level,
    coalesce(p.unit_id, r.unit_id) AS unit_id,
    coalesce(p.period_type, r.period_type) AS period_type,
    coalesce(p.period, r.period) AS period,
    coalesce(p.indicator, r.indicator) AS indicator,
    p.n AS published_n,
    r.n AS recorded_n,
    p.value AS published_value,
    r.value AS recorded_value
FROM published AS p
FULL OUTER JOIN recomputed AS r
  ON r.concern_id = p.concern_id AND r.level = p.level AND r.unit_id = p.unit_id
 AND r.period_type = p.period_type AND r.period = p.period AND r.indicator = p.indicator
WHERE coalesce(p.n, 0) <> coalesce(r.n, 0)
   OR (coalesce(p.n, 0) > 0
       AND (p.value IS NULL OR r.value IS NULL OR abs(p.value - r.value) > 1e-9 * greatest(1, abs(p.value))))
