-- Offending rows of marts.indicators: a value or its CI outside the range the
-- indicator can take (config.indicator_catalogue: 0..100 for a percentage,
-- -improvement_cap..100 for mean improvement, the CQI range for satisfaction), a CI
-- that does not contain its value (1e-9 absorbs floating-point noise), or a value
-- that is not a number.
SELECT
    i.concern_id,
    i.level,
    i.unit_id,
    i.period_type,
    i.period,
    i.indicator,
    i.aggregation,
    i.value,
    i.ci_low,
    i.ci_high
FROM marts.indicators AS i
JOIN config.indicator_catalogue AS d ON d.indicator = i.indicator
WHERE isnan(i.value)
   OR i.value < d.lower_bound OR i.value > d.upper_bound
   OR i.ci_low < d.lower_bound OR i.ci_high > d.upper_bound
   OR i.ci_low > i.value + 1e-9
   OR i.ci_high < i.value - 1e-9
   OR i.ci_low > i.ci_high
