-- Shown case-mix figures that disagree with their indicator figure or break the interval's shape.
SELECT c.concern_id, c.level, c.unit_id, c.period_type, c.period, c.indicator
FROM marts.casemix_adjusted AS c
LEFT JOIN marts.indicators AS i
  ON i.aggregation = 'episodes' AND i.level = c.level AND i.concern_id = c.concern_id
 AND i.unit_id = c.unit_id AND i.period_type = c.period_type AND i.period = c.period AND i.indicator = c.indicator
WHERE NOT c.suppressed
  AND (i.level IS NULL OR i.n <> c.n OR abs(i.value - c.observed) > 1e-9 * greatest(1, abs(i.value))
       OR (c.indicator LIKE 'pct\_%' ESCAPE '\' AND (c.expected < -1e-9 OR c.expected > 100 + 1e-9))
       OR NOT isfinite(c.expected) OR NOT isfinite(c.se) OR c.ci_low > c.difference OR c.ci_high < c.difference
       OR c.limit_998 < c.limit_95)
