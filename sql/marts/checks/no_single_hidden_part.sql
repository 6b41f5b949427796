-- Shown totals with exactly one hidden part (n > 0): that part would come back by
-- subtraction. Complementary suppression (marts.indicator_aggregates) makes one pass over
-- the levels and one over the breakdown categories; this lists what those passes left.
-- Parts: the locations of a concern and the concerns of 'all' (episodes aggregation,
-- per breakdown category too), and the categories of a unit's breakdown.
WITH
figures AS (
    SELECT level, concern_id, unit_id, period_type, period, dimension, category, indicator, n, suppressed
    FROM marts.indicator_aggregates
    WHERE aggregation = 'episodes' AND level IN ('location', 'concern', 'all')
),

level_parts AS (
    SELECT
        CASE level WHEN 'location' THEN 'concern' ELSE 'all' END AS parent_level,
        CASE level WHEN 'location' THEN concern_id ELSE 'all' END AS parent_unit,
        period_type, period, dimension, category, indicator,
        count(*) FILTER (WHERE suppressed AND n > 0) AS hidden_parts
    FROM figures
    WHERE level IN ('location', 'concern')
    GROUP BY ALL
),

category_parts AS (
    SELECT level AS parent_level, unit_id AS parent_unit, concern_id, period_type, period, dimension, indicator,
           count(*) FILTER (WHERE suppressed AND n > 0) AS hidden_parts
    FROM figures
    WHERE dimension <> 'total'
    GROUP BY ALL
)

SELECT 'level' AS hierarchy, p.parent_level, p.parent_unit, p.period_type, p.period, p.dimension, p.category,
       p.indicator
FROM level_parts AS p
JOIN figures AS t
  ON t.level = p.parent_level AND t.unit_id = p.parent_unit AND t.period_type = p.period_type
 AND t.period = p.period AND t.dimension = p.dimension AND t.category = p.category AND t.indicator = p.indicator
WHERE p.hidden_parts = 1 AND NOT t.suppressed
UNION ALL
SELECT 'category', p.parent_level, p.parent_unit, p.period_type, p.period, p.dimension, NULL, p.indicator
FROM category_parts AS p
JOIN figures AS t
  ON t.level = p.parent_level AND t.unit_id = p.parent_unit AND t.concern_id IS NOT DISTINCT FROM p.concern_id
 AND t.period_type = p.period_type AND t.period = p.period AND t.dimension = 'total' AND t.indicator = p.indicator
WHERE p.hidden_parts = 1 AND NOT t.suppressed
