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
