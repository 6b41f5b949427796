-- marts.internal_benchmark: the benchmark within a concern (seed 000): locations
-- against locations, therapists against therapists, for every period and indicator.
-- Per unit: value with n and CI, the organisation average (the concern's
-- mean-of-locations value) and the deviation from it, the z-score among peers,
-- target met, and funnel-plot control limits (Spiegelhalter 2005) at 95% and 99.8%
-- for the unit's n, so that a small unit is not mistaken for an outlier.
-- Deliberately no rank: the seed warns against ranking lists; order by unit.
--
-- Peers of a unit (for z): the non-suppressed units of the same concern, level, period
-- and indicator with a value (the unit itself included when it is one of them).
-- The funnel is drawn around all units' pooled value (see funnel_centres).
-- Suppressed units keep their row and flag; publishing decides what a reader sees.
-- Method and choices: docs/benchmark-rules.md.
WITH unit_indicators AS (
    SELECT
        i.concern_id, i.level, i.unit_id, i.period_type, i.period, i.indicator,
        -- The catalogue's kind (config.indicator_catalogue); a count (n_closed) is a
        -- volume (it is every percentage's n already) and is not benchmarked.
        CASE d.kind WHEN 'percentage' THEN 'proportion' WHEN 'mean' THEN 'mean' END AS value_type,
        CAST(i.value AS DOUBLE) AS value,
        i.n, i.ci_low, i.ci_high, i.target, i.target_met,
        coalesce(i.suppressed, false) AS suppressed,
        i.suppression_reason,
        i.is_complete_period
    FROM marts.indicators AS i
    JOIN config.indicator_catalogue AS d ON d.indicator = i.indicator
    WHERE i.level IN ('location', 'therapist')
      AND i.concern_id IS NOT NULL
),

benchmarked_units AS (
    SELECT concern_id, level, unit_id, period_type, period, indicator, value_type, value, n,
           ci_low, ci_high, target, target_met, suppressed, suppression_reason, is_complete_period
    FROM unit_indicators
    WHERE value_type IS NOT NULL
),

organisation_values AS (
    SELECT concern_id, period_type, period, indicator, CAST(value AS DOUBLE) AS organisation_value
    FROM marts.indicators
    WHERE level = 'concern' AND aggregation = 'mean_of_locations'
),

-- Episode-level sd of a mean indicator over all the concern's episodes in the
-- period (the pooled sd of the funnel for means): the sample sd that
-- marts.indicators carries on the concern's 'episodes' row.
episode_sd AS (
    SELECT i.concern_id, i.period_type, i.period, i.indicator, CAST(i.sd AS DOUBLE) AS sd_episodes
    FROM marts.indicators AS i
    JOIN config.indicator_catalogue AS d ON d.indicator = i.indicator
    WHERE i.level = 'concern' AND i.aggregation = 'episodes' AND d.kind = 'mean'
),

peer_statistics AS (
    SELECT
        concern_id, level, period_type, period, indicator,
        avg(value) AS peer_mean,
        stddev_samp(value) AS peer_sd,
        count(*) AS n_peers
    FROM benchmarked_units
    WHERE NOT suppressed AND value IS NOT NULL
    GROUP BY concern_id, level, period_type, period, indicator
),

-- Funnel centre: the pooled value of all units of the level, weighted by n, small
-- (suppressed) units included: for a percentage, events / episodes over the whole
-- concern. A funnel plot exists to show small units against the whole, so they
-- belong in the target (only 'peers' for z must be reliable on their own); and a
-- month where every therapist is below min_n still gets a funnel. An unweighted
-- mean would let a unit of 3 episodes move the target as much as one of 300.
funnel_centres AS (
    SELECT
        concern_id, level, period_type, period, indicator,
        sum(value * n) / NULLIF(sum(n), 0) AS funnel_centre
    FROM benchmarked_units
    WHERE value IS NOT NULL AND n > 0
    GROUP BY concern_id, level, period_type, period, indicator
),

compared AS (
    SELECT
        u.concern_id, u.level, u.unit_id, u.period_type, u.period, u.indicator, u.value_type,
        u.value, u.n, u.ci_low, u.ci_high, u.suppressed, u.suppression_reason, u.is_complete_period,
        u.target, u.target_met,
        o.organisation_value,
        u.value - o.organisation_value AS deviation,
        p.peer_mean, p.peer_sd, p.n_peers,
        -- At least two peers and a real spread (below 1e-9 of the mean is rounding noise).
        CASE WHEN p.n_peers >= 2 AND p.peer_sd > 1e-9 * greatest(1, abs(p.peer_mean))
             THEN (u.value - p.peer_mean) / p.peer_sd
        END AS z,
        f.funnel_centre,
        -- Sd of one episode's outcome: binomial for a percentage (in percent points),
        -- the concern's episode-level sd for a mean.
        CASE u.value_type
            WHEN 'proportion' THEN sqrt(greatest(f.funnel_centre * (100 - f.funnel_centre), 0))
            WHEN 'mean' THEN s.sd_episodes
        END AS funnel_sd
    FROM benchmarked_units AS u
    LEFT JOIN organisation_values AS o
        USING (concern_id, period_type, period, indicator)
    LEFT JOIN peer_statistics AS p
        USING (concern_id, level, period_type, period, indicator)
    LEFT JOIN funnel_centres AS f
        USING (concern_id, level, period_type, period, indicator)
    LEFT JOIN episode_sd AS s
        USING (concern_id, period_type, period, indicator)
),

-- Limits centre +- z * sd / sqrt(n) with z = 1.959964 (95%) and 3.090232 (99.8%),
-- Spiegelhalter's two funnels.
funnel_limits AS (
    SELECT
        concern_id, level, unit_id, period_type, period, indicator, value_type, value, n,
        ci_low, ci_high, suppressed, suppression_reason, is_complete_period, target, target_met,
        organisation_value, deviation, peer_mean, peer_sd, n_peers, z, funnel_centre, funnel_sd,
        funnel_centre - 1.959964 * funnel_sd / sqrt(NULLIF(n, 0)) AS low_95,
        funnel_centre + 1.959964 * funnel_sd / sqrt(NULLIF(n, 0)) AS high_95,
        funnel_centre - 3.090232 * funnel_sd / sqrt(NULLIF(n, 0)) AS low_998,
        funnel_centre + 3.090232 * funnel_sd / sqrt(NULLIF(n, 0)) AS high_998
    FROM compared
)

SELECT
    concern_id,
    level,
    unit_id,
    period_type,
    period,
    indicator,
    value,
    n,
    ci_low,
    ci_high,
    organisation_value,
    deviation,
    peer_mean,
    peer_sd,
    n_peers,
    z,
    target,
    target_met,
    suppressed,
    suppression_reason,
    is_complete_period,
    value_type,
    funnel_centre,
    funnel_sd,
    -- A percentage's limits are drawn within 0..100 (DuckDB's greatest/least skip
    -- NULLs, so a missing limit is kept NULL explicitly). Clipping cannot change the
    -- outside flags: a percentage never lies beyond 0 or 100.
    CASE WHEN value_type = 'proportion' AND low_95 IS NOT NULL THEN greatest(0, low_95) ELSE low_95 END
        AS funnel_95_low,
    CASE WHEN value_type = 'proportion' AND high_95 IS NOT NULL THEN least(100, high_95) ELSE high_95 END
        AS funnel_95_high,
    CASE WHEN value_type = 'proportion' AND low_998 IS NOT NULL THEN greatest(0, low_998) ELSE low_998 END
        AS funnel_998_low,
    CASE WHEN value_type = 'proportion' AND high_998 IS NOT NULL THEN least(100, high_998) ELSE high_998 END
        AS funnel_998_high,
    value < low_95 OR value > high_95 AS outside_funnel_95,
    value < low_998 OR value > high_998 AS outside_funnel_998
FROM funnel_limits
ORDER BY concern_id, level, period_type, period, indicator, unit_id
