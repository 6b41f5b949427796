"""`rom-pipeline bench` (issue 11): the pipeline's nights measured against a plain DuckDB baseline.

- tiers.py: the delivery sets (tiers S, M, L), generated once and cached, and the re-delivery;
- baseline.sql, baseline.py: the same computation as one plain DuckDB script;
- scenarios.py: the scenarios (baseline, no-reports, full, quiet, redelivery) and the progress lines;
- sampling.py: wall, CPU, peak RSS/PSS and temporary disk of a process tree;
- report.py: tables, issue 11's targets, JSON; cli.py: the command.
"""
