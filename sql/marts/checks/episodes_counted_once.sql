-- Offending (concern, episode): not exactly one row in staging.episodes and
-- exactly one in marts.episode_outcomes. Two rows in staging would mean two
-- deliveries of one concern are mixed; zero or two rows in the outcomes would
-- drop or double-count an episode in every indicator.
WITH
staged AS (
    SELECT concern_id, episode_id, count(*) AS staged_rows
    FROM staging.episodes
    GROUP BY concern_id, episode_id
),

published AS (
    SELECT concern_id, episode_id, count(*) AS outcome_rows
    FROM marts.episode_outcomes
    GROUP BY concern_id, episode_id
)

SELECT
    coalesce(s.concern_id, p.concern_id) AS concern_id,
    coalesce(s.episode_id, p.episode_id) AS episode_id,
    s.staged_rows,
    p.outcome_rows
FROM staged AS s
FULL JOIN published AS p
  ON p.concern_id = s.concern_id AND p.episode_id = s.episode_id
WHERE s.staged_rows IS DISTINCT FROM 1 OR p.outcome_rows IS DISTINCT FROM 1
