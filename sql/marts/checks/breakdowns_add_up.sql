-- Offending rows of marts.indicator_breakdowns: per unit, period, dimension
-- and indicator, the categories' n must add up to the unit's n in
-- marts.indicators (aggregation 'episodes'), every dimension must be there, and
-- values and their CIs must lie in the indicator's range (config.indicator_catalogue).
WITH
category_sums AS (
    SELECT concern_id, level, unit_id, period_type, period, dimension, indicator, sum(n) AS n
    FROM marts.indicator_breakdowns
    GROUP BY concern_id, level, unit_id, period_type, period, dimension, indicator
),

unit_totals AS (
    SELECT i.concern_id, i.level, i.unit_id, i.period_type, i.period, d.dimension, i.indicator, i.n
    FROM marts.indicators AS i
    CROSS JOIN (VALUES ('diagnosis_group'), ('referrer'), ('care_type'), ('therapist_experience'),
                       ('baseline_severity')) AS d(dimension)
    WHERE i.aggregation = 'episodes'
      AND i.level IN ('location', 'concern')
      AND i.period_type IN ('quarter', 'year')
),

sum_mismatches AS (
    SELECT
        coalesce(c.concern_id, u.concern_id) AS concern_id,
        coalesce(c.level, u.level) AS level,
        coalesce(c.unit_id, u.unit_id) AS unit_id,
        coalesce(c.period_type, u.period_type) AS period_type,
        coalesce(c.period, u.period) AS period,
        coalesce(c.dimension, u.dimension) AS dimension,
        coalesce(c.indicator, u.indicator) AS indicator,
        'categories_do_not_add_up' AS problem
    FROM category_sums AS c
    FULL JOIN unit_totals AS u
      ON u.concern_id = c.concern_id AND u.level = c.level AND u.unit_id = c.unit_id
     AND u.period_type = c.period_type AND u.period = c.period
     AND u.dimension = c.dimension AND u.indicator = c.indicator
    WHERE c.n IS DISTINCT FROM u.n
),

out_of_range AS (
    SELECT b.concern_id, b.level, b.unit_id, b.period_type, b.period, b.dimension, b.indicator,
           'value_out_of_range'
    FROM marts.indicator_breakdowns AS b
    JOIN config.indicator_catalogue AS d ON d.indicator = b.indicator
    WHERE isnan(b.value) OR b.value < d.lower_bound OR b.value > d.upper_bound
       OR b.ci_low < d.lower_bound OR b.ci_high > d.upper_bound
)

SELECT * FROM sum_mismatches
UNION ALL
SELECT * FROM out_of_range
