-- marts.concern_summary: the summary quality indicator (samenvattende
-- kwaliteitsindicator, seed 001 bijlage 2) per concern and year: the mean of the
-- concern's oriented z-scores (lower-is-better indicators sign-flipped, so positive
-- always means above average), with the number of indicators it rests on.
-- cluster 'all' is the overall summary; one row per cluster CQ, kernset and FP beside it.
-- Every indicator weighs the same, as in the seed.
--
-- Every concern-year known to the benchmark (an annual report or any indicator) gets
-- all four clusters for peer group 'all', and for 'size_group' when it has one.
-- With no z-score in a cluster the row says so: summary_z NULL, n_indicators 0
-- (the seed: "Het is goed mogelijk dat het concern geen score heeft").
WITH concern_years AS (
    SELECT concern_id, year FROM marts.concern_size_groups
    UNION
    SELECT concern_id, year FROM marts.concern_benchmark
),

clusters (cluster) AS (
    VALUES ('all'), ('CQ'), ('kernset'), ('FP')
),

peer_groups AS (
    SELECT cy.concern_id, cy.year, 'all' AS peer_group, g.size_group
    FROM concern_years AS cy
    LEFT JOIN marts.concern_size_groups AS g USING (concern_id, year)
    UNION ALL
    SELECT concern_id, year, 'size_group' AS peer_group, size_group
    FROM marts.concern_size_groups
    WHERE size_group IS NOT NULL
),

-- Each scored indicator counts in its own cluster and in 'all'.
oriented_scores AS (
    SELECT concern_id, year, peer_group, cluster, z_oriented
    FROM marts.concern_benchmark
    WHERE z_oriented IS NOT NULL
    UNION ALL
    SELECT concern_id, year, peer_group, 'all' AS cluster, z_oriented
    FROM marts.concern_benchmark
    WHERE z_oriented IS NOT NULL
),

cluster_means AS (
    SELECT concern_id, year, peer_group, cluster,
           avg(z_oriented) AS summary_z,
           count(*) AS n_indicators
    FROM oriented_scores
    GROUP BY concern_id, year, peer_group, cluster
)

SELECT
    pg.concern_id,
    pg.year,
    c.cluster,
    m.summary_z,
    coalesce(m.n_indicators, 0) AS n_indicators,
    pg.peer_group,
    pg.size_group
FROM peer_groups AS pg
CROSS JOIN clusters AS c
LEFT JOIN cluster_means AS m
    ON m.concern_id = pg.concern_id AND m.year = pg.year
   AND m.peer_group = pg.peer_group AND m.cluster = c.cluster
ORDER BY pg.concern_id, pg.year, pg.peer_group, c.cluster
