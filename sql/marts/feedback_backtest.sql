-- marts.feedback_backtest (published, analysts): how well the not-on-track rule would have
-- warned, per concern and over all concerns (docs/feedback.md). From
-- outcomes.feedback_backtest_episodes:
--   sensitivity = of the episodes that ended deteriorated (reliable change), the share
--                 flagged before their last session;
--   precision   = of the episodes flagged before their last session, the share that ended
--                 deteriorated or unchanged (not reliably improved).
-- Seed 000 (Hannan et al. 2005): an algorithm predicted 77% of the negative outcomes, the
-- clinicians 3 of 40. Each share is suppressed like every published percentage: fewer than
-- min_n episodes in its denominator, or a numerator or complement of 1..4 (macros
-- small_number_reason, small_count_reason).
WITH
counts AS (
    SELECT
        CASE WHEN grouping(concern_id) = 0 THEN 'concern' ELSE 'all' END AS level,
        concern_id,
        count(*) AS n_episodes,
        count(*) FILTER (WHERE n_replayed > 0) AS n_replayed,
        count(*) FILTER (WHERE ended_deteriorated) AS n_deteriorated,
        count(*) FILTER (WHERE ended_deteriorated AND flagged) AS n_deteriorated_flagged,
        count(*) FILTER (WHERE flagged) AS n_flagged,
        count(*) FILTER (WHERE flagged AND ended_not_improved) AS n_flagged_not_improved,
        count(*) FILTER (WHERE ended_not_improved) AS n_not_improved
    FROM outcomes.feedback_backtest_episodes
    GROUP BY GROUPING SETS ((concern_id), ())
)

SELECT
    level,
    concern_id,
    CASE WHEN level = 'all' THEN 'all' ELSE concern_id END AS unit_id,
    n_episodes,
    n_replayed,
    n_deteriorated,
    n_deteriorated_flagged,
    100.0 * n_deteriorated_flagged / nullif(n_deteriorated, 0) AS sensitivity,
    coalesce(small_number_reason(n_deteriorated),
             small_count_reason(n_deteriorated_flagged, n_deteriorated)) AS sensitivity_suppression_reason,
    n_flagged,
    n_flagged_not_improved,
    100.0 * n_flagged_not_improved / nullif(n_flagged, 0) AS precision,
    coalesce(small_number_reason(n_flagged),
             small_count_reason(n_flagged_not_improved, n_flagged)) AS precision_suppression_reason,
    n_not_improved,
    100.0 * n_not_improved / nullif(n_episodes, 0) AS base_rate_not_improved,
    getvariable('not_on_track_percentile') AS not_on_track_percentile,
    getvariable('expected_course_min_episodes') AS expected_course_min_episodes,
    getvariable('backtest_folds') AS backtest_folds
FROM counts
ORDER BY level DESC, concern_id
