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
-- It reads the sufficient statistics of marts.indicator_cells (built concern by
-- concern); what needs every concern at once is here: the figures of all concerns
-- together, complementary suppression and the mean of locations.
{% from "macros/complementary.jinja" import complementary_pass %}
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

cells AS NOT MATERIALIZED (
    -- The sufficient statistics of every figure: per unit of one concern (therapist, location,
    -- the concern) from marts.indicator_cells, built concern by concern; all concerns together
    -- as the sum of the concerns' cells. Only the figures some output publishes: a therapist's
    -- month figure only where the deployment publishes therapist level (lib/audience.py, issue 11).
    SELECT level, concern_id, unit_id, period_type, period, dimension, category, indicator,
           n, sum_x, sum_x2, n_therapists
    FROM marts.indicator_cells
    WHERE {{ figure_computed() }}
    UNION ALL
    SELECT 'all' AS level, NULL::VARCHAR AS concern_id, 'all' AS unit_id, period_type, period,
           'total' AS dimension, 'total' AS category, indicator,
           sum(n)::BIGINT AS n, sum(sum_x) AS sum_x, sum(sum_x2) AS sum_x2, NULL::BIGINT AS n_therapists
    FROM marts.indicator_cells
    WHERE level = 'concern' AND dimension = 'total'
    GROUP BY period_type, period, indicator
),

episode_statistics AS NOT MATERIALIZED (
    -- aggregation 'episodes': every episode weighs the same. Not materialised (here and
    -- below, to own_reasons): each figure is computed from its cell where it is read, and
    -- the therapist figures stream from marts.indicator_cells to the table, never held.
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
        c.n_therapists,
        CASE
            WHEN d.kind = 'count' THEN c.n::DOUBLE
            WHEN c.n > 0 THEN c.sum_x / c.n
        END AS value,
        CASE WHEN d.kind = 'percentage' THEN round(c.sum_x / 100)::BIGINT END AS numerator,
        -- Sample standard deviation from the sums; greatest() absorbs rounding
        -- below zero when all values are equal.
        CASE WHEN d.kind = 'mean' AND c.n > 1
             THEN sqrt(greatest((c.sum_x2 - c.sum_x * c.sum_x / c.n) / (c.n - 1), 0)) END AS sd
    FROM cells AS c
    JOIN indicator_definitions AS d ON d.indicator = c.indicator
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
    SELECT DISTINCT n - 1 AS df FROM episode_statistics WHERE n >= 2
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

episode_intervals AS NOT MATERIALIZED (
    -- Wilson for percentages, t for means; raw_ci_* unclipped, se = the half-width / z
    -- (what a location brings to the interval of a mean of locations).
    SELECT
        *,
        CASE
            WHEN kind = 'percentage' THEN (raw_ci_high - raw_ci_low) / 2 / z
            WHEN kind = 'mean' THEN t_half_width / t
        END AS se
    FROM (
        SELECT
            s.*,
            d.kind,
            d.lower_bound,
            d.upper_bound,
            z.z,
            t.t,
            z.confidence_level,
            CASE
                WHEN d.kind = 'count' OR s.value IS NULL THEN NULL
                WHEN d.kind = 'percentage' THEN 'wilson'
                ELSE 't'
            END AS ci_method,
            t.t * s.sd / sqrt(s.n) AS t_half_width,
            -- Wilson score interval on the proportion p = value / 100; it always contains
            -- the observed proportion (least/greatest remove floating-point noise at 0 and 100).
            CASE WHEN d.kind = 'percentage' AND s.n > 0 THEN least(100 * (
                (s.value / 100 + z.z ^ 2 / (2 * s.n)) / (1 + z.z ^ 2 / s.n)
                - z.z / (1 + z.z ^ 2 / s.n) * sqrt((s.value / 100) * (1 - s.value / 100) / s.n + z.z ^ 2 / (4 * s.n ^ 2))
            ), s.value)
                 WHEN d.kind = 'mean' THEN s.value - t.t * s.sd / sqrt(s.n)
            END AS raw_ci_low,
            CASE WHEN d.kind = 'percentage' AND s.n > 0 THEN greatest(100 * (
                (s.value / 100 + z.z ^ 2 / (2 * s.n)) / (1 + z.z ^ 2 / s.n)
                + z.z / (1 + z.z ^ 2 / s.n) * sqrt((s.value / 100) * (1 - s.value / 100) / s.n + z.z ^ 2 / (4 * s.n ^ 2))
            ), s.value)
                 WHEN d.kind = 'mean' THEN s.value + t.t * s.sd / sqrt(s.n)
            END AS raw_ci_high
        FROM episode_statistics AS s
        JOIN indicator_definitions AS d ON d.indicator = s.indicator
        CROSS JOIN normal_quantile AS z
        LEFT JOIN t_quantiles AS t ON t.df = s.n - 1
    ) AS with_intervals
),

-- BEGIN suppression ----------------------------------------------------------
-- Decided once, here, for every figure; every published table, report and export
-- reads the flag (docs/outcome-rules.md, "Suppression").
own_reasons AS NOT MATERIALIZED (
    -- Primary suppression, on the figure's own numbers: fewer than min_n episodes; a
    -- percentage whose numerator, or whose complement (n - numerator), is a count from 1
    -- to min_count_published - 1 (value x n would give that count back); one therapist's
    -- category.
    SELECT
        i.*,
        coalesce(
            small_number_reason(i.n),
            CASE WHEN i.kind = 'percentage' THEN small_count_reason(i.numerator, i.n) END,
            CASE WHEN i.n_therapists < getvariable('min_therapists_per_category')
                 THEN 'therapists_below_min' END
        ) AS reason
    FROM episode_intervals AS i
),

shared_reasons_0 AS (
    -- What complementary suppression needs of the shared figures, and nothing more:
    -- therapist figures are not in the shared outputs, so they take no part in it
    -- (docs/outcome-rules.md), and the windows below sort narrow rows, not wide ones
    -- (issue 11: on wide rows of every level they were most of this model's time).
    SELECT level, concern_id, unit_id, period_type, period, dimension, category, indicator, n, reason
    FROM own_reasons
    WHERE level <> 'therapist'
),

{#- Complementary suppression in rounds: hiding a sibling for one total can leave another
    total (over the other hierarchy) with exactly one hidden part. Two rounds of both passes
    leave only totals whose one hidden part has no shown sibling to hide with it (a unit
    with a single category); a third round changes nothing on the sample. The check
    no_single_hidden_part lists what remains. #}
{%- set rounds = 2 %}
{%- for round in range(1, rounds + 1) %}
{%- set previous = "shared_reasons_" ~ (round - 1) %}
after_levels_{{ round }} AS (
    -- Over the levels: a shown parent (a concern; all concerns) with exactly one hidden part
    -- (a location; a concern). Per dimension and category alike.
    {{ complementary_pass(previous,
        siblings="level, CASE WHEN level = 'location' THEN concern_id END, period_type, period, dimension,
                  category, indicator",
        parent_on="parent.level = CASE r.level WHEN 'location' THEN 'concern' WHEN 'concern' THEN 'all' END
     AND parent.unit_id = CASE r.level WHEN 'location' THEN r.concern_id ELSE 'all' END
     AND parent.period_type = r.period_type AND parent.period = r.period AND parent.dimension = r.dimension
     AND parent.category = r.category AND parent.indicator = r.indicator") }}
),

shared_reasons_{{ round }} AS (
    -- Over the categories of a breakdown: a unit's shown total with exactly one hidden category.
    {{ complementary_pass("after_levels_" ~ round, is_part="r.dimension <> 'total'", tiebreak="category",
        siblings="level, concern_id, unit_id, period_type, period, dimension, indicator",
        parent_on="r.dimension <> 'total' AND parent.dimension = 'total' AND parent.level = r.level
     AND parent.concern_id IS NOT DISTINCT FROM r.concern_id AND parent.unit_id = r.unit_id
     AND parent.period_type = r.period_type AND parent.period = r.period AND parent.indicator = r.indicator") }}
),
{% endfor %}
shared_statistics AS (
    -- The shared figures with their reasons after complementary suppression, handed back by
    -- the figure's key (one row per key: aggregation is 'episodes' throughout).
    SELECT o.* EXCLUDE (reason), s.reason AS suppression_reason
    FROM own_reasons AS o
    JOIN shared_reasons_{{ rounds }} AS s
      ON s.level = o.level AND s.concern_id IS NOT DISTINCT FROM o.concern_id AND s.unit_id = o.unit_id
     AND s.period_type = o.period_type AND s.period = o.period AND s.dimension = o.dimension
     AND s.category = o.category AND s.indicator = o.indicator
    WHERE o.level <> 'therapist'
),

suppressed_statistics AS NOT MATERIALIZED (
    SELECT * EXCLUDE (reason), reason AS suppression_reason FROM own_reasons WHERE level = 'therapist'
    UNION ALL
    SELECT * FROM shared_statistics
),
-- END suppression ------------------------------------------------------------

location_means AS (
    -- aggregation 'mean_of_locations' (seed 000: the organisation's score is the
    -- mean of its locations' scores): every location weighs the same, whatever its
    -- size. Decision: the mean is over the locations whose own figure is shown (not
    -- suppressed): a hidden location's value would come back from the mean, and it is
    -- unreliable by definition. At level 'all': over the shown locations of all
    -- concerns. n = the episodes behind the mean, n_units = the locations. A count
    -- (n_closed) is not a score: it has no mean over locations. The interval reflects
    -- the episodes behind the mean: the locations' standard errors (their own
    -- intervals' half-width / z), se = sqrt(sum se_i^2) / n_units, value +- z se.
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
        coalesce(sum(n) FILTER (WHERE shown), 0)::BIGINT AS n,
        count(*) FILTER (WHERE shown) AS n_units,
        avg(value) FILTER (WHERE shown) AS value,
        NULL::BIGINT AS numerator,
        stddev_samp(value) FILTER (WHERE shown) AS sd,
        -- NULL when a location has no standard error (one episode): no honest interval.
        CASE WHEN count(se) FILTER (WHERE shown) = count(*) FILTER (WHERE shown)
             THEN sqrt(sum(se * se) FILTER (WHERE shown)) / count(*) FILTER (WHERE shown) END AS se,
        any_value(kind) AS kind,
        any_value(lower_bound) AS lower_bound,
        any_value(upper_bound) AS upper_bound,
        any_value(z) AS z,
        any_value(confidence_level) AS confidence_level
    FROM (
        SELECT *, suppression_reason IS NULL AND value IS NOT NULL AS shown
        FROM shared_statistics
        WHERE level = 'location' AND dimension = 'total' AND kind <> 'count'
    ) AS locations
    GROUP BY GROUPING SETS (
        (period_type, period, indicator, concern_id),
        (period_type, period, indicator)
    )
),

data_dates AS (
    -- The date each concern's figures describe: the export date of the delivery its
    -- episodes come from. A period that ends after it is still running.
    SELECT e.concern_id, max(d.export_date) AS export_date
    FROM (SELECT DISTINCT concern_id, delivery_id FROM marts.episode_outcomes) AS e
    JOIN audit.deliveries AS d ON d.delivery_id = e.delivery_id
    GROUP BY e.concern_id
),

statistics AS (
    SELECT
        level, concern_id, unit_id, period_type, period, dimension, category, indicator, aggregation,
        value, n, n_units, numerator, sd, ci_method, confidence_level, lower_bound, upper_bound,
        raw_ci_low, raw_ci_high, n_therapists, suppression_reason
    FROM suppressed_statistics
    UNION ALL
    SELECT
        level, concern_id, unit_id, period_type, period, dimension, category, indicator, aggregation,
        value, n, n_units, numerator, sd,
        CASE WHEN value IS NOT NULL AND se IS NOT NULL THEN 'normal_over_locations' END AS ci_method,
        confidence_level, lower_bound, upper_bound,
        value - z * se AS raw_ci_low,
        value + z * se AS raw_ci_high,
        NULL::BIGINT AS n_therapists,
        small_number_reason(n) AS suppression_reason
    FROM location_means
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
    confidence_level,
    suppression_reason IS NOT NULL AS suppressed,
    suppression_reason,
    n_therapists,
    -- All concerns together: complete when complete for every concern.
    period_end(period_type, period)
        <= coalesce(dd.export_date, (SELECT min(export_date) FROM data_dates)) AS is_complete_period
FROM statistics
LEFT JOIN data_dates AS dd USING (concern_id)
-- No ORDER BY: marts.indicators and marts.indicator_breakdowns order their own rows, and sorting
-- every figure here (tens of millions at tier L) was a spill of its own (issue 11).
