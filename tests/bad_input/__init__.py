"""Generator of the bad-input corpus (issue 6): every case writes a broken delivery and states its outcome.

``cases.CASES`` lists the cases; ``cases.write_corpus(root)`` writes them all
under one export root (each case its own concern, so one pipeline run tests
them all); ``report`` runs the corpus and prints the expected and observed
outcomes as the table in docs/reliability.md; ``big_file`` is the 2 GB case,
kept out of the test suite.
"""
from .cases import CASES, CASES_BY_NAME, Case, write_corpus  # noqa: F401
from .writer import CLIENT_PREFIX, Draft  # noqa: F401
