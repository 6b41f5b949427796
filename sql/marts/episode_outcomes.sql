-- marts.episode_outcomes: one row per episode of each concern's current
-- delivery, with the primary instrument's (SCL90) pre/post scores, percentage
-- improvement with its rule code (seed 000, kader 2; design s1), the
-- reliable-change category, and the attributes that the indicators and the
-- case-mix breakdowns group by. The columns up to reliable_change are the
-- published interface (architecture.md); the ones after them are extras: among
-- them ROM adherence (SCL90 administrations against the expected count) and
-- secondary_outcomes, the pre/post and reliable change of every other instrument
-- of the registry, one struct field per instrument (generated from the registry).
WITH
episodes AS (
    SELECT
        concern_id,
        delivery_id,
        episode_id,
        location_id,
        therapist_id,
        care_type,
        diagnosis_group,
        referrer,
        start_date,
        end_date,
        end_reason,
        sessions_attended
    FROM {{ concern_rows('staging.episodes') }}
),

therapists AS (
    SELECT concern_id, delivery_id, therapist_id, is_trainee
    FROM {{ concern_rows('staging.therapists') }}
),

locations AS (
    SELECT concern_id, delivery_id, location_id, location_name
    FROM {{ concern_rows('staging.locations') }}
),

primary_outcomes AS (
    SELECT
        concern_id,
        delivery_id,
        episode_id,
        is_closed,
        n_administration_dates,
        pre_measurement_id,
        pre_administered_on,
        pre_score::DOUBLE AS pre_score,
        post_measurement_id,
        post_administered_on,
        post_score::DOUBLE AS post_score,
        has_complete_scores,
        reliable_change,
        rc_threshold,
        latest_measurement_id,
        latest_administered_on,
        latest_session_number,
        latest_score,
        latest_improvement
    FROM {{ concern_rows('outcomes.instrument_outcomes') }}
    WHERE instrument = getvariable('primary_instrument')
),

satisfaction AS (
    -- Client satisfaction (seed 000, from 2011): the CQ-index post-score, chosen
    -- by the same window rule as every instrument.
    SELECT concern_id, delivery_id, episode_id, post_measurement_id, post_score
    FROM {{ concern_rows('outcomes.instrument_outcomes') }}
    WHERE instrument = 'CQI'
),

work AS (
    SELECT concern_id, delivery_id, episode_id, working_at_start, working_at_end
    FROM {{ concern_rows('outcomes.instrument_outcomes') }}
    WHERE instrument = 'WORK'
),

secondary_outcomes AS (
    -- Every instrument of the registry (schemas/instruments.yaml) other than the
    -- primary one, side by side: one struct per instrument with its pre/post (same
    -- window rule), completeness and reliable-change category (oriented by the
    -- instrument's higher_is, outcomes.instrument_outcomes). The indicator catalogue
    -- reads them as secondary_outcomes.<CODE>.<field>; the list of instruments is the
    -- registry's, so a new instrument needs no change here.
    SELECT
        concern_id,
        delivery_id,
        episode_id,
        {
        {%- for code in params.instruments.instruments if code != params.tree.outcomes.primary_instrument %}
            '{{ code }}': any_value({
                'n_measurements': n_valid_measurements,
                'pre_measurement_id': pre_measurement_id,
                'pre_score': pre_score::DOUBLE,
                'post_measurement_id': post_measurement_id,
                'post_score': post_score::DOUBLE,
                'has_complete_scores': has_complete_scores,
                'reliable_change': reliable_change
            }) FILTER (WHERE instrument = '{{ code }}'){{ "," if not loop.last }}
        {%- endfor %}
        } AS outcomes
    FROM {{ concern_rows('outcomes.instrument_outcomes') }}
    WHERE instrument <> getvariable('primary_instrument')
    GROUP BY concern_id, delivery_id, episode_id
),

improvement_rules AS (
    -- Which branch of the percentage-improvement rule applies, in the order of
    -- design s1. With N the norm (118, the mean Dutch population score):
    --   post <= N                 -> post_at_or_below_norm (+100, whatever the pre-score)
    --   pre  <= N (and post > N)  -> pre_at_or_below_norm (-cap). The seed leaves it
    --      undefined (denominator <= 0); the client got worse, so it counts as the
    --      maximum deterioration (project decision, docs/outcome-rules.md).
    --   formula below -cap        -> capped_deterioration (-cap)
    --   otherwise                 -> formula, (pre - post) / (pre - N) * 100
    -- The formula is only evaluated where pre > N, so it never divides by zero.
    SELECT
        concern_id,
        delivery_id,
        episode_id,
        CASE
            WHEN NOT has_complete_scores THEN NULL
            WHEN post_score <= getvariable('norm_score') THEN 'post_at_or_below_norm'
            WHEN pre_score <= getvariable('norm_score') THEN 'pre_at_or_below_norm'
            WHEN (pre_score - post_score) / (pre_score - getvariable('norm_score')) * 100
                 < -getvariable('improvement_cap') THEN 'capped_deterioration'
            ELSE 'formula'
        END AS improvement_rule
    FROM primary_outcomes
),

improvements AS (
    SELECT
        p.concern_id,
        p.delivery_id,
        p.episode_id,
        r.improvement_rule,
        CASE r.improvement_rule
            -- Reaching the norm is full improvement by definition (seed 000).
            WHEN 'post_at_or_below_norm' THEN 100.0
            WHEN 'pre_at_or_below_norm' THEN -getvariable('improvement_cap')
            WHEN 'capped_deterioration' THEN -getvariable('improvement_cap')
            WHEN 'formula' THEN (p.pre_score - p.post_score) / (p.pre_score - getvariable('norm_score')) * 100
        END::DOUBLE AS pct_improvement
    FROM primary_outcomes AS p
    JOIN improvement_rules AS r
      ON r.concern_id = p.concern_id AND r.delivery_id = p.delivery_id AND r.episode_id = p.episode_id
)

SELECT
    e.concern_id,
    e.episode_id,
    e.location_id,
    e.therapist_id,
    e.start_date,
    e.end_date,
    e.end_date IS NOT NULL AS is_closed,
    p.pre_measurement_id,
    p.pre_score,
    p.post_measurement_id,
    p.post_score,
    coalesce(p.has_complete_scores, FALSE) AS has_complete_scores,
    i.pct_improvement,
    i.improvement_rule,
    p.reliable_change,
    -- extras
    e.delivery_id,
    l.location_name,
    p.pre_administered_on,
    p.post_administered_on,
    p.post_score - p.pre_score AS raw_change,
    e.end_reason,
    e.end_reason = 'dropout' AS is_dropout,
    e.sessions_attended,
    e.care_type,
    e.diagnosis_group,
    e.referrer,
    t.is_trainee,
    CASE t.is_trainee WHEN TRUE THEN 'trainee' WHEN FALSE THEN 'experienced' END AS therapist_experience,
    -- Baseline severity bands on the SCL90 pre-score (macro severity_band, edges
    -- intake_severity_band_edges; docs/outcome-rules.md s5).
    severity_band(p.pre_score) AS baseline_severity_band,
    s.post_measurement_id AS satisfaction_measurement_id,
    s.post_score AS satisfaction_post,
    w.working_at_start,
    w.working_at_end,
    -- ROM adherence (seed 000: an SCL90 evaluation every rom_interval_sessions
    -- sessions): the days a valid SCL90 was administered, against the intake plus
    -- one per started block of sessions (the last block's is the discharge
    -- measurement). Closed episodes with sessions_attended only: without the
    -- sessions there is no expected count (docs/outcome-rules.md s4b).
    coalesce(p.n_administration_dates, 0) AS scl90_administrations,
    CASE WHEN e.end_date IS NOT NULL AND e.sessions_attended IS NOT NULL
         THEN 1 + ceil(e.sessions_attended / getvariable('rom_interval_sessions'))::INTEGER
    END AS expected_administrations,
    so.outcomes AS secondary_outcomes,
    -- Ongoing treatment, only for open episodes: the latest SCL90 after the pre-score. The
    -- not-on-track flag is marts.not_on_track (it needs the expected course of all concerns).
    CASE WHEN e.end_date IS NULL THEN p.latest_measurement_id END AS latest_measurement_id,
    CASE WHEN e.end_date IS NULL THEN p.latest_administered_on END AS latest_administered_on,
    CASE WHEN e.end_date IS NULL THEN p.latest_score END AS latest_score,
    -- The parameter values that made pct_improvement, beside every figure.
    getvariable('norm_score')::DOUBLE AS norm_score,
    getvariable('improvement_cap')::DOUBLE AS improvement_cap
FROM episodes AS e
-- LEFT joins throughout: every episode of staging gets exactly one row.
LEFT JOIN primary_outcomes AS p
  ON p.concern_id = e.concern_id AND p.delivery_id = e.delivery_id AND p.episode_id = e.episode_id
LEFT JOIN improvements AS i
  ON i.concern_id = e.concern_id AND i.delivery_id = e.delivery_id AND i.episode_id = e.episode_id
LEFT JOIN therapists AS t
  ON t.concern_id = e.concern_id AND t.delivery_id = e.delivery_id AND t.therapist_id = e.therapist_id
LEFT JOIN locations AS l
  ON l.concern_id = e.concern_id AND l.delivery_id = e.delivery_id AND l.location_id = e.location_id
LEFT JOIN satisfaction AS s
  ON s.concern_id = e.concern_id AND s.delivery_id = e.delivery_id AND s.episode_id = e.episode_id
LEFT JOIN work AS w
  ON w.concern_id = e.concern_id AND w.delivery_id = e.delivery_id AND w.episode_id = e.episode_id
LEFT JOIN secondary_outcomes AS so
  ON so.concern_id = e.concern_id AND so.delivery_id = e.delivery_id AND so.episode_id = e.episode_id
ORDER BY e.concern_id, e.episode_id
