-- Per current delivery and file: rows read = rows loaded + rows quarantined.
-- "Loaded" is the table a row ends in (for measurements: a valid, scored measurement), for
-- every delivered file of schemas/ (delivered_files, rom_pipeline.lib.sqlfiles.default_context).
{%- set loaded_in = {'measurements': 'measurement_scores'} %}
WITH files_read AS (
    SELECT f.delivery_id, d.concern_id, f.file_name, f.logical_file, f.rows_read
    FROM audit.delivery_files AS f
    JOIN audit.deliveries AS d ON d.delivery_id = f.delivery_id AND d.status = 'current'
),

rows_loaded AS (
{%- for file in delivered_files %}
    {% if not loop.first %}UNION ALL
    {% endif -%}
    SELECT delivery_id, '{{ file }}' AS logical_file, count(*) AS n FROM staging.{{ loaded_in.get(file, file) }} GROUP BY ALL
{%- endfor %}
),

rows_quarantined AS (
    SELECT delivery_id, file_name, count(DISTINCT source_row_number) AS n
    FROM audit.quarantine
    GROUP BY delivery_id, file_name
)

SELECT
    fr.delivery_id,
    fr.concern_id,
    fr.file_name,
    fr.rows_read,
    coalesce(rl.n, 0) AS rows_loaded,
    coalesce(rq.n, 0) AS rows_quarantined,
    fr.rows_read = coalesce(rl.n, 0) + coalesce(rq.n, 0) AS reconciled
FROM files_read AS fr
LEFT JOIN rows_loaded AS rl ON rl.delivery_id = fr.delivery_id AND rl.logical_file = fr.logical_file
LEFT JOIN rows_quarantined AS rq ON rq.delivery_id = fr.delivery_id AND rq.file_name = fr.file_name
ORDER BY fr.concern_id, fr.delivery_id, fr.file_name
