-- outcomes.instrument_outcomes: one row per (concern, episode, instrument of the
-- registry). It holds the pre- and post-measurement picked by the date windows
-- of design s1, their scores, the raw change and the Jacobson & Truax (1991)
-- reliable-change category. The same selection applies to every instrument;
-- percentage improvement (SCL90 only) is computed in marts.episode_outcomes.
--
-- Every episode gets a row for every instrument, including instruments it has
-- no measurement of. An auditor can then see "no pre-score" as a row with an
-- empty pre and n_valid_measurements = 0, instead of a row that is missing.
--
-- Ids are unique only within a concern. staging holds each concern's current
-- delivery, and every join also uses concern_id and delivery_id, so two
-- concerns that share an episode or measurement id are never mixed.
WITH
episodes AS (
    SELECT
        concern_id,
        delivery_id,
        episode_id,
        start_date,
        end_date,
        end_date IS NOT NULL AS is_closed,
        -- Window edges, both included (design s1). Sizes come from the parameters.
        start_date - getvariable('pre_window_days_before_start')::INTEGER AS pre_window_from,
        start_date + getvariable('pre_window_days_after_start')::INTEGER AS pre_window_to,
        end_date - getvariable('post_window_days_before_end')::INTEGER AS post_window_from,
        end_date + getvariable('post_window_days_after_end')::INTEGER AS post_window_to
    FROM {{ concern_rows('staging.episodes') }}
),

instruments AS (
    SELECT
        code AS instrument,
        higher_is,
        rc_cutoff,
        -- Jacobson & Truax: S_diff = sqrt(2) * s_pre * sqrt(1 - r_xx). A change
        -- is reliable when |pre - post| > z * S_diff. The threshold is NULL when
        -- the registry has no constants for the instrument.
        getvariable('reliable_change_z') * sqrt(2) * rc_s_pre * sqrt(1 - rc_r_xx) AS rc_threshold
    FROM config.instruments
),

valid_measurements AS (
    -- staging.measurement_scores holds only measurements that passed validation
    -- (quarantined ones are absent). A row without a total cannot be a score.
    SELECT
        concern_id,
        delivery_id,
        episode_id,
        instrument,
        measurement_id,
        administered_on,
        session_number,
        total_score
    FROM {{ concern_rows('staging.measurement_scores') }}
    WHERE total_score IS NOT NULL
),

measurements_per_instrument AS (
    -- n_administration_dates (ROM adherence): the days it was administered during the
    -- treatment, from the start of the pre window to the end of the post window (a
    -- follow-up months after the end is not part of it); two valid measurements on
    -- one day are one evaluation moment.
    SELECT
        m.concern_id,
        m.delivery_id,
        m.episode_id,
        m.instrument,
        count(*) AS n_valid_measurements,
        count(DISTINCT m.administered_on) FILTER (
            WHERE m.administered_on >= e.pre_window_from
              AND (e.post_window_to IS NULL OR m.administered_on <= e.post_window_to)
        ) AS n_administration_dates
    FROM valid_measurements AS m
    JOIN episodes AS e
      ON e.concern_id = m.concern_id
     AND e.delivery_id = m.delivery_id
     AND e.episode_id = m.episode_id
    GROUP BY m.concern_id, m.delivery_id, m.episode_id, m.instrument
),

pre_measurements AS (
    -- The earliest valid measurement in the pre window. Same date: the smaller
    -- measurement_id (compared as text, the contract's type), so every run
    -- picks the same row: arg_min orders by the pair (date, id).
    SELECT
        m.concern_id,
        m.delivery_id,
        m.episode_id,
        m.instrument,
        arg_min({'measurement_id': m.measurement_id, 'administered_on': m.administered_on,
                 'total_score': m.total_score},
                (m.administered_on, m.measurement_id)) AS measurement
    FROM valid_measurements AS m
    JOIN episodes AS e
      ON e.concern_id = m.concern_id
     AND e.delivery_id = m.delivery_id
     AND e.episode_id = m.episode_id
    WHERE m.administered_on BETWEEN e.pre_window_from AND e.pre_window_to
    GROUP BY m.concern_id, m.delivery_id, m.episode_id, m.instrument
),

post_measurements AS (
    -- Closed episodes only: the latest valid measurement in the post window on
    -- a later date than the pre-measurement when there is one (two measurements
    -- on the same day are no change over the treatment, so a same-day pair never
    -- forms pre and post). Same date: the larger measurement_id.
    SELECT
        m.concern_id,
        m.delivery_id,
        m.episode_id,
        m.instrument,
        arg_max({'measurement_id': m.measurement_id, 'administered_on': m.administered_on,
                 'total_score': m.total_score},
                (m.administered_on, m.measurement_id)) AS measurement
    FROM valid_measurements AS m
    JOIN episodes AS e
      ON e.concern_id = m.concern_id
     AND e.delivery_id = m.delivery_id
     AND e.episode_id = m.episode_id
    LEFT JOIN pre_measurements AS pre
      ON pre.concern_id = m.concern_id
     AND pre.delivery_id = m.delivery_id
     AND pre.episode_id = m.episode_id
     AND pre.instrument = m.instrument
    WHERE e.is_closed
      AND m.administered_on BETWEEN e.post_window_from AND e.post_window_to
      AND (pre.measurement IS NULL OR m.administered_on > pre.measurement.administered_on)
    GROUP BY m.concern_id, m.delivery_id, m.episode_id, m.instrument
),

latest_measurements AS (
    -- For monitoring an ongoing treatment (design s2): the latest valid
    -- measurement on a later date than the pre-measurement, wherever it falls.
    SELECT
        m.concern_id,
        m.delivery_id,
        m.episode_id,
        m.instrument,
        arg_max({'measurement_id': m.measurement_id, 'administered_on': m.administered_on,
                 'session_number': m.session_number, 'total_score': m.total_score},
                (m.administered_on, m.measurement_id)) AS measurement
    FROM valid_measurements AS m
    JOIN pre_measurements AS pre
      ON pre.concern_id = m.concern_id
     AND pre.delivery_id = m.delivery_id
     AND pre.episode_id = m.episode_id
     AND pre.instrument = m.instrument
    WHERE m.administered_on > pre.measurement.administered_on
    GROUP BY m.concern_id, m.delivery_id, m.episode_id, m.instrument
),

paired AS (
    SELECT
        e.concern_id,
        e.delivery_id,
        e.episode_id,
        i.instrument,
        i.higher_is,
        e.is_closed,
        coalesce(n.n_valid_measurements, 0) AS n_valid_measurements,
        coalesce(n.n_administration_dates, 0) AS n_administration_dates,
        pre.measurement.measurement_id AS pre_measurement_id,
        pre.measurement.administered_on AS pre_administered_on,
        pre.measurement.total_score AS pre_score,
        post.measurement.measurement_id AS post_measurement_id,
        post.measurement.administered_on AS post_administered_on,
        post.measurement.total_score AS post_score,
        latest.measurement.measurement_id AS latest_measurement_id,
        latest.measurement.administered_on AS latest_administered_on,
        latest.measurement.session_number AS latest_session_number,
        latest.measurement.total_score AS latest_score,
        i.rc_threshold,
        i.rc_cutoff
    FROM episodes AS e
    CROSS JOIN instruments AS i
    LEFT JOIN measurements_per_instrument AS n
      ON n.concern_id = e.concern_id AND n.delivery_id = e.delivery_id
     AND n.episode_id = e.episode_id AND n.instrument = i.instrument
    LEFT JOIN pre_measurements AS pre
      ON pre.concern_id = e.concern_id AND pre.delivery_id = e.delivery_id
     AND pre.episode_id = e.episode_id AND pre.instrument = i.instrument
    LEFT JOIN post_measurements AS post
      ON post.concern_id = e.concern_id AND post.delivery_id = e.delivery_id
     AND post.episode_id = e.episode_id AND post.instrument = i.instrument
    LEFT JOIN latest_measurements AS latest
      ON latest.concern_id = e.concern_id AND latest.delivery_id = e.delivery_id
     AND latest.episode_id = e.episode_id AND latest.instrument = i.instrument
),

oriented_changes AS (
    -- improvement > 0 always means "better": pre - post where a higher score is
    -- worse (SCL90), post - pre where a higher score is better (WAV, CQI, WORK).
    SELECT
        *,
        post_score - pre_score AS raw_change,
        CASE higher_is WHEN 'worse' THEN pre_score - post_score ELSE post_score - pre_score END AS improvement,
        CASE higher_is WHEN 'worse' THEN pre_score - latest_score ELSE latest_score - pre_score END AS latest_improvement,
        -- "Recovered" needs the post-score on the healthy side of the cut-off:
        -- strictly below it where higher is worse, strictly above where higher is better.
        CASE higher_is WHEN 'worse' THEN post_score < rc_cutoff ELSE post_score > rc_cutoff END AS post_past_cutoff
    FROM paired
)

SELECT
    concern_id,
    delivery_id,
    episode_id,
    instrument,
    higher_is,
    is_closed,
    n_valid_measurements,
    n_administration_dates,
    pre_measurement_id,
    pre_administered_on,
    pre_score,
    post_measurement_id,
    post_administered_on,
    post_score,
    is_closed AND pre_score IS NOT NULL AND post_score IS NOT NULL AS has_complete_scores,
    raw_change,
    improvement,
    rc_threshold,
    CASE
        WHEN pre_score IS NULL OR post_score IS NULL OR rc_threshold IS NULL THEN NULL
        WHEN improvement > rc_threshold AND post_past_cutoff THEN 'recovered'
        WHEN improvement > rc_threshold THEN 'improved'
        WHEN -improvement > rc_threshold THEN 'deteriorated'
        ELSE 'unchanged'
    END AS reliable_change,
    -- Functioning (seed 000): a client works when WORK (hours a week) is above 0.
    CASE WHEN instrument = 'WORK' THEN pre_score > 0 END AS working_at_start,
    CASE WHEN instrument = 'WORK' THEN post_score > 0 END AS working_at_end,
    latest_measurement_id,
    latest_administered_on,
    latest_session_number,
    latest_score,
    latest_improvement,
    CASE
        WHEN latest_improvement IS NULL OR rc_threshold IS NULL THEN NULL
        WHEN latest_improvement > rc_threshold THEN 'improved'
        WHEN -latest_improvement > rc_threshold THEN 'deteriorated'
        ELSE 'unchanged'
    END AS latest_reliable_change
FROM oriented_changes
ORDER BY concern_id, episode_id, instrument
