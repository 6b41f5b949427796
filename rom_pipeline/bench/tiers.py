"""The bench's delivery sets: built once per size and seed, reused, never changed in place.

Layout under the work dir (default /tmp/rom_bench; ``rm -rf`` it, or one tier's folder, to start over)::

    <work>/<tier>-seed<seed>/exports/       the export root: 10 concerns' deliveries + reference/
                            redelivery/     C001's delivery of the next night (export date + 1 day)
                            runs/           data dirs and the export root of this bench's runs
                                            (emptied at the start of every bench)

``exports/.complete.json`` marks a finished generation (rows and bytes of the set); a set
without it is generated again.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

TIERS = {"S": 5_000, "M": 100_000, "L": 1_000_000}
CONCERNS = 10
REDELIVERED_CONCERN = "C001"
DEFAULT_WORKDIR = Path("/tmp/rom_bench")
MARKER = ".complete.json"


@dataclass(frozen=True)
class DeliverySet:
    name: str             # "M", or "E12345" for a custom size
    episodes: int
    seed: int
    root: Path            # <work>/<name>-seed<seed>

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def redelivery(self) -> Path:
        return self.root / "redelivery"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def summary(self) -> dict:
        return json.loads((self.exports / MARKER).read_text(encoding="utf-8"))


def delivery_set(tier: str | None, episodes: int | None, seed: int, workdir: Path) -> DeliverySet:
    if episodes is None:
        episodes = TIERS[tier]
    name = tier if tier and TIERS.get(tier) == episodes else f"E{episodes}"
    return DeliverySet(name, episodes, seed, Path(workdir) / f"{name}-seed{seed}")


def _generate(out: Path, episodes: int, seed: int, log, **extra) -> tuple[dict, float]:
    from rom_pipeline.generate import generate_deliveries

    if out.exists():
        shutil.rmtree(out)
    started = time.monotonic()
    summary = generate_deliveries(out, concerns=CONCERNS, episodes=episodes, seed=seed, items=True, **extra)
    return summary, time.monotonic() - started


def ensure_deliveries(ds: DeliverySet, log=print) -> dict:
    """Generate the set (and the re-delivery) unless a finished one is there; its summary."""
    if not (ds.exports / MARKER).exists():
        log(f"generating {ds.episodes:,} episodes in {CONCERNS} concerns (seed {ds.seed}) into {ds.exports} ...")
        summary, seconds = _generate(ds.exports, ds.episodes, ds.seed, log)
        rows = sum(summary["rows"].values())
        size = sum(p.stat().st_size for p in ds.exports.rglob("*") if p.is_file())
        item_rows = summary["rows"].get("item_responses.csv", 0)
        export_date = date.fromisoformat(summary["export_date"])
        log(f"  generated {rows:,} rows ({size / 1e6:,.0f} MB) in {seconds:.1f} s")
        ensure_redelivery(ds, export_date + timedelta(days=1), log)
        marker = {"episodes": ds.episodes, "concerns": CONCERNS, "seed": ds.seed, "rows": rows,
                  "item_rows": item_rows, "bytes": size, "export_date": summary["export_date"],
                  "generate_seconds": round(seconds, 1)}
        (ds.exports / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return ds.summary()


def ensure_redelivery(ds: DeliverySet, export_date: date, log=print) -> Path:
    """C001's delivery of the next night: the same concern generated with the export date a day later
    (every date moves, so its figures change), under ``redelivery/C001/<date>/``. A later
    ``exported_at`` and a new ``export_id``, so the pipeline takes it as C001's new current delivery."""
    target = ds.redelivery / REDELIVERED_CONCERN / export_date.isoformat()
    if (target / "manifest.json").exists():
        return target
    scratch = ds.root / "redelivery.tmp"
    log(f"generating {REDELIVERED_CONCERN}'s delivery of {export_date} (the re-delivery) ...")
    _generate(scratch, ds.episodes, ds.seed, log, export_date=export_date.isoformat(),
              only_concerns=frozenset({REDELIVERED_CONCERN}))
    if ds.redelivery.exists():
        shutil.rmtree(ds.redelivery)
    target.parent.mkdir(parents=True)
    (scratch / REDELIVERED_CONCERN / export_date.isoformat()).rename(target)
    shutil.rmtree(scratch)
    return target


def link_tree(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source`` made of hard links (no bytes copied; the files are
    never written, so the cached set stays as generated)."""
    for folder, _dirs, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            if name != MARKER:
                os.link(Path(folder) / name, target / relative / name)


def fresh_runs_dir(ds: DeliverySet) -> Path:
    if ds.runs.exists():
        shutil.rmtree(ds.runs)
    ds.runs.mkdir(parents=True)
    return ds.runs


def input_bytes(ds: DeliverySet) -> int:
    return int(ds.summary()["bytes"])

