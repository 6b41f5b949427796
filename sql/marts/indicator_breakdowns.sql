-- marts.indicator_breakdowns: every indicator of design s2 per location and per
-- concern, per quarter and year of the episodes' end_date, broken down by
-- case mix (seed 000, stage 2): diagnosis_group, referrer, care_type,
-- therapist_experience (trainee / experienced) and baseline_severity (bands on
-- the SCL90 pre-score, see marts.episode_outcomes). A manager checks with it
-- whether differences between units come from their caseload. Within a unit,
-- period, dimension and indicator, the categories' n add up to the unit's n in
-- marts.indicators (a missing attribute is the category 'unknown').
-- aggregation is 'episodes' throughout. Values are unrounded.
-- A trainee / experienced category that rests on fewer than min_therapists_per_category
-- therapists (parameter, default 2) is one therapist's result (seed 000: seen by their
-- location manager only), so it is suppressed like a small n (n_therapists,
-- suppression_reason therapists_below_min).
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
        ci_method
    FROM marts.indicator_aggregates
    WHERE dimension <> 'total'
),

targets AS (
    SELECT indicator, comparator, target
    FROM config.indicator_catalogue
),

closed_episode_periods AS (
    SELECT
        concern_id,
        location_id,
        therapist_id,
        therapist_experience,
        unnest([
            {'period_type': 'quarter', 'period': strftime(end_date, '%Y') || '-Q' || quarter(end_date)},
            {'period_type': 'year', 'period': strftime(end_date, '%Y')}
        ]) AS p
    FROM marts.episode_outcomes
    WHERE is_closed
),

therapists_per_experience AS (
    SELECT
        concern_id,
        CASE WHEN location_id IS NULL THEN 'concern' ELSE 'location' END AS level,
        coalesce(location_id, concern_id) AS unit_id,
        p.period_type AS period_type,
        p.period AS period,
        coalesce(therapist_experience, 'unknown') AS category,
        count(DISTINCT therapist_id) AS n_therapists
    FROM closed_episode_periods
    GROUP BY GROUPING SETS (
        (concern_id, location_id, p.period_type, p.period, coalesce(therapist_experience, 'unknown')),
        (concern_id, p.period_type, p.period, coalesce(therapist_experience, 'unknown'))
    )
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
    r.suppression_reason IS NOT NULL AS suppressed,
    -- extras
    t.target,
    meets_target(s.value, t.comparator, t.target) AS target_met,
    s.numerator,
    s.sd,
    s.ci_method,
    th.n_therapists,
    r.suppression_reason
FROM breakdown_statistics AS s
LEFT JOIN targets AS t ON t.indicator = s.indicator
LEFT JOIN therapists_per_experience AS th
    ON s.dimension = 'therapist_experience'
    AND th.concern_id = s.concern_id
    AND th.level = s.level
    AND th.unit_id = s.unit_id
    AND th.period_type = s.period_type
    AND th.period = s.period
    AND th.category = s.category
CROSS JOIN LATERAL (
    SELECT coalesce(
        small_number_reason(s.n),
        CASE WHEN th.n_therapists < getvariable('min_therapists_per_category') THEN 'therapists_below_min' END
    ) AS suppression_reason
) AS r
ORDER BY
    CASE s.level WHEN 'location' THEN 1 ELSE 2 END,
    s.concern_id, s.unit_id, s.period_type, s.period, s.dimension, s.category, s.indicator
