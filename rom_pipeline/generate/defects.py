"""Row-level defects, the way real exports go wrong, injected at a chosen rate.

Each data row (and, for item responses, each measurement's set of items) is
corrupted with probability ``rate``, by one defect drawn from the kinds that
fit its file. The injector has its own random stream, so the clean data
underneath is the same whatever the rate. The delivery stays internally
honest: its manifest counts and hashes the rows as written, defects included.

Counts are kept per ``"<file>:<kind>"`` so tests and the command line can
report what was injected without a sidecar file in the delivery.
"""
from __future__ import annotations

from collections import Counter
from datetime import date
from random import Random

from .catalog import INSTRUMENTS
from .dates import DayText

# Episode columns (contract order) that the defects touch.
EP_CLIENT, EP_LOCATION, EP_THERAPIST = 1, 2, 3
EP_START, EP_END, EP_REASON, EP_SESSIONS, EP_AGE = 7, 8, 9, 10, 11
# Measurement columns.
M_ID, M_EPISODE, M_INSTRUMENT, M_DATE, M_SESSION, M_OCCASION, M_TOTAL = range(7)


class DefectInjector:
    def __init__(self, rate: float, rng: Random, days: DayText, export_day: int, unknown_ids: dict[str, str]) -> None:
        self.rate = rate
        self.rng = rng
        self.days = days
        self.export_day = export_day
        self.unknown = unknown_ids  # an id of each kind that the delivery does not contain
        self.counts: Counter[str] = Counter()

    def _hit(self) -> bool:
        return self.rng.random() < self.rate

    def _record(self, file: str, kind: str) -> None:
        self.counts[f"{file}:{kind}"] += 1

    # --- dimension files (small; processed as whole lists) ---------------------------------

    def locations(self, rows: list[list[str]]) -> list[list[str]]:
        out = []
        for row in rows:
            if not self._hit():
                out.append(row)
                continue
            kind = self.rng.choice(["blank_required", "duplicate_id"])
            self._record("locations.csv", kind)
            if kind == "blank_required":
                out.append([row[0], "", row[2]])
            else:
                out += [row, [row[0], row[1] + " (oud)", row[2]]]
        return out

    def therapists(self, rows: list[list[str]]) -> list[list[str]]:
        out = []
        for row in rows:
            if not self._hit():
                out.append(row)
                continue
            kind = self.rng.choice(["dangling_location", "invalid_profession", "blank_required", "duplicate_id"])
            self._record("therapists.csv", kind)
            bad = list(row)
            if kind == "dangling_location":
                bad[1] = self.unknown["location"]
            elif kind == "invalid_profession":
                bad[2] = self.rng.choice(["psycholoog", "GZ-psycholoog", "Psychiatrist "])
            elif kind == "blank_required":
                bad[3] = ""
            else:
                out.append(row)
                bad[3] = "0" if row[3] == "1" else "1"
            out.append(bad)
        return out

    # --- episodes ------------------------------------------------------------------------

    EPISODE_KINDS = ["bad_date", "end_before_start", "end_reason_without_end_date", "dangling_therapist",
                     "blank_required", "duplicate_row", "duplicate_id", "age_out_of_range", "malformed_row"]

    def episode(self, row: list[str]) -> list[list[str]]:
        if not self._hit():
            return [row]
        kind = self.rng.choice(self.EPISODE_KINDS)
        self._record("episodes.csv", kind)
        bad = list(row)
        if kind == "bad_date":
            bad[EP_START] = self._bad_date(row[EP_START])
        elif kind == "end_before_start":
            bad[EP_END] = self._shift(row[EP_START], -self.rng.randint(1, 30))
            bad[EP_REASON] = row[EP_REASON] or "completed"
        elif kind == "end_reason_without_end_date":
            bad[EP_END] = ""
            bad[EP_REASON] = row[EP_REASON] or "completed"
        elif kind == "dangling_therapist":
            bad[EP_THERAPIST] = self.unknown["therapist"]
        elif kind == "blank_required":
            bad[self.rng.choice([EP_CLIENT, EP_LOCATION, EP_START])] = ""
        elif kind == "duplicate_row":
            return [row, bad]
        elif kind == "duplicate_id":  # a second, different row under the same id
            bad[EP_SESSIONS] = str(int(row[EP_SESSIONS] or 0) + self.rng.randint(1, 5))
            return [row, bad]
        elif kind == "age_out_of_range":
            bad[EP_AGE] = self.rng.choice(["0", "130", "-1"])
        else:  # malformed: one field too many
            bad.append("extra")
        return [bad]

    # --- measurements --------------------------------------------------------------------

    MEASUREMENT_KINDS = ["bad_date", "future_date", "dangling_episode", "score_out_of_range",
                         "blank_required", "unknown_instrument", "duplicate_row", "duplicate_id"]
    OUT_OF_RANGE_TOTAL = {"SCL90": "999", "HDRS": "60", "UBOS": "7.5", "WAV": "75", "CQI": "11",
                          "SF36": "120.0", "WORK": "99"}

    def measurement(self, row: list[str]) -> list[list[str]]:
        if not self._hit():
            return [row]
        kind = self.rng.choice(self.MEASUREMENT_KINDS)
        self._record("measurements.csv", kind)
        bad = list(row)
        if kind == "bad_date":
            bad[M_DATE] = self._bad_date(row[M_DATE])
        elif kind == "future_date":
            bad[M_DATE] = self.days(self.export_day + self.rng.randint(1, 30))
        elif kind == "dangling_episode":
            bad[M_EPISODE] = self.unknown["episode"]
        elif kind == "score_out_of_range":
            bad[M_TOTAL] = self.OUT_OF_RANGE_TOTAL[row[M_INSTRUMENT]]
        elif kind == "blank_required":
            bad[self.rng.choice([M_EPISODE, M_INSTRUMENT, M_DATE])] = ""
        elif kind == "unknown_instrument":
            bad[M_INSTRUMENT] = self.rng.choice(["OQ45", "SCL-90-R", "scl90 "])
        elif kind == "duplicate_row":
            return [row, bad]
        else:  # same id, another day: e.g. a record edited and exported twice
            bad[M_DATE] = self._shift(row[M_DATE], self.rng.randint(1, 10))
            return [row, bad]
        return [bad]

    # --- item responses (one decision per measurement, not per item row) ------------------

    def items(self, measurement_id: str, instrument: str, values: list) -> list[list[str]] | None:
        """Rows for a measurement's items with one defect, or None to write them unchanged."""
        if not self._hit():
            return None
        n_items, low, high = INSTRUMENTS[instrument][:3]
        kinds = ["response_out_of_range", "item_out_of_range", "duplicate_item", "orphan_item"]
        if instrument == "SCL90":
            kinds.append("too_many_blanks")
        kind = self.rng.choice(kinds)
        self._record("item_responses.csv", kind)
        rows = [[measurement_id, str(i), "" if v is None else str(v)] for i, v in enumerate(values, 1)]
        pick = self.rng.randrange(n_items)
        if kind == "response_out_of_range":
            rows[pick][2] = str(high + 2)  # e.g. a 7 on SCL90's 1..5 scale
        elif kind == "item_out_of_range":
            rows.append([measurement_id, str(n_items + 1), str(low)])
        elif kind == "duplicate_item":
            rows.append([measurement_id, rows[pick][1], str(self.rng.randint(low, high))])
        elif kind == "orphan_item":
            rows.append([self.unknown["measurement"], "1", str(low)])
        else:  # more than 10% blank: the measurement cannot be scored
            for index in self.rng.sample(range(n_items), self.rng.randint(10, 30)):
                rows[index][2] = ""
        return rows

    # --- helpers ---------------------------------------------------------------------------

    def _bad_date(self, text: str) -> str:
        if not text:
            return "2025-13-45"
        year, month, day = text[:4], text[5:7], text[8:10]
        return self.rng.choice([f"{year}-13-45", f"{day}-{month}-{year}", f"{year}-02-30", f"{year}{month}{day}"])

    def _shift(self, text: str, days: int) -> str:
        return self.days(date.fromisoformat(text).toordinal() + days)
