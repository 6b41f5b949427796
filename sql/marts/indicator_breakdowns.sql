-- marts.indicator_breakdowns: every indicator of design s2 per location and per
-- concern, per quarter and year of the episodes' end_date, broken down by
-- case mix (seed 000, stage 2): diagnosis_group, referrer, care_type,
-- therapist_experience (trainee / experienced) and baseline_severity (bands on
-- the SCL90 pre-score, see marts.episode_outcomes). A manager checks with it
-- whether differences between units come from their caseload. Within a unit,
-- period, dimension and indicator, the categories' n add up to the unit's n in
-- marts.indicators (a missing attribute is the category 'unknown').
-- aggregation is 'episodes' throughout. Values are unrounded.
-- Suppression (small numbers, a trainee / experienced category on fewer than
-- min_therapists_per_category therapists, complementary) is decided in
-- marts.indicator_aggregates, once, for every figure.
WITH
breakdown_statistics AS (
    SELECT
        concern_id,
        level,
        unit_id,
        period_type,
        period,
        dimension,
        category,
        indicator,
        value,
        n,
        ci_low,
        ci_high,
        numerator,
        sd,
        ci_method,
        suppressed,
        suppression_reason,
        is_complete_period,
        n_therapists
    FROM marts.indicator_aggregates
    WHERE dimension <> 'total'
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
    s.dimension,
    s.category,
    s.indicator,
    s.value,
    s.n,
    s.ci_low,
    s.ci_high,
    s.suppressed,
    -- extras
    t.target,
    meets_target(s.value, t.comparator, t.target) AS target_met,
    s.numerator,
    s.sd,
    s.ci_method,
    s.n_therapists,
    s.suppression_reason,
    s.is_complete_period
FROM breakdown_statistics AS s
LEFT JOIN targets AS t ON t.indicator = s.indicator
ORDER BY
    CASE s.level WHEN 'location' THEN 1 ELSE 2 END,
    s.concern_id, s.unit_id, s.period_type, s.period, s.dimension, s.category, s.indicator
