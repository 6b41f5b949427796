-- outcomes.feedback_backtest_episodes: the back-test of the not-on-track rule (docs/feedback.md).
-- Every CLOSED episode with complete SCL90 scores (so its final reliable change is known) is
-- replayed in session order: at each of its measurements after the pre and before the
-- post-score's date (outcomes.scl90_course.before_last_session) the same macro
-- not_on_track_reason as the nightly flag is applied, against the expected course fitted
-- WITHOUT the episode's own back-test fold ('without_fold_k'), so that no episode is judged
-- against a course it helped to make. One row per episode: flagged before the last session
-- or not, the first flag's session and reason, and how the episode ended.
WITH
complete_episodes AS (
    SELECT concern_id, episode_id, location_id, reliable_change
    FROM marts.episode_outcomes
    WHERE has_complete_scores AND reliable_change IS NOT NULL
),

replayed AS (
    SELECT
        m.concern_id,
        m.episode_id,
        m.measurement_id,
        m.administered_on,
        m.session,
        not_on_track_reason(
            m.score, m.pre_score,
            f.score,
            m.rc_threshold) AS reason
    FROM outcomes.scl90_course AS m
    LEFT JOIN outcomes.expected_course_fits AS f
      ON f.fit = 'without_fold_' || m.fold AND f.intake_band = m.intake_band
     AND f.session_bin_from = m.session_bin_from AND f.percentile = getvariable('not_on_track_percentile')
    WHERE m.is_closed AND m.before_last_session
),

per_episode AS (
    SELECT
        concern_id,
        episode_id,
        count(*) AS n_replayed,
        count(reason) AS n_flags,
        arg_min({'session': session, 'reason': reason}, (administered_on, measurement_id))
            FILTER (WHERE reason IS NOT NULL) AS first_flag
    FROM replayed
    GROUP BY concern_id, episode_id
)

SELECT
    c.concern_id,
    c.episode_id,
    c.location_id,
    backtest_fold(c.concern_id, c.episode_id) AS fold,
    coalesce(p.n_replayed, 0) AS n_replayed,
    coalesce(p.n_flags, 0) > 0 AS flagged,
    p.first_flag.session AS first_flag_session,
    p.first_flag.reason AS first_flag_reason,
    c.reliable_change,
    c.reliable_change = 'deteriorated' AS ended_deteriorated,
    c.reliable_change IN ('deteriorated', 'unchanged') AS ended_not_improved
FROM complete_episodes AS c
LEFT JOIN per_episode AS p ON p.concern_id = c.concern_id AND p.episode_id = c.episode_id
ORDER BY c.concern_id, c.episode_id
