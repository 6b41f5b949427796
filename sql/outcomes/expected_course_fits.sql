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

closed_course AS (
    SELECT concern_id, episode_id, fold, intake_band, session_bin_from AS bin_from, score
    FROM outcomes.scl90_course
    WHERE is_closed
),

fit_measurements AS (
    SELECT f.fit, c.*
    FROM fits AS f
    JOIN closed_course AS c ON f.left_out_fold IS NULL OR c.fold <> f.left_out_fold
),

bands AS (
    SELECT DISTINCT fit, intake_band FROM fit_measurements
),

candidate_cells AS (
    SELECT
        b.fit,
        b.intake_band,
        r.bin_from,
        r.cell_from_bin,
        count(DISTINCT (m.concern_id, m.episode_id)) AS n_episodes,
        count(m.score) AS n_measurements,
        quantile_cont(m.score, [{% for p in percentiles %}{{ p / 100 }}{{ ", " if not loop.last }}{% endfor %}]) AS scores
    FROM bands AS b
    CROSS JOIN bin_ranges AS r
    LEFT JOIN fit_measurements AS m
      ON m.fit = b.fit AND m.intake_band = b.intake_band
     AND m.bin_from BETWEEN r.cell_from_bin AND r.bin_from
    GROUP BY b.fit, b.intake_band, r.bin_from, r.cell_from_bin
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
    CASE WHEN c.reaches_min THEN x.scores[p.position] END AS score
FROM chosen_cells AS c
JOIN candidate_cells AS x
  ON x.fit = c.fit AND x.intake_band = c.intake_band AND x.bin_from = c.bin_from
 AND x.cell_from_bin = c.cell_from_bin
CROSS JOIN (VALUES {% for p in percentiles %}({{ loop.index }}, {{ p }}){{ ", " if not loop.last }}{% endfor %})
    AS p(position, percentile)
ORDER BY c.fit, c.intake_band, c.bin_from, p.percentile
