-- Offending episodes of marts.episode_outcomes: percentage improvement outside
-- [-cap, 100] (or not a number), present without complete scores or missing
-- with them, or a value that disagrees with its rule code (design s1).
SELECT
    concern_id,
    episode_id,
    has_complete_scores,
    improvement_rule,
    pct_improvement
FROM marts.episode_outcomes
WHERE isnan(pct_improvement)
   OR pct_improvement < -getvariable('improvement_cap')
   OR pct_improvement > 100
   OR has_complete_scores IS DISTINCT FROM (pct_improvement IS NOT NULL)
   OR has_complete_scores IS DISTINCT FROM (improvement_rule IS NOT NULL)
   OR (improvement_rule = 'post_at_or_below_norm' AND pct_improvement <> 100)
   OR (improvement_rule IN ('pre_at_or_below_norm', 'capped_deterioration')
       AND pct_improvement <> -getvariable('improvement_cap'))
   OR (improvement_rule IS NOT NULL
       AND improvement_rule NOT IN ('post_at_or_below_norm', 'pre_at_or_below_norm', 'capped_deterioration', 'formula'))
