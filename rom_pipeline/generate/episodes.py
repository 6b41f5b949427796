"""One treatment episode at a time: who, when, how it ended, and what was measured.

``EpisodeFactory.draft`` returns one episode row and its measurements (with item
responses); nothing is kept between episodes except a few counters, so any
number of episodes can be streamed to disk.

Days are integer ordinals (``date.toordinal``). Episode numbers follow the
start date, as ids do in a real client-tracking system.
"""
from __future__ import annotations

from bisect import bisect
from dataclasses import dataclass
from hashlib import sha256
from itertools import accumulate
from operator import attrgetter
from random import Random

from . import catalog, scores
from .dates import DayText
from .items import ItemSampler
from .organisation import Concern, Location

WINDOW_DAYS = 3 * 365  # episodes start in the three years before the export
# Chance that a closed episode has an SCL90 at discharge (clients who drop out are rarely measured).
POST_SHARE = {"completed": 0.95, "dropout": 0.45, "referred": 0.8, "other": 0.7}
CQI_SHARE = {"completed": 0.55, "dropout": 0.2, "referred": 0.3, "other": 0.3}
SCL90_BLANK_SHARE = 0.05  # measurements with a few items left blank (prorated by the pipeline)
SCL90_BLANK_COUNTS = [1, 1, 1, 1, 2, 2, 3, 4, 6, 9]  # at most 9: still scorable


@dataclass(slots=True)
class MeasurementDraft:
    day: int
    instrument: str
    session: int | None
    occasion: str | None
    total: str  # delivered total_score; "" when the system left it to the items
    responses: list | None  # item responses (None = blank item); None when delivered as total only


@dataclass(slots=True)
class Plan:
    """The timeline of an episode."""
    start: int
    interval: float  # days between sessions
    planned: int  # sessions a full treatment would take
    done: int  # sessions attended (so far, for an open episode)
    end: int | None
    end_reason: str | None


@dataclass(slots=True)
class EpisodeDraft:
    row: list[str]
    measurements: list[MeasurementDraft]
    course: scores.Course | None = None  # the SCL90 course by construction (ground truth, never delivered)


class EpisodeFactory:
    def __init__(self, concern: Concern, seed: int, export_day: int,
                 samplers: dict[str, ItemSampler] | None, total_only_share: float) -> None:
        self.concern = concern
        self.rng = Random(f"{seed}:{concern.concern_id}:episodes")
        self.export_day = export_day
        self.first_day = export_day - WINDOW_DAYS
        self.days = DayText(self.first_day - 120, export_day + 60)
        self.samplers = samplers
        self.total_only_share = total_only_share
        self._id_width = max(6, len(str(concern.n_episodes)))
        # Salts the client hash, so that client 17 of one concern is not client 17 of another.
        self._client_salt = int.from_bytes(sha256(f"{seed}:{concern.concern_id}".encode()).digest()[:8], "big")
        self._clients = 0
        self._location_cumulative = list(accumulate(loc.weight for loc in concern.locations))

    # --- the episode row ---------------------------------------------------------------

    def draft(self, number: int) -> EpisodeDraft:
        rng = self.rng
        location = self._location()
        therapist = location.therapists[int(rng.random() * len(location.therapists))]
        client_no = self._client()
        care_type = catalog.CARE_TYPE.draw(rng)
        diagnosis = catalog.DIAGNOSIS[care_type].draw(rng)
        referrer = (catalog.REFERRER_BURNOUT if diagnosis == "stress_burnout" else catalog.REFERRER).draw(rng)
        plan = self._plan(number, care_type)
        age, sex = self._client_traits(client_no, plan.start)
        effect = self.concern.effect + location.effect + therapist.effect
        course = scores.draw_course(rng, diagnosis, care_type, effect)
        measurements = self._measurements(plan, course, diagnosis, age)
        day = self.days
        row = [f"E{number:0{self._id_width}d}", f"CL{client_no:07d}", location.location_id,
               therapist.therapist_id, care_type, diagnosis, referrer, day(plan.start),
               day(plan.end) if plan.end is not None else "", plan.end_reason or "",
               "" if rng.random() < 0.01 else str(plan.done), str(age), sex]
        return EpisodeDraft(row, measurements, course)

    def _location(self) -> Location:
        cumulative = self._location_cumulative
        return self.concern.locations[bisect(cumulative, self.rng.random() * cumulative[-1])]

    def _client(self) -> int:
        """A new client, or (one in ten) a client who was treated before."""
        if self._clients and self.rng.random() < 0.1:
            return 1 + int(self.rng.random() * self._clients)
        self._clients += 1
        return self._clients

    def _client_traits(self, client_no: int, start: int) -> tuple[int, str]:
        """Age at start and sex, derived from the client number so that a returning client keeps them."""
        bits = _mix64(client_no + self._client_salt)
        birth_day = self.export_day - int(_age_from_share((bits >> 32) / 2**32) * 365.25)
        sex = catalog.SEX.at((bits & 0xFFFFFFFF) / 2**32)
        return max(4, int((start - birth_day) / 365.25)), sex

    def _plan(self, number: int, care_type: str) -> Plan:
        rng = self.rng
        # Spread starts evenly over the window, in episode-number order.
        start = self.first_day + int((number - 1 + rng.random()) * WINDOW_DAYS / self.concern.n_episodes)
        if care_type == "basic":
            planned, interval = round(rng.triangular(5, 26, 14)), rng.uniform(7, 11)
        else:
            planned, interval = round(rng.triangular(8, 40, 28)), rng.uniform(7, 12)
        reason = catalog.END_REASON.draw(rng)
        done = planned
        if reason == "dropout":
            done = max(4, round(planned * rng.uniform(0.2, 0.7)))
        elif reason != "completed":
            done = max(4, round(planned * rng.uniform(0.3, 1.0)))
        end = start + round(done * interval) + rng.randint(0, 21)  # closing the file takes a while
        if end > self.export_day:  # still in treatment at the export
            so_far = min(done, int((self.export_day - start) / interval))
            return Plan(start, interval, planned, so_far, None, None)
        return Plan(start, interval, planned, done, end, reason)

    # --- measurements --------------------------------------------------------------------

    def _measurements(self, plan: Plan, course: scores.Course, diagnosis: str, age: int) -> list[MeasurementDraft]:
        rng = self.rng
        found: list[MeasurementDraft] = []
        uses = _Extras.draw(rng, diagnosis, age)
        intake_day = min(self.export_day, plan.start + self._intake_offset())
        if rng.random() < 0.97:
            found.append(self._scl90(intake_day, course, 0.0, None if rng.random() < 0.1 else 0, "intake"))
        found += self._extras_at(intake_day, 0.0, "intake", uses, course, plan)
        found += self._progress(plan, course, uses)
        if plan.end is not None:
            found += self._discharge(plan, course, uses, intake_day)
        found.sort(key=attrgetter("day"))  # stable: same-day order stays as drafted
        return found

    def _intake_offset(self) -> int:
        roll = self.rng.random()
        if roll < 0.8:
            return self.rng.randint(-7, 7)
        return self.rng.randint(-30, -8) if roll < 0.95 else self.rng.randint(-60, -31)

    def _progress(self, plan: Plan, course: scores.Course, uses: _Extras) -> list[MeasurementDraft]:
        """Every fifth session; not in the last sessions of a closed episode (discharge covers those)."""
        rng, found = self.rng, []
        last = plan.done - 3 if plan.end is not None else plan.done
        for session in range(5, last + 1, 5):
            day = plan.start + round(session * plan.interval) + rng.randint(-2, 2)
            if day > self.export_day:
                break
            t = session / plan.planned
            if rng.random() < 0.75:
                found.append(self._scl90(day, course, t, session, "progress"))
            if rng.random() < 0.55:
                found.append(self._with_items("WAV", day, session, "progress",
                                              scores.wav_item_sum(rng, course.recovery(t)), str))
            if uses.ubos is not None and rng.random() < 0.5:
                found.append(self._ubos(day, session, "progress", uses.ubos, course.recovery(t)))
        return found

    def _discharge(self, plan: Plan, course: scores.Course, uses: _Extras, intake_day: int) -> list[MeasurementDraft]:
        rng, found = self.rng, []
        t = plan.done / plan.planned
        reason = plan.end_reason
        if rng.random() < POST_SHARE[reason]:
            day = min(self.export_day, plan.end + self._discharge_offset())
            if day > intake_day:
                found.append(self._scl90(day, course, t, plan.done, "discharge"))
                found += self._extras_at(day, t, "discharge", uses, course, plan)
        if rng.random() < CQI_SHARE[reason]:
            day = min(self.export_day, plan.end + rng.randint(0, 21))
            value = scores.cqi(rng, course.recovery(t), reason == "dropout")
            found.append(self._with_items("CQI", day, None, "discharge", value, str))
        if reason == "completed" and rng.random() < 0.07 and plan.end + 100 <= self.export_day:
            found.append(self._scl90(plan.end + rng.randint(80, 100), course, 1.0, None, "followup"))
        return found

    def _discharge_offset(self) -> int:
        roll = self.rng.random()
        if roll < 0.85:
            return self.rng.randint(-14, 3)
        # Some are late, and a few so early that they fall outside the post-score window.
        return self.rng.randint(4, 28) if roll < 0.97 else self.rng.randint(-45, -29)

    def _extras_at(self, day: int, t: float, occasion: str, uses: _Extras, course: scores.Course,
                   plan: Plan) -> list[MeasurementDraft]:
        """The instruments beside SCL90 at intake or discharge (same day or a few days later)."""
        rng, found = self.rng, []
        session = 0 if occasion == "intake" else plan.done
        recovery = course.recovery(t)
        at_end = occasion == "discharge"
        if uses.hdrs is not None and (not at_end or rng.random() < 0.9):
            found.append(MeasurementDraft(self._near(day), "HDRS", session, occasion,
                                          scores.hdrs(rng, uses.hdrs, recovery), None))
        if uses.ubos is not None and (not at_end or rng.random() < 0.9):
            found.append(self._ubos(day, session, occasion, uses.ubos, recovery))
        if uses.sf36 is not None and (not at_end or rng.random() < 0.85):
            found.append(MeasurementDraft(day, "SF36", session, occasion,
                                          scores.sf36(rng, uses.sf36, recovery), None))
        if uses.work is not None and (not at_end or rng.random() < 0.9):
            hours = scores.work_hours_at_end(rng, uses.work, recovery) if at_end else uses.work
            found.append(MeasurementDraft(day, "WORK", session, occasion, str(hours), None))
        return found

    def _near(self, day: int) -> int:
        """Clinician-rated instruments are often done a few days after the questionnaires."""
        return min(self.export_day, day + self.rng.choice((0, 0, 1, 2, 3)))

    def _scl90(self, day: int, course: scores.Course, t: float, session: int | None,
               occasion: str) -> MeasurementDraft:
        rng = self.rng
        total = course.scl90(rng, t)
        sampler = self.samplers["SCL90"] if self.samplers else None
        if sampler is None or rng.random() < self.total_only_share:
            return MeasurementDraft(day, "SCL90", session, self._recorded(occasion), str(total), None)
        values = sampler.responses(rng, total)
        delivered = str(total) if rng.random() < 0.45 else ""
        if rng.random() < SCL90_BLANK_SHARE:
            sampler.blank_out(rng, values, rng.choice(SCL90_BLANK_COUNTS))
            prorated = prorated_total(values)
            delivered = str(prorated) if prorated is not None and rng.random() < 0.5 else ""
        return MeasurementDraft(day, "SCL90", session, self._recorded(occasion), delivered, values)

    def _ubos(self, day: int, session: int | None, occasion: str, baseline: float,
              recovery: float) -> MeasurementDraft:
        item_sum = scores.ubos_item_sum(self.rng, baseline, recovery)
        return self._with_items("UBOS", day, session, occasion, item_sum,
                                lambda s: scores.formatted_mean(s, 5))

    def _with_items(self, instrument: str, day: int, session: int | None, occasion: str,
                    item_sum: int, total_text) -> MeasurementDraft:
        """A measurement of an instrument with items: items, and a delivered total half of the time."""
        rng = self.rng
        if not self.samplers:
            return MeasurementDraft(day, instrument, session, self._recorded(occasion), total_text(item_sum), None)
        values = self.samplers[instrument].responses(rng, item_sum)
        delivered = total_text(item_sum) if rng.random() < 0.5 else ""
        return MeasurementDraft(day, instrument, session, self._recorded(occasion), delivered, values)

    def _recorded(self, occasion: str) -> str | None:
        """Occasion is advisory and some systems leave it empty."""
        return None if self.rng.random() < 0.02 else occasion


@dataclass(slots=True)
class _Extras:
    """Which instruments beside SCL90 this episode uses, with the client's baseline on each."""
    hdrs: float | None
    ubos: float | None
    sf36: float | None
    work: int | None

    @staticmethod
    def draw(rng: Random, diagnosis: str, age: int) -> _Extras:
        depressive = diagnosis in ("depression", "dysthymia")
        return _Extras(
            hdrs=min(40.0, max(8.0, rng.gauss(19, 4))) if depressive and rng.random() < 0.6 else None,
            ubos=(min(6.0, max(1.5, rng.gauss(4.2, 0.8)))
                  if diagnosis == "stress_burnout" and rng.random() < 0.85 else None),
            sf36=min(70.0, max(5.0, rng.gauss(35, 8))) if rng.random() < 0.3 else None,
            work=scores.work_hours_at_start(rng, diagnosis) if 18 <= age <= 67 and rng.random() < 0.5 else None,
        )


def prorated_total(values: list) -> int | None:
    """SCL90 total the contract computes from answered items, ``round(sum * 90 / answered)``.

    Returns None on an exact .5 tie, where rounding conventions differ; the
    generator then leaves the delivered total empty rather than risk a mismatch.
    """
    answered = [v for v in values if v is not None]
    doubled, remainder = divmod(2 * sum(answered) * len(values), len(answered))
    if remainder == 0 and doubled % 2 == 1:
        return None
    return round(sum(answered) * len(values) / len(answered))


def _age_from_share(share: float) -> float:
    points = catalog.AGE_QUANTILES
    for (age_lo, q_lo), (age_hi, q_hi) in zip(points, points[1:]):
        if share <= q_hi:
            return age_lo + (age_hi - age_lo) * (share - q_lo) / (q_hi - q_lo)
    return float(points[-1][0])


def _mix64(value: int) -> int:
    """splitmix64 finaliser: a well-mixed 64-bit hash of an integer (no RNG state needed)."""
    mask = 0xFFFFFFFFFFFFFFFF
    z = (value * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)
