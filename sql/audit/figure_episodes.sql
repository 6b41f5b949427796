-- Why-provenance of the indicator figures (marts.indicators, aggregation 'episodes'):
-- for every therapist, location and concern and every month, quarter and year, the
-- closed episodes of that unit and period with their pre/post measurements, scores
-- and rule codes, and what each episode contributes to each indicator.
--
-- One row per (unit and period, episode): unit_period_key names the figures of that
-- unit and period (concern|level|unit|period_type|period), whatever the indicator.
-- contributions maps indicator -> the episode's value in that indicator's mean; an
-- indicator missing from the map does not count the episode (not in its n). So for
-- every figure: n = the episodes whose contributions name the indicator, and
-- value = the mean of their contributions (a count: their number).
--
-- The contributions are read from outcomes.indicator_contributions, the model that
-- marts.indicator_aggregates computes the statistics from (one rule, rendered from the
-- indicator catalogue); the blocking check audit/figure_episodes:reproduces_published_figures
-- proves, every run, that these rows give every published n and value back.
-- A concern's 'mean_of_locations' figure rests on the same episodes through its
-- locations' figures; level 'all' on the concerns' figures.
-- Therapist-level rows stay in the work database (the shared warehouse leaves them out).
-- The audit trail renders it a batch of concerns at a time (concern_rows): every row
-- belongs to one concern.
WITH
closed_episodes AS (
    SELECT
        concern_id,
        episode_id,
        delivery_id,
        location_id,
        therapist_id,
        end_date,
        end_reason,
        pre_measurement_id,
        pre_score,
        post_measurement_id,
        post_score,
        has_complete_scores,
        pct_improvement,
        improvement_rule,
        reliable_change,
        satisfaction_measurement_id,
        satisfaction_post,
        working_at_start,
        working_at_end,
        scl90_administrations,
        expected_administrations,
        -- The other instruments of the registry that the episode has a measurement of, as a
        -- map instrument -> pre/post and reliable change (the audit table keeps one type
        -- whatever the registry holds): what explain shows for a secondary-outcome figure.
        map_from_entries(list_filter([
        {%- for code in params.instruments.instruments if code != params.tree.outcomes.primary_instrument %}
            {'k': '{{ code }}', 'v': secondary_outcomes."{{ code }}"}{{ "," if not loop.last }}
        {%- endfor %}
        ], lambda entry: entry.v.n_measurements > 0)) AS secondary_outcomes,
        period_of('month', end_date) AS end_month,
        period_of('quarter', end_date) AS end_quarter,
        period_of('year', end_date) AS end_year
    FROM {{ concern_rows('marts.episode_outcomes') }}
    WHERE is_closed
),

contribution_maps AS (
    -- The episode's contributions (outcomes.indicator_contributions, rendered from the
    -- indicator catalogue) as one map, in catalogue order; an indicator the episode does
    -- not count in is left out of the map.
    SELECT
        m.concern_id,
        m.episode_id,
        map_from_entries(list({'k': m.indicator, 'v': m.x} ORDER BY d.position)
                         FILTER (WHERE m.x IS NOT NULL)) AS contribution_map
    FROM {{ concern_rows('outcomes.indicator_contributions') }} AS m
    JOIN config.indicator_catalogue AS d ON d.indicator = m.indicator
    GROUP BY m.concern_id, m.episode_id
),

contributions AS (
    SELECT e.*, m.contribution_map
    FROM closed_episodes AS e
    JOIN contribution_maps AS m ON m.concern_id = e.concern_id AND m.episode_id = e.episode_id
),

units_and_periods AS (
    SELECT
        c.*,
        u.level,
        u.unit_id,
        p.period_type,
        p.period
    FROM contributions AS c
    CROSS JOIN LATERAL (VALUES
        ('therapist', c.therapist_id),
        ('location', c.location_id),
        ('concern', c.concern_id)
    ) AS u(level, unit_id)
    CROSS JOIN LATERAL (VALUES
        ('month', c.end_month),
        ('quarter', c.end_quarter),
        ('year', c.end_year)
    ) AS p(period_type, period)
)

SELECT
    concat_ws('|', concern_id, level, unit_id, period_type, period) AS unit_period_key,
    concern_id,
    level,
    unit_id,
    period_type,
    period,
    episode_id,
    delivery_id,
    location_id,
    therapist_id,
    end_date,
    end_reason,
    pre_measurement_id,
    pre_score,
    post_measurement_id,
    post_score,
    has_complete_scores,
    pct_improvement,
    improvement_rule,
    reliable_change,
    satisfaction_measurement_id,
    satisfaction_post,
    working_at_start,
    working_at_end,
    contribution_map AS contributions,
    scl90_administrations,
    expected_administrations,
    secondary_outcomes
FROM units_and_periods
WHERE unit_id IS NOT NULL AND period IS NOT NULL
ORDER BY unit_period_key, episode_id
