-- marts.not_on_track: the nightly feedback on open episodes (design s2, ongoing treatment;
-- seed 000: ROM as feedback to the clinician; docs/feedback.md). One row per OPEN episode
-- that can be judged: it has an SCL90 pre-score and a valid SCL90 on a later date (the
-- latest one, as in marts.episode_outcomes). The rule is the macro not_on_track_reason
-- (sql/macros/rules.sql), the same one the back-test replays on closed episodes:
--   reliably_worse         latest - pre > rc_threshold
--   above_expected_course  latest - expected > rc_threshold, expected = the
--                          not_on_track_percentile of the expected course ('all' fit) for
--                          the episode's intake band at the latest measurement's session bin.
-- The latest measurement's session is its session_number, or the episode's sessions
-- attended when it records none (docs/outcome-rules.md s6). Therapist-level: published for
-- analysts with therapist_id masked (warehouse.yaml); each location's manager package lists
-- its therapists' flagged episodes.
WITH
open_episodes AS (
    SELECT concern_id, episode_id, location_id, therapist_id, start_date, sessions_attended, diagnosis_group,
           pre_measurement_id, pre_score, latest_measurement_id, latest_administered_on, latest_score
    FROM marts.episode_outcomes
    WHERE NOT is_closed AND pre_score IS NOT NULL AND latest_measurement_id IS NOT NULL
),

primary_outcomes AS (
    SELECT concern_id, episode_id, latest_session_number, rc_threshold
    FROM outcomes.instrument_outcomes
    WHERE instrument = getvariable('primary_instrument')
),

judged AS (
    SELECT
        o.*,
        severity_band(o.pre_score) AS intake_band,
        coalesce(p.latest_session_number, o.sessions_attended) AS latest_session,
        session_bin_from(coalesce(p.latest_session_number, o.sessions_attended)) AS session_bin_from,
        p.rc_threshold
    FROM open_episodes AS o
    JOIN primary_outcomes AS p ON p.concern_id = o.concern_id AND p.episode_id = o.episode_id
),

course AS (
    SELECT
        intake_band,
        session_bin_from,
        any_value(session_bin) AS session_bin,
        any_value(n_episodes) AS course_n_episodes,
        any_value(score) FILTER (WHERE percentile = getvariable('not_on_track_percentile')) AS expected_score,
        arg_min(score, percentile) AS expected_low,
        arg_max(score, percentile) AS expected_high
    FROM outcomes.expected_course_fits
    WHERE fit = 'all'
    GROUP BY intake_band, session_bin_from
)

SELECT
    j.concern_id,
    j.episode_id,
    j.location_id,
    j.therapist_id,
    j.start_date,
    j.diagnosis_group,
    j.sessions_attended,
    j.pre_measurement_id,
    j.pre_score,
    j.intake_band,
    j.latest_measurement_id,
    j.latest_administered_on,
    j.latest_session,
    c.session_bin,
    j.latest_score,
    c.expected_score,
    c.expected_low,
    c.expected_high,
    c.course_n_episodes,
    j.rc_threshold,
    not_on_track_reason(j.latest_score, j.pre_score, c.expected_score, j.rc_threshold) IS NOT NULL AS not_on_track,
    not_on_track_reason(j.latest_score, j.pre_score, c.expected_score, j.rc_threshold) AS not_on_track_reason
FROM judged AS j
LEFT JOIN course AS c ON c.intake_band = j.intake_band AND c.session_bin_from = j.session_bin_from
WHERE j.rc_threshold IS NOT NULL
ORDER BY j.concern_id, j.episode_id
