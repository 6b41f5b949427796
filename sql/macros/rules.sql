-- Rules that several models share, defined once. Loaded as TEMP macros on every
-- connection by rom_pipeline.config.apply_parameters, so they never end up in a
-- published file.

-- Does a value meet its target? NULL without a value or a target (seed 000 targets).
CREATE OR REPLACE TEMP MACRO meets_target(value, comparator, target) AS
    CASE
        WHEN value IS NULL OR target IS NULL THEN NULL
        WHEN comparator = '>=' THEN value >= target
        WHEN comparator = '>' THEN value > target
        WHEN comparator = '<=' THEN value <= target
        WHEN comparator = '<' THEN value < target
        ELSE error('indicator target has an unknown comparator: ' || comparator)
    END;

-- Why a figure resting on n episodes is not shown, or NULL when it may be (design s2,
-- small numbers: fewer than min_n episodes). Every published figure's suppressed flag
-- and suppression_reason derive from it; reports and exports read the flag.
CREATE OR REPLACE TEMP MACRO small_number_reason(n) AS
    CASE WHEN n < getvariable('min_n') THEN 'n_below_min_n' END;

-- The last day of a period of marts.indicators ('2025-07', '2025-Q3', '2025').
CREATE OR REPLACE TEMP MACRO period_end(period_type, period) AS
    CASE period_type
        WHEN 'month' THEN last_day(strptime(period || '-01', '%Y-%m-%d'))::DATE
        WHEN 'quarter' THEN (make_date(CAST(left(period, 4) AS INTEGER), CAST(right(period, 1) AS INTEGER) * 3, 1)
                             + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE
        WHEN 'year' THEN make_date(CAST(period AS INTEGER), 12, 31)
    END;
