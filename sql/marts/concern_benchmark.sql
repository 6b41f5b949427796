-- marts.concern_benchmark: every quality indicator of every concern and year with its
-- z-score against two peer groups (seed 001, "Kwaliteit"):
--   peer_group 'all'        all concerns with a value for that indicator that year;
--   peer_group 'size_group' the concerns of the same size group (revenue class, see
--                           marts.concern_size_groups) that year. A concern without an
--                           annual report has no size group and so no such row. With
--                           fewer peers than benchmarks.min_size_group_peers: no z.
-- Indicators: the supplied ones (staging.quality_indicators, clusters CQ / kernset / FP)
-- plus the ROM indicators this pipeline computes per concern and year (the indicator
-- catalogue's entries with a cluster, with the catalogue's direction).
-- z = (value - peer_mean) / peer_sd with the sample sd; z_oriented flips the sign of
-- indicators where lower is better, so that in the summary positive = above average.
-- A row with a NULL value keeps the peer mean (the report shows "gemiddelde" beside
-- an empty "waarde", as the seed does) and has no z.
WITH rom_indicator_catalogue AS (
    -- The indicator catalogue's entries with a cluster (rom_pipeline/parameters.yaml);
    -- an entry without one (n_closed, a volume) is not benchmarked.
    SELECT
        indicator,
        benchmark_id AS indicator_id,
        'ROM: ' || label_nl AS indicator_name,
        cluster,
        higher_is_better
    FROM config.indicator_catalogue
    WHERE cluster IS NOT NULL
),

supplied_indicators AS (
    SELECT
        concern_id, year, indicator_id, indicator_name, cluster, higher_is_better,
        CAST(value AS DOUBLE) AS value,
        n,
        'reference' AS source
    FROM staging.quality_indicators
),

-- The concern's own value is the mean of its locations (seed 000), at year level.
-- Suppressed figures (fewer than min_n episodes) are left out: a published z-score
-- must not rest on them. So is a year that is still running (its export date lies
-- before 31 December) unless benchmark_running_year is set: part of a year is not
-- comparable with whole years.
rom_indicators AS (
    SELECT
        i.concern_id,
        CAST(i.period AS INTEGER) AS year,
        c.indicator_id,
        c.indicator_name,
        c.cluster,
        c.higher_is_better,
        CAST(i.value AS DOUBLE) AS value,
        CAST(i.n AS INTEGER) AS n,
        'rom_pipeline' AS source
    FROM marts.indicators AS i
    JOIN rom_indicator_catalogue AS c USING (indicator)
    WHERE i.level = 'concern'
      AND i.period_type = 'year'
      AND i.aggregation = 'mean_of_locations'
      AND NOT coalesce(i.suppressed, false)
      -- A year still running is left out unless the deployment includes it.
      AND (i.is_complete_period OR getvariable('benchmark_running_year'))
      AND i.concern_id IS NOT NULL
),

concern_indicators AS (
    SELECT concern_id, year, indicator_id, indicator_name, cluster, higher_is_better, value, n, source
    FROM supplied_indicators
    UNION ALL
    SELECT concern_id, year, indicator_id, indicator_name, cluster, higher_is_better, value, n, source
    FROM rom_indicators
),

-- Each indicator row once per peer group: 'all' always, 'size_group' when the
-- concern has one that year.
indicator_peer_groups AS (
    SELECT ci.concern_id, ci.year, ci.indicator_id, ci.indicator_name, ci.cluster, ci.higher_is_better,
           ci.value, ci.n, ci.source,
           'all' AS peer_group, g.size_group
    FROM concern_indicators AS ci
    LEFT JOIN marts.concern_size_groups AS g USING (concern_id, year)
    UNION ALL
    SELECT ci.concern_id, ci.year, ci.indicator_id, ci.indicator_name, ci.cluster, ci.higher_is_better,
           ci.value, ci.n, ci.source,
           'size_group' AS peer_group, g.size_group
    FROM concern_indicators AS ci
    JOIN marts.concern_size_groups AS g USING (concern_id, year)
    WHERE g.size_group IS NOT NULL
),

peer_statistics AS (
    SELECT
        concern_id, year, indicator_id, indicator_name, cluster, higher_is_better, value, n,
        source, peer_group, size_group,
        avg(value) OVER peers AS peer_mean,
        stddev_samp(value) OVER peers AS peer_sd,
        count(value) OVER peers AS n_peers
    FROM indicator_peer_groups
    -- The size group is part of the partition only for size-group rows.
    WINDOW peers AS (
        PARTITION BY year, indicator_id, peer_group,
                     CASE WHEN peer_group = 'size_group' THEN size_group END
    )
),

scored AS (
    SELECT
        concern_id, year, indicator_id, indicator_name, cluster, higher_is_better, value, n,
        source, peer_group, size_group, peer_mean, peer_sd, n_peers,
        -- At least two peers and a real spread (below 1e-9 of the mean is rounding noise);
        -- in a size group at least benchmarks.min_size_group_peers peers (two give +-0.71).
        CASE WHEN n_peers >= CASE WHEN peer_group = 'size_group'
                                  THEN greatest(2, getvariable('min_size_group_peers')) ELSE 2 END
              AND peer_sd > 1e-9 * greatest(1, abs(peer_mean))
             THEN (value - peer_mean) / peer_sd
        END AS z
    FROM peer_statistics
)

SELECT
    concern_id,
    year,
    indicator_id,
    cluster,
    value,
    peer_group,
    peer_mean,
    peer_sd,
    z,
    indicator_name,
    higher_is_better,
    CASE WHEN higher_is_better THEN z ELSE -z END AS z_oriented,
    n,
    n_peers,
    size_group,
    source
FROM scored
ORDER BY concern_id, year, cluster, indicator_id, peer_group
