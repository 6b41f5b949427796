"""The auditor's trail (issue 5): runs, pending concerns, published figures and their episodes.

``rom_pipeline.defs.audit.assets`` holds the assets; ``pending`` and ``fingerprint``
are plain modules that the shared factories and the triggers import (keep this
package import-light: no assets here, or the factories would import in a circle).
"""
