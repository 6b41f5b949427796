"""Jinja2 templates (``rom_pipeline/reports/templates``) -> HTML strings. Autoescaped; no logic beyond layout."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["stylesheet"] = (TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
