-- Rows of outcomes.expected_course_fits that break its shape (docs/feedback.md).
SELECT fit, intake_band, session_bin_from, percentile, 'duplicate' AS problem
FROM outcomes.expected_course_fits
GROUP BY fit, intake_band, session_bin_from, percentile HAVING count(*) > 1
UNION ALL
SELECT fit, intake_band, session_bin_from, percentile, 'percentiles not rising'
FROM (SELECT *, lag(score) OVER (PARTITION BY fit, intake_band, session_bin_from ORDER BY percentile) AS below
      FROM outcomes.expected_course_fits)
WHERE score < below
UNION ALL
SELECT fit, intake_band, session_bin_from, percentile, 'score on too few episodes'
FROM outcomes.expected_course_fits
WHERE score IS NOT NULL AND n_episodes < getvariable('expected_course_min_episodes')
UNION ALL
SELECT NULL, NULL, NULL, getvariable('not_on_track_percentile'), 'not_on_track_percentile is not a percentile of the course'
WHERE NOT list_contains(getvariable('expected_course_percentiles'), getvariable('not_on_track_percentile'))
