"""Whole concerns in batches of about a row budget: how the steps that read every concern's rows
keep what DuckDB holds at once bounded by the budget (or one concern), not by the input (issue 11).

Batches follow concern order (NULL last, as DuckDB sorts by default), so rows written batch by batch,
each batch ordered by ``concern_id`` first, come out in the order one statement would give.
"""
from __future__ import annotations

from rom_pipeline.lib.sqltext import in_list


def batched(sizes: dict[str | None, int], budget: int) -> list[list[str | None]]:
    """Concerns (keys of ``sizes``: concern -> rows) in order, NULL last, cut into consecutive batches
    of about ``budget`` rows; a concern larger than the budget is a batch of its own."""
    batches: list[list[str | None]] = [[]]
    size = 0
    for concern in sorted(sizes, key=lambda c: (c is None, c or "")):
        if batches[-1] and size + sizes[concern] > budget:
            batches.append([])
            size = 0
        batches[-1].append(concern)
        size += sizes[concern]
    return [b for b in batches if b]


def in_batch(column: str, batch: list[str | None]) -> str:
    """SQL condition: ``column`` is one of the batch's concerns (NULL included if the batch has it)."""
    named = [c for c in batch if c is not None]
    conditions = ([f"{column} IN ({in_list(named)})"] if named else []) + \
        ([f"{column} IS NULL"] if None in batch else [])
    return "(" + " OR ".join(conditions) + ")"
