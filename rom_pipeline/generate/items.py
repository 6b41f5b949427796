"""Item responses that add up to a given total, and their rows as text.

The trajectory decides a measurement's total first; the items are then spread
around it so that they sum to exactly that total (a questionnaire's items are
not all answered alike: each item has a fixed tendency to score higher or lower).

Speed matters here: an SCL90 measurement has 90 items and item rows make up
most of a delivery. So the per-item work is one table look-up and one random
byte, and the row text is built with a single join.
"""
from __future__ import annotations

from random import Random

_INV256 = 1.0 / 256


class ItemSampler:
    """Draws ``n_items`` responses in ``low..high`` with a prescribed sum."""

    def __init__(self, n_items: int, low: int, high: int, item_spread: float, seed: str) -> None:
        self.n_items, self.low, self.high = n_items, low, high
        rng = Random(seed)
        offsets = [rng.uniform(-item_spread, item_spread) for _ in range(n_items)]
        centre = sum(offsets) / n_items
        self._offsets = [o - centre for o in offsets]
        self._expected_by_level: dict[int, list[float]] = {}
        # Row text per item and response, e.g. "17;3" ("17;" for a blank item).
        self._pairs = [{r: f"{item};{r}" for r in range(low, high + 1)} | {None: f"{item};"}
                       for item in range(1, n_items + 1)]

    def responses(self, rng: Random, total: int) -> list[int]:
        if not self.n_items * self.low <= total <= self.n_items * self.high:
            raise ValueError(f"total {total} outside {self.n_items * self.low}..{self.n_items * self.high}")
        expected = self._expected(total)
        # Stochastic rounding of each item's expected value: mean-preserving, one random byte per item.
        noise = rng.randbytes(self.n_items)
        values = [int(e + b * _INV256) for e, b in zip(expected, noise)]
        self._adjust_to_sum(rng, values, total)
        return values

    def blank_out(self, rng: Random, values: list, count: int) -> None:
        for position in rng.sample(range(self.n_items), count):
            values[position] = None

    def rows_text(self, measurement_id: str, values: list) -> str:
        """The measurement's item rows as CSV text (ids and digits never need quoting)."""
        parts = [pairs[v] for pairs, v in zip(self._pairs, values)]
        return measurement_id + ";" + ("\n" + measurement_id + ";").join(parts) + "\n"

    def _expected(self, total: int) -> list[float]:
        """Expected response per item for this total, cached per mean level (1/50 steps)."""
        level = round(total / self.n_items * 50)
        expected = self._expected_by_level.get(level)
        if expected is None:
            expected = self._calibrated(level / 50)
            self._expected_by_level[level] = expected
        return expected

    def _calibrated(self, mean: float) -> list[float]:
        """Item means around ``mean``, clipped to the item range and shifted so they still average ``mean``."""
        low, high = float(self.low), float(self.high)

        def clipped(shift: float) -> list[float]:
            return [min(high, max(low, mean + o + shift)) for o in self._offsets]

        lo_shift, hi_shift = -(high - low), high - low
        for _ in range(30):  # bisection on the shift; the clipped mean grows with it
            mid = (lo_shift + hi_shift) / 2
            if sum(clipped(mid)) / self.n_items < mean:
                lo_shift = mid
            else:
                hi_shift = mid
        return clipped((lo_shift + hi_shift) / 2)

    def _adjust_to_sum(self, rng: Random, values: list[int], total: int) -> None:
        """Nudge random items up or down by one until the sum is exact (a handful of steps)."""
        n, low, high, rand = self.n_items, self.low, self.high, rng.random
        difference = total - sum(values)
        while difference > 0:
            i = int(rand() * n)
            if values[i] < high:
                values[i] += 1
                difference -= 1
        while difference < 0:
            i = int(rand() * n)
            if values[i] > low:
                values[i] -= 1
                difference += 1


def samplers(seed: int) -> dict[str, ItemSampler]:
    """One sampler per instrument with items (the item tendencies are fixed per seed)."""
    return {
        "SCL90": ItemSampler(90, 1, 5, 1.1, f"{seed}:items:SCL90"),
        "UBOS": ItemSampler(5, 0, 6, 0.8, f"{seed}:items:UBOS"),
        "WAV": ItemSampler(12, 1, 5, 0.6, f"{seed}:items:WAV"),
        "CQI": ItemSampler(1, 0, 10, 0.0, f"{seed}:items:CQI"),
    }
