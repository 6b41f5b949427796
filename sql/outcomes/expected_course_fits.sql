-- outcomes.expected_course_fits: the expected SCL90 course (docs/feedback.md): per intake
-- band and session bin, percentiles of the scores of CLOSED episodes (Finch, Lambert &
-- Schaalje 2001: expected recovery curves for clients of similar intake severity).
-- Fits:
--   'all'             every closed episode: the course the nightly flag of open episodes
--                     uses, published as marts.expected_course;
--   'without_fold_k'  the closed episodes outside back-test fold k: the course that the
--                     back-test replays fold k's episodes against, so that no episode is
--                     judged against a course it helped to make.
-- A cell (band x bin) with fewer than expected_course_min_episodes episodes is merged with
-- the preceding session bins of its band (not with the intake bin, session 0) until it
-- has them; cell_from_bin says where the merged cell starts. When even all of them do not
-- reach it the cell has no percentiles (score NULL): the flag's second reason cannot fire
-- there. Percentiles over measurements (quantile_cont); n_episodes counts episodes.
--
-- How (issue 11: at tier L the direct form, every candidate cell's count(DISTINCT episode) and
-- percentiles over fits x measurements x candidate cells, spilled 21 GB at a 2 GB limit): the
-- candidate cells are chosen on counts alone, and percentiles are taken of the chosen cells only.
-- An episode is in the merged cell [a, b] when it has a measurement in a bin from a to b: counted
-- once, at the first of its bins from a on (its bin before that one is below a, or it has none).
-- So per fold, band, bin and the episode's previous bin, a count of episodes (a small table)
-- gives every candidate cell's n_episodes exactly; n_measurements is a sum of per-bin counts.
-- The fold is a function of the episode (macro backtest_fold), so the counts per fold add up
-- to each fit's.
{%- set percentiles = params.scalars['expected_course_percentiles'] %}
WITH
fits AS (
    SELECT 'all' AS fit, NULL::INTEGER AS left_out_fold
    UNION ALL
    SELECT 'without_fold_' || k, k::INTEGER FROM range(getvariable('backtest_folds')::BIGINT) AS f(k)
),

bins AS (
    SELECT unnest(getvariable('expected_course_session_bins'))::INTEGER AS bin_from
),

bin_ranges AS (
    -- Every candidate cell of a bin: the bin alone, or merged with preceding bins (never
    -- with the intake bin, and the intake bin with nothing).
    SELECT j.bin_from AS cell_from_bin, k.bin_from AS bin_from
    FROM bins AS k
    JOIN bins AS j
      ON j.bin_from <= k.bin_from AND (j.bin_from = k.bin_from OR j.bin_from > 0)
),

closed_course AS NOT MATERIALIZED (
    -- Read where used (three times, each a few columns): not held whole (tier L: 0.53 against 0.73 GiB).
    SELECT concern_id, episode_id, fold, intake_band, session_bin_from AS bin_from, score
    FROM outcomes.scl90_course
    WHERE is_closed
),

fold_bins AS (
    -- Measurements per fold, band and bin (a NULL band or bin is in no cell, but its fit has the band).
    SELECT fold, intake_band, bin_from, count(score) AS n_measurements
    FROM closed_course
    GROUP BY fold, intake_band, bin_from
),

fit_bins AS (
    SELECT f.fit, b.intake_band, b.bin_from, sum(b.n_measurements)::BIGINT AS n_measurements
    FROM fits AS f
    JOIN fold_bins AS b ON f.left_out_fold IS NULL OR b.fold <> f.left_out_fold
    GROUP BY f.fit, b.intake_band, b.bin_from
),

bands AS (
    SELECT DISTINCT fit, intake_band FROM fit_bins
),

episode_bins AS (
    -- Each episode's bins with a measurement, and its bin before each (NULL: its first).
    SELECT
        fold,
        intake_band,
        bin_from,
        lag(bin_from) OVER (PARTITION BY intake_band, concern_id, episode_id ORDER BY bin_from) AS previous_bin
    FROM (
        SELECT DISTINCT concern_id, episode_id, fold, intake_band, bin_from
        FROM closed_course
        WHERE intake_band IS NOT NULL AND bin_from IS NOT NULL
    ) AS d
),

first_bins AS (
    SELECT fold, intake_band, bin_from, previous_bin, count(*) AS n_episodes
    FROM episode_bins
    GROUP BY fold, intake_band, bin_from, previous_bin
),

cell_episodes AS (
    -- An episode counts in [cell_from_bin, bin_from] at its first bin from cell_from_bin on.
    SELECT f.fit, e.intake_band, r.bin_from, r.cell_from_bin, sum(e.n_episodes)::BIGINT AS n_episodes
    FROM fits AS f
    JOIN first_bins AS e ON f.left_out_fold IS NULL OR e.fold <> f.left_out_fold
    JOIN bin_ranges AS r
      ON e.bin_from BETWEEN r.cell_from_bin AND r.bin_from
     AND (e.previous_bin IS NULL OR e.previous_bin < r.cell_from_bin)
    GROUP BY f.fit, e.intake_band, r.bin_from, r.cell_from_bin
),

cell_measurements AS (
    SELECT m.fit, m.intake_band, r.bin_from, r.cell_from_bin, sum(m.n_measurements)::BIGINT AS n_measurements
    FROM fit_bins AS m
    JOIN bin_ranges AS r ON m.bin_from BETWEEN r.cell_from_bin AND r.bin_from
    GROUP BY m.fit, m.intake_band, r.bin_from, r.cell_from_bin
),

candidate_cells AS (
    SELECT
        b.fit,
        b.intake_band,
        r.bin_from,
        r.cell_from_bin,
        -- A cell without measurements rests on no episode: 0, so that it never reaches the minimum
        -- (the earlier count(DISTINCT (NULL, NULL)) over an outer join's empty row said 1, and with
        -- expected_course_min_episodes = 1 an empty cell stopped the merge).
        coalesce(e.n_episodes, 0) AS n_episodes,
        coalesce(m.n_measurements, 0) AS n_measurements
    FROM bands AS b
    CROSS JOIN bin_ranges AS r
    LEFT JOIN cell_episodes AS e
      ON e.fit = b.fit AND e.intake_band = b.intake_band AND e.bin_from = r.bin_from
     AND e.cell_from_bin = r.cell_from_bin
    LEFT JOIN cell_measurements AS m
      ON m.fit = b.fit AND m.intake_band = b.intake_band AND m.bin_from = r.bin_from
     AND m.cell_from_bin = r.cell_from_bin
),

chosen_cells AS (
    -- The narrowest cell that reaches the minimum (the latest start); else the bin alone, without percentiles.
    SELECT
        fit,
        intake_band,
        bin_from,
        coalesce(
            max(cell_from_bin) FILTER (WHERE n_episodes >= getvariable('expected_course_min_episodes')),
            bin_from) AS cell_from_bin,
        bool_or(n_episodes >= getvariable('expected_course_min_episodes')) AS reaches_min
    FROM candidate_cells
    GROUP BY fit, intake_band, bin_from
),

chosen_bins AS (
    -- The bins (with measurements) of each chosen cell that has percentiles.
    SELECT c.fit, c.intake_band, c.bin_from, b.bin_from AS member_bin
    FROM chosen_cells AS c
    JOIN fit_bins AS b
      ON b.fit = c.fit AND b.intake_band = c.intake_band AND b.bin_from BETWEEN c.cell_from_bin AND c.bin_from
    WHERE c.reaches_min
),

cell_scores AS (
    SELECT
        c.fit,
        c.intake_band,
        c.bin_from,
        quantile_cont(m.score, [{% for p in percentiles %}{{ p / 100 }}{{ ", " if not loop.last }}{% endfor %}]) AS scores
    FROM fits AS f
    JOIN closed_course AS m ON f.left_out_fold IS NULL OR m.fold <> f.left_out_fold
    JOIN chosen_bins AS c ON c.fit = f.fit AND c.intake_band = m.intake_band AND c.member_bin = m.bin_from
    GROUP BY c.fit, c.intake_band, c.bin_from
)

SELECT
    c.fit,
    c.intake_band,
    c.bin_from AS session_bin_from,
    session_bin_to(c.bin_from) AS session_bin_to,
    session_bin_label(c.bin_from) AS session_bin,
    c.cell_from_bin,
    x.n_episodes,
    x.n_measurements,
    p.percentile,
    CASE WHEN c.reaches_min THEN s.scores[p.position] END AS score
FROM chosen_cells AS c
JOIN candidate_cells AS x
  ON x.fit = c.fit AND x.intake_band = c.intake_band AND x.bin_from = c.bin_from
 AND x.cell_from_bin = c.cell_from_bin
LEFT JOIN cell_scores AS s
  ON s.fit = c.fit AND s.intake_band = c.intake_band AND s.bin_from = c.bin_from
CROSS JOIN (VALUES {% for p in percentiles %}({{ loop.index }}, {{ p }}){{ ", " if not loop.last }}{% endfor %})
    AS p(position, percentile)
ORDER BY c.fit, c.intake_band, c.bin_from, p.percentile
