-- marts.caseload_review: the manager's caseload review (seed 000, issue 12 part 5).
-- Per therapist and per location, per year of the episodes' end_date, over the
-- closed episodes (as marts.indicators):
--   dimension = diagnosis_group, baseline_severity (SCL90 intake band), referrer,
--               care_type: each category's n and its share of the unit's closed
--               episodes (a missing attribute is the category 'unknown', so the
--               shares of a dimension add up to 100);
--   dimension = 'total' (category 'all'): the unit's closed episodes and, for a
--               therapist, the "all 100%" flag (seed 000: therapists who always
--               score 100% improvement on the SCL-90 are a reason to talk; perhaps
--               the caseload is too light): all_complete_at_100 is TRUE when the
--               therapist has at least min_n complete episodes in the year and every
--               one of them has pct_improvement = 100. This column is the flag's one
--               definition (docs/outcome-rules.md s13).
-- Suppression: a share rests on the unit's n (small_number_reason) and its count
-- (small_count_reason), the rules every published figure follows, and a dimension's
-- one hidden category takes its smallest shown sibling with it ('complementary'). Therapist rows
-- never leave the work database unless the deployment publishes therapist level.
{% from "macros/complementary.jinja" import complementary_pass %}
WITH
closed AS (
    SELECT
        concern_id,
        location_id,
        therapist_id,
        period_of('year', end_date) AS period,
        coalesce(diagnosis_group, 'unknown') AS diagnosis_group,
        coalesce(baseline_severity_band, 'unknown') AS baseline_severity,
        coalesce(referrer, 'unknown') AS referrer,
        coalesce(care_type, 'unknown') AS care_type,
        has_complete_scores,
        pct_improvement
    FROM marts.episode_outcomes
    WHERE is_closed
),

units AS (
    -- Each closed episode once for its therapist and once for its location.
    SELECT concern_id, 'therapist' AS level, therapist_id AS unit_id, location_id, period,
           diagnosis_group, baseline_severity, referrer, care_type, has_complete_scores, pct_improvement
    FROM closed
    WHERE therapist_id IS NOT NULL
    UNION ALL
    SELECT concern_id, 'location' AS level, location_id AS unit_id, location_id, period,
           diagnosis_group, baseline_severity, referrer, care_type, has_complete_scores, pct_improvement
    FROM closed
),

unit_totals AS (
    SELECT
        concern_id,
        level,
        unit_id,
        period,
        any_value(location_id) AS location_id,
        count(*) AS n_unit,
        count(*) FILTER (WHERE has_complete_scores) AS n_complete,
        count(*) FILTER (WHERE has_complete_scores AND pct_improvement = 100) AS n_complete_at_100
    FROM units
    GROUP BY concern_id, level, unit_id, period
),

categories AS (
    SELECT concern_id, level, unit_id, period, d.dimension, d.category, count(*) AS n
    FROM units
    CROSS JOIN LATERAL (VALUES
        ('diagnosis_group', diagnosis_group),
        ('baseline_severity', baseline_severity),
        ('referrer', referrer),
        ('care_type', care_type)
    ) AS d(dimension, category)
    GROUP BY concern_id, level, unit_id, period, d.dimension, d.category
),

own_reasons AS (
    SELECT
        c.concern_id, c.level, c.unit_id, t.location_id, c.period, c.dimension, c.category,
        c.n, t.n_unit, 100.0 * c.n / t.n_unit AS share,
        NULL::BIGINT AS n_complete, NULL::BIGINT AS n_complete_at_100, NULL::BOOLEAN AS all_complete_at_100,
        coalesce(small_number_reason(t.n_unit), small_count_reason(c.n, t.n_unit)) AS suppression_reason
    FROM categories AS c
    JOIN unit_totals AS t USING (concern_id, level, unit_id, period)
    UNION ALL
    SELECT
        concern_id, level, unit_id, location_id, period, 'total' AS dimension, 'all' AS category,
        n_unit AS n, n_unit, 100.0 AS share,
        CASE WHEN level = 'therapist' THEN n_complete END AS n_complete,
        CASE WHEN level = 'therapist' THEN n_complete_at_100 END AS n_complete_at_100,
        CASE WHEN level = 'therapist'
             THEN n_complete >= getvariable('min_n') AND n_complete_at_100 = n_complete END AS all_complete_at_100,
        small_number_reason(n_unit) AS suppression_reason
    FROM unit_totals
),

rows_ AS (
    -- Over a unit's categories: its shown total with exactly one hidden category of a dimension.
    {{ complementary_pass("own_reasons", reason="suppression_reason", is_part="r.dimension <> 'total'",
                          tiebreak="category", siblings="concern_id, level, unit_id, period, dimension",
                          parent_on="parent.dimension = 'total' AND parent.concern_id = r.concern_id
     AND parent.level = r.level AND parent.unit_id = r.unit_id AND parent.period = r.period") }}
)

SELECT
    concern_id,
    level,
    unit_id,
    location_id,
    'year' AS period_type,
    period,
    dimension,
    category,
    n,
    n_unit,
    share,
    suppression_reason IS NOT NULL AS suppressed,
    suppression_reason,
    n_complete,
    n_complete_at_100,
    all_complete_at_100
FROM rows_
ORDER BY concern_id, level, unit_id, period, dimension, category
