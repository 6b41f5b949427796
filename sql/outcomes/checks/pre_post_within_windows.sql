-- Offending rows of outcomes.instrument_outcomes: a pre-measurement outside the
-- pre window, a post-measurement outside the post window, a post on an open
-- episode, a post not on a later date than the pre, or a second row for the
-- same episode and instrument. Windows include both ends (design s1).
WITH
selections AS (
    SELECT
        o.concern_id,
        o.episode_id,
        o.instrument,
        o.pre_measurement_id,
        o.pre_administered_on,
        o.post_measurement_id,
        o.post_administered_on,
        e.start_date,
        e.end_date
    FROM outcomes.instrument_outcomes AS o
    JOIN staging.episodes AS e
      ON e.concern_id = o.concern_id AND e.delivery_id = o.delivery_id AND e.episode_id = o.episode_id
),

breaches AS (
    SELECT concern_id, episode_id, instrument, 'pre_outside_window' AS problem
    FROM selections
    WHERE pre_administered_on NOT BETWEEN start_date - getvariable('pre_window_days_before_start')::INTEGER
                                      AND start_date + getvariable('pre_window_days_after_start')::INTEGER
    UNION ALL
    SELECT concern_id, episode_id, instrument, 'post_outside_window'
    FROM selections
    WHERE post_administered_on NOT BETWEEN end_date - getvariable('post_window_days_before_end')::INTEGER
                                       AND end_date + getvariable('post_window_days_after_end')::INTEGER
    UNION ALL
    SELECT concern_id, episode_id, instrument, 'post_on_open_episode'
    FROM selections
    WHERE post_measurement_id IS NOT NULL AND end_date IS NULL
    UNION ALL
    SELECT concern_id, episode_id, instrument, 'post_not_after_pre'
    FROM selections
    WHERE post_administered_on <= pre_administered_on
),

duplicates AS (
    SELECT concern_id, episode_id, instrument, 'more_than_one_row' AS problem
    FROM outcomes.instrument_outcomes
    GROUP BY concern_id, episode_id, instrument
    HAVING count(*) > 1
)

SELECT concern_id, episode_id, instrument, problem FROM breaches
UNION ALL
SELECT concern_id, episode_id, instrument, problem FROM duplicates
