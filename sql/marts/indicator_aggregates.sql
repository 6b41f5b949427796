-- marts.indicator_aggregates: every indicator of the catalogue, for every unit
-- and period, with its n and 95% confidence interval. Both published marts are
-- read from this one table, so the statistics are written once:
--   dimension = 'total'        -> marts.indicators (levels therapist, location,
--                                 concern, all; periods month, quarter, year;
--                                 aggregations episodes and mean_of_locations)
--   dimension = a case-mix one -> marts.indicator_breakdowns (levels location
--                                 and concern; periods quarter and year)
-- Periods are by the episode's end_date: an indicator describes the episodes
-- that closed in the period. Values are unrounded. This table is the working
-- table of the two marts, not itself published (it is not in warehouse.yaml).
WITH
indicator_definitions AS (
    -- From the indicator catalogue (rom_pipeline/parameters.yaml). kind decides the
    -- statistic and its interval (count: none; percentage: Wilson; mean: t).
    -- lower/upper bound: the range the indicator can take; an interval is clipped to
    -- it (a t interval on few episodes can reach past +100% improvement, which no
    -- episode can).
    SELECT indicator, kind, lower_bound, upper_bound
    FROM config.indicator_catalogue
),

closed_episodes AS (
    -- Indicators describe closed episodes; a missing case-mix attribute is its
    -- own category ('unknown') so that the categories of a dimension add up.
    SELECT
        concern_id,
        episode_id,
        location_id,
        therapist_id,
        strftime(end_date, '%Y-%m') AS end_month,
        strftime(end_date, '%Y') || '-Q' || quarter(end_date) AS end_quarter,
        strftime(end_date, '%Y') AS end_year,
        coalesce(diagnosis_group, 'unknown') AS diagnosis_group,
        coalesce(referrer, 'unknown') AS referrer,
        coalesce(care_type, 'unknown') AS care_type,
        coalesce(therapist_experience, 'unknown') AS therapist_experience,
        coalesce(baseline_severity_band, 'unknown') AS baseline_severity
    FROM marts.episode_outcomes
    WHERE is_closed
),

episode_measures AS (
    -- One row per closed episode and indicator, with its contribution x from
    -- outcomes.indicator_contributions (NULL = not in this indicator's n).
    -- Percentages are means of 0/100 contributions, so one mean serves every indicator.
    SELECT
        c.concern_id,
        c.location_id,
        c.therapist_id,
        c.end_month,
        c.end_quarter,
        c.end_year,
        c.diagnosis_group,
        c.referrer,
        c.care_type,
        c.therapist_experience,
        c.baseline_severity,
        m.indicator,
        m.x
    FROM closed_episodes AS c
    JOIN outcomes.indicator_contributions AS m
      ON m.concern_id = c.concern_id AND m.episode_id = c.episode_id
),

unit_cells AS (
    -- Sufficient statistics (n, sum, sum of squares) per therapist, location and
    -- month. Every unit and period of marts.indicators is a sum of these cells,
    -- so the episodes are scanned once however many levels are published.
    SELECT
        concern_id,
        location_id,
        therapist_id,
        end_month,
        end_quarter,
        end_year,
        indicator,
        count(x) AS n,
        sum(x) AS sum_x,
        sum(x * x) AS sum_x2
    FROM episode_measures
    GROUP BY concern_id, location_id, therapist_id, end_month, end_quarter, end_year, indicator
),

unit_cells_by_period AS (
    SELECT u.*, p.period_type, p.period
    FROM unit_cells AS u
    CROSS JOIN LATERAL (VALUES
        ('month', u.end_month),
        ('quarter', u.end_quarter),
        ('year', u.end_year)
    ) AS p(period_type, period)
),

total_cells AS (
    SELECT
        CASE
            WHEN grouping(therapist_id) = 0 THEN 'therapist'
            WHEN grouping(location_id) = 0 THEN 'location'
            WHEN grouping(concern_id) = 0 THEN 'concern'
            ELSE 'all'
        END AS level,
        concern_id,
        CASE
            WHEN grouping(therapist_id) = 0 THEN therapist_id
            WHEN grouping(location_id) = 0 THEN location_id
            WHEN grouping(concern_id) = 0 THEN concern_id
            ELSE 'all'
        END AS unit_id,
        period_type,
        period,
        'total' AS dimension,
        'total' AS category,
        indicator,
        sum(n)::BIGINT AS n,
        sum(sum_x) AS sum_x,
        sum(sum_x2) AS sum_x2
    FROM unit_cells_by_period
    GROUP BY GROUPING SETS (
        (period_type, period, indicator, concern_id, therapist_id),
        (period_type, period, indicator, concern_id, location_id),
        (period_type, period, indicator, concern_id),
        (period_type, period, indicator)
    )
),

case_mix_cells AS (
    -- The same sufficient statistics per location, quarter and case-mix profile.
    SELECT
        concern_id,
        location_id,
        end_quarter,
        end_year,
        diagnosis_group,
        referrer,
        care_type,
        therapist_experience,
        baseline_severity,
        indicator,
        count(x) AS n,
        sum(x) AS sum_x,
        sum(x * x) AS sum_x2
    FROM episode_measures
    GROUP BY concern_id, location_id, end_quarter, end_year, diagnosis_group, referrer, care_type,
             therapist_experience, baseline_severity, indicator
),

case_mix_cells_by_category AS (
    -- Case mix (seed 000, stage 2): each cell once per dimension, by quarter and
    -- year (months hold too few episodes per category to be of use).
    SELECT
        c.concern_id,
        c.location_id,
        p.period_type,
        p.period,
        d.dimension,
        d.category,
        c.indicator,
        c.n,
        c.sum_x,
        c.sum_x2
    FROM case_mix_cells AS c
    CROSS JOIN LATERAL (VALUES ('quarter', c.end_quarter), ('year', c.end_year)) AS p(period_type, period)
    CROSS JOIN LATERAL (VALUES
        ('diagnosis_group', c.diagnosis_group),
        ('referrer', c.referrer),
        ('care_type', c.care_type),
        ('therapist_experience', c.therapist_experience),
        ('baseline_severity', c.baseline_severity)
    ) AS d(dimension, category)
),

breakdown_cells AS (
    SELECT
        CASE WHEN grouping(location_id) = 0 THEN 'location' ELSE 'concern' END AS level,
        concern_id,
        CASE WHEN grouping(location_id) = 0 THEN location_id ELSE concern_id END AS unit_id,
        period_type,
        period,
        dimension,
        category,
        indicator,
        sum(n)::BIGINT AS n,
        sum(sum_x) AS sum_x,
        sum(sum_x2) AS sum_x2
    FROM case_mix_cells_by_category
    GROUP BY GROUPING SETS (
        (period_type, period, dimension, category, indicator, concern_id, location_id),
        (period_type, period, dimension, category, indicator, concern_id)
    )
),

episode_statistics AS (
    -- aggregation 'episodes': every episode weighs the same.
    SELECT
        c.level,
        c.concern_id,
        c.unit_id,
        c.period_type,
        c.period,
        c.dimension,
        c.category,
        c.indicator,
        'episodes' AS aggregation,
        c.n,
        NULL::BIGINT AS n_units,
        CASE
            WHEN d.kind = 'count' THEN c.n::DOUBLE
            WHEN c.n > 0 THEN c.sum_x / c.n
        END AS value,
        CASE WHEN d.kind = 'percentage' THEN round(c.sum_x / 100)::BIGINT END AS numerator,
        -- Sample standard deviation from the sums; greatest() absorbs rounding
        -- below zero when all values are equal.
        CASE WHEN d.kind = 'mean' AND c.n > 1
             THEN sqrt(greatest((c.sum_x2 - c.sum_x * c.sum_x / c.n) / (c.n - 1), 0)) END AS sd
    FROM (SELECT * FROM total_cells UNION ALL SELECT * FROM breakdown_cells) AS c
    JOIN indicator_definitions AS d ON d.indicator = c.indicator
),

location_means AS (
    -- aggregation 'mean_of_locations' (seed 000: the organisation's score is the
    -- mean of its locations' scores): every location weighs the same, whatever
    -- its size. At level 'all' it is the mean over all locations of all
    -- concerns. A location without a value for the indicator (n = 0) does not
    -- take part. n = the episodes behind the mean (sum over its locations),
    -- n_units = the locations behind it. A count (n_closed) is not a score:
    -- it has no mean over locations.
    SELECT
        CASE WHEN grouping(concern_id) = 0 THEN 'concern' ELSE 'all' END AS level,
        concern_id,
        CASE WHEN grouping(concern_id) = 0 THEN concern_id ELSE 'all' END AS unit_id,
        period_type,
        period,
        'total' AS dimension,
        'total' AS category,
        indicator,
        'mean_of_locations' AS aggregation,
        sum(n)::BIGINT AS n,
        count(value) AS n_units,
        avg(value) AS value,
        NULL::BIGINT AS numerator,
        stddev_samp(value) AS sd
    FROM episode_statistics
    WHERE level = 'location' AND dimension = 'total'
      AND indicator IN (SELECT indicator FROM indicator_definitions WHERE kind <> 'count')
    GROUP BY GROUPING SETS (
        (period_type, period, indicator, concern_id),
        (period_type, period, indicator)
    )
),

statistics AS (
    SELECT * FROM episode_statistics
    UNION ALL
    SELECT * FROM location_means
),

-- BEGIN confidence quantiles ------------------------------------------------
-- DuckDB has no normal or t quantile function. z: Acklam's rational
-- approximation of the normal quantile (relative error < 1.2e-9). t with df
-- degrees of freedom: exact closed forms for df = 1 and 2; for df >= 3 the
-- Cornish-Fisher expansion in z to 1/df^4 (Abramowitz & Stegun 26.7.5), whose
-- error at 95% is < 0.004 for df >= 3 and < 0.0003 for df >= 5 (figures on so
-- few episodes are suppressed anyway). Tested against t tables in
-- tests/test_indicators.py.
confidence_probability AS (
    SELECT
        getvariable('confidence_level')::DOUBLE AS confidence_level,
        (1 + getvariable('confidence_level')::DOUBLE) / 2 AS p
),

normal_quantile AS (
    SELECT
        confidence_level,
        p,
        CASE
            WHEN p <= 0.97575 THEN
                (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
                    + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q
                / (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
                    + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1)
            ELSE
                -(((((-7.784894002430293e-03 * u - 3.223964580411365e-01) * u - 2.400758277161838e+00) * u
                    - 2.549732539343734e+00) * u + 4.374664141464968e+00) * u + 2.938163982698783e+00)
                / ((((7.784695709041462e-03 * u + 3.224671290700398e-01) * u + 2.445134137142996e+00) * u
                    + 3.754408661907416e+00) * u + 1)
        END AS z
    FROM (
        SELECT
            confidence_level,
            p,
            p - 0.5 AS q,
            (p - 0.5) * (p - 0.5) AS r,
            sqrt(-2 * ln(greatest(1 - p, 1e-300))) AS u
        FROM confidence_probability
    ) AS quantile_terms
),

degrees_of_freedom AS (
    SELECT DISTINCT n - 1 AS df FROM statistics WHERE aggregation = 'episodes' AND n >= 2
    UNION
    SELECT DISTINCT n_units - 1 AS df FROM statistics WHERE aggregation = 'mean_of_locations' AND n_units >= 2
),

t_quantiles AS (
    SELECT
        f.df,
        CASE
            WHEN f.df = 1 THEN tan(pi() * (z.p - 0.5))
            WHEN f.df = 2 THEN (2 * z.p - 1) / sqrt(2 * z.p * (1 - z.p))
            ELSE z.z
                + (z.z ^ 3 + z.z) / (4 * f.df)
                + (5 * z.z ^ 5 + 16 * z.z ^ 3 + 3 * z.z) / (96 * f.df ^ 2)
                + (3 * z.z ^ 7 + 19 * z.z ^ 5 + 17 * z.z ^ 3 - 15 * z.z) / (384 * f.df ^ 3)
                + (79 * z.z ^ 9 + 776 * z.z ^ 7 + 1482 * z.z ^ 5 - 1920 * z.z ^ 3 - 945 * z.z) / (92160 * f.df ^ 4)
        END AS t
    FROM degrees_of_freedom AS f
    CROSS JOIN normal_quantile AS z
),
-- END confidence quantiles --------------------------------------------------

intervals AS (
    SELECT
        s.*,
        d.kind,
        d.lower_bound,
        d.upper_bound,
        z.confidence_level,
        CASE
            WHEN d.kind = 'count' OR s.value IS NULL THEN NULL
            WHEN s.aggregation = 'mean_of_locations' THEN 't_over_locations'
            WHEN d.kind = 'percentage' THEN 'wilson'
            ELSE 't'
        END AS ci_method,
        -- Wilson score interval on the proportion p = value / 100.
        (s.value / 100 + z.z ^ 2 / (2 * s.n)) / (1 + z.z ^ 2 / s.n) AS wilson_centre,
        z.z / (1 + z.z ^ 2 / s.n)
            * sqrt((s.value / 100) * (1 - s.value / 100) / s.n + z.z ^ 2 / (4 * s.n ^ 2)) AS wilson_half_width,
        -- t interval: value +- t(df) * sd / sqrt(sample size); the sample is the
        -- episodes, or for mean_of_locations the locations.
        t.t * s.sd / sqrt(CASE WHEN s.aggregation = 'mean_of_locations' THEN s.n_units ELSE s.n END) AS t_half_width
    FROM statistics AS s
    JOIN indicator_definitions AS d ON d.indicator = s.indicator
    CROSS JOIN normal_quantile AS z
    LEFT JOIN t_quantiles AS t
      ON t.df = CASE WHEN s.aggregation = 'mean_of_locations' THEN s.n_units ELSE s.n END - 1
)

SELECT
    level,
    concern_id,
    unit_id,
    period_type,
    period,
    dimension,
    category,
    indicator,
    aggregation,
    value,
    n,
    n_units,
    numerator,
    sd,
    -- Clipped to the indicator's range. (greatest/least skip NULLs in DuckDB,
    -- so a missing interval is kept NULL explicitly.)
    CASE WHEN raw_ci_low IS NOT NULL THEN greatest(raw_ci_low, coalesce(lower_bound, raw_ci_low)) END AS ci_low,
    CASE WHEN raw_ci_high IS NOT NULL THEN least(raw_ci_high, coalesce(upper_bound, raw_ci_high)) END AS ci_high,
    ci_method,
    confidence_level
FROM (
    SELECT
        *,
        CASE ci_method
            -- The Wilson interval always contains the observed proportion;
            -- least/greatest remove floating-point noise at 0% and 100%.
            WHEN 'wilson' THEN least(100 * (wilson_centre - wilson_half_width), value)
            WHEN 't' THEN value - t_half_width
            WHEN 't_over_locations' THEN value - t_half_width
        END AS raw_ci_low,
        CASE ci_method
            WHEN 'wilson' THEN greatest(100 * (wilson_centre + wilson_half_width), value)
            WHEN 't' THEN value + t_half_width
            WHEN 't_over_locations' THEN value + t_half_width
        END AS raw_ci_high
    FROM intervals
) AS raw_intervals
ORDER BY dimension, level, concern_id, unit_id, period_type, period, category, indicator, aggregation
