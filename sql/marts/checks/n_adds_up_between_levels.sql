-- Offending sums of n_closed (aggregation 'episodes') in marts.indicators:
-- per concern and period, the therapists' n and the locations' n must each add
-- up to the concern's n; per period, the concerns' n must add up to the n of
-- level 'all', which must equal the closed episodes of marts.episode_outcomes
-- ending in that period (each episode counted once, at every level).
WITH
n_closed AS (
    SELECT level, concern_id, period_type, period, n
    FROM marts.indicators
    WHERE indicator = 'n_closed' AND aggregation = 'episodes'
),

closed_episodes_by_period AS (
    SELECT p.period_type, p.period, count(*) AS n
    FROM marts.episode_outcomes AS e
    CROSS JOIN LATERAL (VALUES
        ('month', period_of('month', e.end_date)),
        ('quarter', period_of('quarter', e.end_date)),
        ('year', period_of('year', e.end_date))
    ) AS p(period_type, period)
    WHERE e.is_closed
    GROUP BY p.period_type, p.period
),

parts AS (
    SELECT level AS parts, concern_id, period_type, period, sum(n) AS n
    FROM n_closed
    WHERE level IN ('therapist', 'location')
    GROUP BY level, concern_id, period_type, period
    UNION ALL
    SELECT 'concern', NULL, period_type, period, sum(n)
    FROM n_closed
    WHERE level = 'concern'
    GROUP BY period_type, period
    UNION ALL
    SELECT 'episode_outcomes', NULL, period_type, period, n
    FROM closed_episodes_by_period
),

wholes AS (
    -- the therapists' parts only for the periods their figures are computed in (lib/audience.py)
    SELECT 'therapist' AS parts, concern_id, period_type, period, n
    FROM (SELECT * REPLACE ('therapist' AS level) FROM n_closed WHERE level = 'concern') AS therapist_wholes
    WHERE {{ figure_computed() }}
    UNION ALL
    SELECT 'location', concern_id, period_type, period, n FROM n_closed WHERE level = 'concern'
    UNION ALL
    SELECT 'concern', NULL, period_type, period, n FROM n_closed WHERE level = 'all'
    UNION ALL
    SELECT 'episode_outcomes', NULL, period_type, period, n FROM n_closed WHERE level = 'all'
)

SELECT
    coalesce(p.parts, w.parts) AS parts,
    coalesce(p.concern_id, w.concern_id) AS concern_id,
    coalesce(p.period_type, w.period_type) AS period_type,
    coalesce(p.period, w.period) AS period,
    p.n AS parts_n,
    w.n AS whole_n
FROM parts AS p
FULL JOIN wholes AS w
  ON w.parts = p.parts
 AND w.concern_id IS NOT DISTINCT FROM p.concern_id
 AND w.period_type = p.period_type
 AND w.period = p.period
WHERE p.n IS DISTINCT FROM w.n
