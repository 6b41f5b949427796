-- marts.indicator_cells: the sufficient statistics (n, sum of x, sum of x squared) of every
-- indicator of the catalogue for every unit of one concern (therapist, location, the
-- concern) and period, in total and per case-mix category. Every figure of
-- marts.indicator_aggregates but those of all concerns together is one of these cells;
-- the statistics, intervals and suppression are computed there, from here.
-- Built one concern at a time (refresh: per_concern): the part of the indicators that
-- reads every closed episode's contributions holds one concern's hash tables, not the
-- country's (issue 11: as one statement at tier L it spilled 35 GB), and a night on which
-- one concern re-delivers recomputes that concern's cells only.
-- Periods are by the episode's end_date: an indicator describes the episodes that closed
-- in the period.
WITH
closed_episodes AS (
    -- Indicators describe closed episodes; a missing case-mix attribute is its
    -- own category ('unknown') so that the categories of a dimension add up.
    SELECT
        concern_id,
        episode_id,
        location_id,
        therapist_id,
        period_of('month', end_date) AS end_month,
        period_of('quarter', end_date) AS end_quarter,
        period_of('year', end_date) AS end_year,
        coalesce(diagnosis_group, 'unknown') AS diagnosis_group,
        coalesce(referrer, 'unknown') AS referrer,
        coalesce(care_type, 'unknown') AS care_type,
        coalesce(therapist_experience, 'unknown') AS therapist_experience,
        coalesce(baseline_severity_band, 'unknown') AS baseline_severity
    FROM {{ concern_rows('marts.episode_outcomes') }}
    WHERE is_closed
),

episode_measures AS NOT MATERIALIZED (
    -- One row per closed episode and indicator, with its contribution x from
    -- outcomes.indicator_contributions (NULL = not in this indicator's n).
    -- Percentages are means of 0/100 contributions, so one mean serves every indicator.
    -- Not materialised: six aggregates read it, and streaming the join into each costs less
    -- than holding a row per episode and indicator on disk.
    SELECT
        c.concern_id,
        c.location_id,
        c.therapist_id,
        c.end_month,
        c.end_quarter,
        c.end_year,
        c.diagnosis_group,
        c.referrer,
        c.care_type,
        c.therapist_experience,
        c.baseline_severity,
        m.indicator,
        m.x
    FROM closed_episodes AS c
    JOIN {{ concern_rows('outcomes.indicator_contributions') }} AS m
      ON m.concern_id = c.concern_id AND m.episode_id = c.episode_id
),

unit_cells AS (
    -- Per therapist, location and month. Every unit and period of marts.indicators is a
    -- sum of these cells, so the episodes are scanned once however many levels there are.
    SELECT
        concern_id,
        location_id,
        therapist_id,
        end_month,
        end_quarter,
        end_year,
        indicator,
        count(x) AS n,
        sum(x) AS sum_x,
        sum(x * x) AS sum_x2
    FROM episode_measures
    GROUP BY concern_id, location_id, therapist_id, end_month, end_quarter, end_year, indicator
),

unit_cells_by_period AS (
    SELECT u.*, p.period_type, p.period
    FROM unit_cells AS u
    CROSS JOIN LATERAL (VALUES
        ('month', u.end_month),
        ('quarter', u.end_quarter),
        ('year', u.end_year)
    ) AS p(period_type, period)
),

total_cells AS (
    -- Level 'all' (all concerns together) is summed from the concern cells in
    -- marts.indicator_aggregates.
    SELECT
        CASE
            WHEN grouping(therapist_id) = 0 THEN 'therapist'
            WHEN grouping(location_id) = 0 THEN 'location'
            ELSE 'concern'
        END AS level,
        concern_id,
        CASE
            WHEN grouping(therapist_id) = 0 THEN therapist_id
            WHEN grouping(location_id) = 0 THEN location_id
            ELSE concern_id
        END AS unit_id,
        period_type,
        period,
        'total' AS dimension,
        'total' AS category,
        indicator,
        sum(n)::BIGINT AS n,
        sum(sum_x) AS sum_x,
        sum(sum_x2) AS sum_x2
    FROM unit_cells_by_period
    GROUP BY GROUPING SETS (
        (period_type, period, indicator, concern_id, therapist_id),
        (period_type, period, indicator, concern_id, location_id),
        (period_type, period, indicator, concern_id)
    )
),

{#- The case-mix dimensions of the breakdowns (marts.indicator_breakdowns), each a column of
    closed_episodes. #}
{%- set case_mix_dimensions = ["diagnosis_group", "referrer", "care_type", "therapist_experience",
                               "baseline_severity"] %}
case_mix_cells AS (
    -- The same sufficient statistics per location, quarter and category, one dimension at a
    -- time (seed 000, stage 2). Grouping by all five dimensions at once and then splitting the
    -- cells per dimension made almost one cell per episode and indicator, five times over
    -- (issue 11: 16 GB of spill at tier L before the first breakdown).
    {%- for dimension in case_mix_dimensions %}
    SELECT concern_id, location_id, end_quarter, end_year, '{{ dimension }}' AS dimension,
           {{ dimension }} AS category, indicator, count(x) AS n, sum(x) AS sum_x, sum(x * x) AS sum_x2
    FROM episode_measures
    GROUP BY concern_id, location_id, end_quarter, end_year, {{ dimension }}, indicator
    {%- if not loop.last %}
    UNION ALL{% endif %}
    {%- endfor %}
),

case_mix_cells_by_category AS (
    -- By quarter and year (months hold too few episodes per category to be of use).
    SELECT
        c.concern_id,
        c.location_id,
        p.period_type,
        p.period,
        c.dimension,
        c.category,
        c.indicator,
        c.n,
        c.sum_x,
        c.sum_x2
    FROM case_mix_cells AS c
    CROSS JOIN LATERAL (VALUES ('quarter', c.end_quarter), ('year', c.end_year)) AS p(period_type, period)
),

breakdown_cells AS (
    SELECT
        CASE WHEN grouping(location_id) = 0 THEN 'location' ELSE 'concern' END AS level,
        concern_id,
        CASE WHEN grouping(location_id) = 0 THEN location_id ELSE concern_id END AS unit_id,
        period_type,
        period,
        dimension,
        category,
        indicator,
        sum(n)::BIGINT AS n,
        sum(sum_x) AS sum_x,
        sum(sum_x2) AS sum_x2
    FROM case_mix_cells_by_category
    GROUP BY GROUPING SETS (
        (period_type, period, dimension, category, indicator, concern_id, location_id),
        (period_type, period, dimension, category, indicator, concern_id)
    )
),

therapists_per_experience AS (
    -- A trainee / experienced category that rests on fewer than
    -- min_therapists_per_category therapists is one therapist's result (seed 000:
    -- seen by their location manager only); marts.indicator_aggregates suppresses it.
    SELECT
        concern_id,
        CASE WHEN grouping(location_id) = 0 THEN 'location' ELSE 'concern' END AS level,
        CASE WHEN grouping(location_id) = 0 THEN location_id ELSE concern_id END AS unit_id,
        p.period_type AS period_type,
        p.period AS period,
        therapist_experience AS category,
        count(DISTINCT therapist_id) AS n_therapists
    FROM closed_episodes
    CROSS JOIN LATERAL (VALUES ('quarter', end_quarter), ('year', end_year)) AS p(period_type, period)
    GROUP BY GROUPING SETS (
        (concern_id, location_id, p.period_type, p.period, therapist_experience),
        (concern_id, p.period_type, p.period, therapist_experience)
    )
)

SELECT c.*, th.n_therapists
FROM (SELECT * FROM total_cells UNION ALL SELECT * FROM breakdown_cells) AS c
LEFT JOIN therapists_per_experience AS th
  ON c.dimension = 'therapist_experience' AND th.concern_id = c.concern_id AND th.level = c.level
 AND th.unit_id = c.unit_id AND th.period_type = c.period_type AND th.period = c.period
 AND th.category = c.category
