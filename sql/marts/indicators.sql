-- marts.indicators: the indicators of design s2 per therapist, location,
-- concern and all concerns, per month, quarter and year of the episodes'
-- end_date; the columns up to suppressed are the published interface
-- (architecture.md). The statistics come from marts.indicator_aggregates;
-- this model adds the targets (seed 000, from the indicator catalogue); the
-- suppression flag and its reason are decided there, once.
--
-- aggregation: 'episodes' = every closed episode weighs the same;
-- 'mean_of_locations' (levels concern and all) = every location weighs the same
-- (seed 000: the organisation's score is the mean of its locations' scores).
-- Values are kept beside suppressed = TRUE: the manager's own view may show them
-- flagged as unreliable; publishing blanks them (design s2, small numbers).
WITH
indicator_statistics AS (
    SELECT
        concern_id,
        level,
        unit_id,
        period_type,
        period,
        indicator,
        aggregation,
        value,
        n,
        ci_low,
        ci_high,
        n_units,
        numerator,
        sd,
        ci_method,
        confidence_level,
        suppressed,
        suppression_reason,
        is_complete_period
    FROM marts.indicator_aggregates
    WHERE dimension = 'total'
),

targets AS (
    SELECT indicator, comparator, target
    FROM config.indicator_catalogue
)

SELECT
    s.concern_id,
    s.level,
    s.unit_id,
    s.period_type,
    s.period,
    s.indicator,
    s.aggregation,
    s.value,
    s.n,
    s.ci_low,
    s.ci_high,
    t.target,
    meets_target(s.value, t.comparator, t.target) AS target_met,
    s.suppressed,
    -- extras
    s.suppression_reason,
    s.is_complete_period,
    t.comparator AS target_comparator,
    s.n_units,
    s.numerator,
    s.sd,
    s.ci_method,
    s.confidence_level,
    getvariable('min_n')::INTEGER AS min_n
FROM indicator_statistics AS s
LEFT JOIN targets AS t ON t.indicator = s.indicator
ORDER BY
    CASE s.level WHEN 'therapist' THEN 1 WHEN 'location' THEN 2 WHEN 'concern' THEN 3 ELSE 4 END,
    s.concern_id, s.unit_id, s.period_type, s.period, s.indicator, s.aggregation
