-- marts.expected_course (published, analysts): the expected SCL90 course that the nightly
-- not-on-track flag compares open episodes with (docs/feedback.md): per intake band and
-- session bin, percentiles of the scores of all closed episodes, cells merged with
-- preceding bins where sparse. No client row; a cell on fewer than min_n episodes is
-- suppressed like every figure (macro small_number_reason), and a cell that reached no
-- minimum has no percentiles (no_course).
SELECT
    intake_band,
    session_bin,
    session_bin_from,
    session_bin_to,
    session_bin_label(cell_from_bin) AS cell_from_bin,
    n_episodes,
    n_measurements,
    percentile,
    score,
    coalesce(small_number_reason(n_episodes), CASE WHEN score IS NULL THEN 'no_course' END) IS NOT NULL AS suppressed,
    coalesce(small_number_reason(n_episodes), CASE WHEN score IS NULL THEN 'no_course' END) AS suppression_reason
FROM outcomes.expected_course_fits
WHERE fit = 'all'
ORDER BY intake_band, session_bin_from, percentile
