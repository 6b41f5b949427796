-- outcomes.scl90_course: every valid SCL90 (primary instrument) measurement of an
-- episode with a pre-score, from the pre-score on, placed on the session axis of the
-- expected course (docs/feedback.md). The input of the expected course (closed
-- episodes), the not-on-track flag (open episodes) and the back-test (closed ones).
--   session: 0 for the pre-score (the intake); otherwise the measurement's
--     session_number. A later measurement without one cannot be placed on the course
--     and is left out (NULL session rows are not in this table).
--   before_last_session: a closed episode's measurement after the pre and before the
--     post-score's date: what the therapist could have seen while treating (the
--     back-test replays these). The post itself and anything after it are not.
WITH
primary_outcomes AS (
    SELECT concern_id, delivery_id, episode_id, is_closed, pre_measurement_id, pre_administered_on,
           pre_score::DOUBLE AS pre_score, post_measurement_id, post_administered_on,
           reliable_change, rc_threshold
    FROM {{ concern_rows('outcomes.instrument_outcomes') }}
    WHERE instrument = getvariable('primary_instrument') AND pre_measurement_id IS NOT NULL
),

episodes AS (
    SELECT concern_id, delivery_id, episode_id, location_id, therapist_id, diagnosis_group, sessions_attended
    FROM {{ concern_rows('staging.episodes') }}
),

measurements AS (
    SELECT concern_id, delivery_id, episode_id, measurement_id, administered_on, session_number,
           total_score::DOUBLE AS score
    FROM {{ concern_rows('staging.measurement_scores') }}
    WHERE instrument = getvariable('primary_instrument') AND total_score IS NOT NULL
),

placed AS (
    SELECT
        p.concern_id,
        p.delivery_id,
        p.episode_id,
        e.location_id,
        e.therapist_id,
        e.diagnosis_group,
        e.sessions_attended,
        p.is_closed,
        p.pre_score,
        severity_band(p.pre_score) AS intake_band,
        backtest_fold(p.concern_id, p.episode_id) AS fold,
        p.reliable_change,
        p.rc_threshold,
        m.measurement_id,
        m.administered_on,
        CASE WHEN m.measurement_id = p.pre_measurement_id THEN 0 ELSE m.session_number END AS session,
        m.score,
        m.measurement_id = p.pre_measurement_id AS is_pre,
        m.measurement_id IS NOT DISTINCT FROM p.post_measurement_id AS is_post,
        p.is_closed AND m.measurement_id <> p.pre_measurement_id
            AND m.administered_on < p.post_administered_on AS before_last_session
    FROM primary_outcomes AS p
    JOIN episodes AS e
      ON e.concern_id = p.concern_id AND e.delivery_id = p.delivery_id AND e.episode_id = p.episode_id
    JOIN measurements AS m
      ON m.concern_id = p.concern_id AND m.delivery_id = p.delivery_id AND m.episode_id = p.episode_id
    -- From the pre-score on: the pre itself, and later dates (a same-day other one is not after it).
    WHERE m.measurement_id = p.pre_measurement_id OR m.administered_on > p.pre_administered_on
)

SELECT
    concern_id,
    delivery_id,
    episode_id,
    location_id,
    therapist_id,
    diagnosis_group,
    sessions_attended,
    is_closed,
    pre_score,
    intake_band,
    fold,
    reliable_change,
    rc_threshold,
    measurement_id,
    administered_on,
    session,
    session_bin_from(session) AS session_bin_from,
    score,
    is_pre,
    is_post,
    coalesce(before_last_session, FALSE) AS before_last_session
FROM placed
WHERE session IS NOT NULL
ORDER BY concern_id, episode_id, administered_on, measurement_id
