-- marts.concern_size_groups: the size group (benchmark group by total revenue, seed 001)
-- of every concern and year with an annual report. One definition, used by
-- marts.financial_ratios, marts.concern_benchmark and marts.concern_summary.
--
-- Classes are bounded by revenue_total in euro: the parameter
-- benchmarks.size_class_bounds_eur (rom_pipeline/parameters.yaml, with its source;
-- default 1, 10 and 100 million: size_1 < EUR 1 M, size_2 1-10 M, size_3 10-100 M,
-- size_4 >= 100 M). k sorted bounds give k + 1 classes; a lower bound belongs to
-- its class (EUR 1,000,000 is size_2). A concern without revenue_total that year has
-- no size group (NULL). n_group_concerns counts the concerns of the group that year:
-- below benchmarks.min_size_group_peers no size-group z is computed (the z-scores
-- count the peers with a value per ratio or indicator, which can be fewer).
WITH size_class_bounds AS (
    SELECT CASE
        WHEN bounds IS NULL OR len(bounds) = 0 OR list_sort(bounds) <> bounds
             OR list_filter(bounds, lambda b: b IS NULL OR b <= 0) <> []
        THEN error('parameter benchmarks.size_class_bounds_eur must be a non-empty list of positive euro '
                   || 'amounts in increasing order, got ' || coalesce(CAST(bounds AS VARCHAR), 'nothing'))
        ELSE bounds
    END AS bounds
    FROM (SELECT CAST(getvariable('size_class_bounds_eur') AS DOUBLE[]) AS bounds)
),

concern_revenue AS (
    SELECT concern_id, year, CAST(revenue_total AS DOUBLE) AS revenue_total
    FROM {{ concern_rows('staging.annual_reports') }}
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
    CASE WHEN class_index <= len(bounds) THEN bounds[class_index] END AS size_group_max_eur,
    CASE WHEN class_index IS NOT NULL
         THEN count(*) OVER (PARTITION BY year, class_index)
    END AS n_group_concerns
FROM classified
ORDER BY concern_id, year
