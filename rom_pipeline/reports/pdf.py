"""HTML -> PDF with headless Chromium, when a Chromium binary is on the machine (no Python dependency).

``find_chromium()`` looks at ``ROM_CHROMIUM`` first, then the usual binary names on PATH.
Without one the caller skips the PDFs and says so; the HTML is the report, the PDF a copy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--no-pdf-header-footer"]
TIMEOUT_SECONDS = 120


def find_chromium() -> str | None:
    explicit = os.environ.get("ROM_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() or shutil.which(explicit) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class PdfError(RuntimeError):
    pass


def html_to_pdf(chromium: str, html: Path, pdf: Path) -> Path:
    """Print one self-contained HTML file to ``pdf`` (A4, the page size the report's CSS asks for)."""
    profile = tempfile.mkdtemp(prefix="rom-chromium-")
    try:
        proc = subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", html.resolve().as_uri()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_SECONDS, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not pdf.is_file() or pdf.stat().st_size == 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise PdfError(f"chromium did not print {html.name} (exit {proc.returncode}): {' | '.join(tail)}")
    return pdf


def html_files_to_pdf(chromium: str, files: Sequence[Path], workers: int | None = None) -> list[Path]:
    """Each ``x.html`` -> ``x.pdf`` beside it, a few Chromium processes at a time."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda f: html_to_pdf(chromium, f, f.with_suffix(".pdf")), files))
