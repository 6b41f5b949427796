-- Offending rows of marts.indicators: a percentage or its CI outside [0, 100],
-- a mean improvement or its CI outside [-cap, 100], a CI that does not contain
-- its value (1e-9 absorbs floating-point noise), or a value that is not a number.
SELECT
    concern_id,
    level,
    unit_id,
    period_type,
    period,
    indicator,
    aggregation,
    value,
    ci_low,
    ci_high
FROM marts.indicators
WHERE isnan(value)
   OR (starts_with(indicator, 'pct_')
       AND (value < 0 OR value > 100 OR ci_low < 0 OR ci_high > 100))
   OR (indicator = 'mean_improvement'
       AND (value < -getvariable('improvement_cap') OR value > 100
            OR ci_low < -getvariable('improvement_cap') OR ci_high > 100))
   OR ci_low > value + 1e-9
   OR ci_high < value - 1e-9
   OR ci_low > ci_high
