-- marts.concern_size_groups: the size group (benchmark group by total revenue, seed 001)
-- of every concern and year with an annual report. One definition, used by
-- marts.financial_ratios, marts.concern_benchmark and marts.concern_summary.
--
-- Classes are bounded by revenue_total in euro. Default bounds 1, 10 and 100
-- million give four classes a decade apart (size_1: < EUR 1 M, size_2: 1-10 M,
-- size_3: 10-100 M, size_4: >= 100 M): Dutch mental-health concerns range from
-- care farms with a few hundred thousand euro (the seed's concern: EUR 171,342)
-- to institutions of several hundred million, so decades separate them better
-- than equal widths, and fixed bounds keep a concern's group stable when other
-- concerns come and go (quantile classes would not). A user overrides the
-- bounds with the DuckDB variable size_class_bounds_eur (a sorted list).
-- A lower bound belongs to its class: EUR 1,000,000 is size_2.
-- A concern without revenue_total that year has no size group (NULL).
WITH size_class_bounds AS (
    SELECT coalesce(
        CAST(getvariable('size_class_bounds_eur') AS DOUBLE[]),
        [1000000.0, 10000000.0, 100000000.0]
    ) AS bounds
),

concern_revenue AS (
    SELECT concern_id, year, CAST(revenue_total AS DOUBLE) AS revenue_total
    FROM staging.annual_reports
),

classified AS (
    SELECT
        r.concern_id,
        r.year,
        r.revenue_total,
        b.bounds,
        -- 1 + the number of bounds at or below the revenue: the class index.
        CASE WHEN r.revenue_total IS NOT NULL
             THEN 1 + len(list_filter(b.bounds, lambda bound: bound <= r.revenue_total))
        END AS class_index
    FROM concern_revenue AS r
    CROSS JOIN size_class_bounds AS b
)

SELECT
    concern_id,
    year,
    revenue_total,
    'size_' || class_index AS size_group,
    CASE WHEN class_index > 1 THEN bounds[class_index - 1] END AS size_group_min_eur,
    CASE WHEN class_index <= len(bounds) THEN bounds[class_index] END AS size_group_max_eur
FROM classified
ORDER BY concern_id, year
