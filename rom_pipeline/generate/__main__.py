"""``python -m rom_pipeline.generate --out DIR ...`` (same options as ``rom-pipeline generate``)."""
import sys

from .cli import main

sys.exit(main())
