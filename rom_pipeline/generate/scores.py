"""Score trajectories: how a client's scores move from intake to discharge.

The SCL90 course is decided once per episode: a pre-score (severity at intake)
and the score the client would reach at the planned end of treatment. Most
clients improve toward the population norm, some do not change and a few get
worse. A measurement at progress ``t`` (0 = intake, 1 = planned end) lies on a
front-loaded curve between them (most change happens early in treatment), plus
measurement noise. Clients who stop early were measured at a smaller ``t``,
so they improved less. Other instruments follow the same course through the
``recovery`` share: 0 at intake, 1 when symptoms are down to the norm.
"""
from __future__ import annotations

from dataclasses import dataclass
from random import Random

from .catalog import SCL90_NORM

# Typical SCL90 intake severity per diagnosis group (outpatient care, illustrative).
INTAKE_SEVERITY = {"depression": 205, "dysthymia": 195, "anxiety": 200, "somatoform": 190,
                   "substance_use": 185, "impulse_control": 190, "stress_burnout": 185, "other": 190}
IMPROVE_SHARE = 0.72  # before therapist, location and concern effects
WORSEN_SHARE = 0.08


@dataclass(slots=True)
class Course:
    pre: float
    target: float  # SCL90 reached at the planned end of treatment
    kind: str = "improving"  # the course by construction: improving, unchanged or deteriorating (ground truth)

    def expected(self, t: float) -> float:
        """SCL90 without measurement noise at progress ``t`` (front-loaded change)."""
        progress = 1.0 - (1.0 - min(t, 1.0)) ** 2
        return self.pre + (self.target - self.pre) * progress

    def scl90(self, rng: Random, t: float) -> int:
        return int(min(450, max(90, round(self.expected(t) + rng.gauss(0, 7)))))

    def recovery(self, t: float) -> float:
        """Share of the intake excess over the norm that is gone at ``t``; negative when worse."""
        excess = max(self.pre - SCL90_NORM, 20.0)  # floor keeps near-norm starters stable
        return max(-1.0, min(1.2, (self.pre - self.expected(t)) / excess))


def draw_course(rng: Random, diagnosis: str, care_type: str, effect: float) -> Course:
    pre = _intake_severity(rng, diagnosis, care_type)
    roll = rng.random()
    if roll < WORSEN_SHARE - effect / 2:
        target, kind = pre + rng.uniform(15, 70), "deteriorating"
    elif roll < 1 - IMPROVE_SHARE - effect:
        target, kind = pre + rng.gauss(0, 5), "unchanged"  # no real change
    else:
        # Improvers close 40%..110% of the gap to the norm: from 200 they end near 130..170.
        target, kind = SCL90_NORM + (pre - SCL90_NORM) * (1 - rng.uniform(0.4, 1.1)), "improving"
    return Course(pre=pre, target=min(440.0, max(92.0, target)), kind=kind)


def _intake_severity(rng: Random, diagnosis: str, care_type: str) -> float:
    if rng.random() < 0.04:  # some clients start at or below the population norm
        return rng.uniform(95, 125)
    centre = INTAKE_SEVERITY[diagnosis] + (10 if care_type == "specialised" else -8)
    return min(420.0, max(100.0, rng.gauss(centre, 42)))


# --- other instruments, all driven by the SCL90 recovery --------------------------------

def hdrs(rng: Random, baseline: float, recovery: float) -> str:
    return str(_clip_round(baseline * (1 - 0.7 * recovery) + rng.gauss(0, 2), 0, 52))


def ubos_item_sum(rng: Random, baseline: float, recovery: float) -> int:
    """UBOS exhaustion: mean item score 0..6; returns the item sum (5 items)."""
    mean = baseline - (baseline - 1.8) * 0.8 * recovery + rng.gauss(0, 0.3)
    return _clip_round(mean * 5, 0, 30)


def sf36(rng: Random, baseline: float, recovery: float) -> str:
    value = baseline + (55 - baseline) * 0.9 * recovery + rng.gauss(0, 4)
    return f"{min(100.0, max(0.0, value)):.1f}"


def wav_item_sum(rng: Random, recovery: float) -> int:
    """Working alliance: high for most clients, a bit higher when treatment goes well."""
    return _clip_round(rng.gauss(45, 6) + 4 * recovery, 12, 60)


def cqi(rng: Random, recovery: float, dropout: bool) -> int:
    return _clip_round(rng.gauss(7.4 + 1.2 * recovery - (1.2 if dropout else 0), 1.2), 0, 10)


WORK_HOURS = [8, 12, 16, 20, 24, 24, 28, 32, 32, 36, 36, 38, 40, 40]


def work_hours_at_start(rng: Random, diagnosis: str) -> int:
    working = 0.45 if diagnosis == "stress_burnout" else 0.65  # burn-out often means sick leave
    return rng.choice(WORK_HOURS) if rng.random() < working else 0


def work_hours_at_end(rng: Random, start_hours: int, recovery: float) -> int:
    if start_hours == 0:
        return rng.choice(WORK_HOURS) if rng.random() < 0.35 * max(0.0, recovery) else 0
    change = rng.choice([-8, -4, 0, 0, 0, 4, 8]) if recovery > 0.3 else rng.choice([-16, -8, 0, 0])
    return _clip_round(start_hours + change, 0, 80)


def formatted_mean(item_sum: int, n_items: int) -> str:
    """A mean item score as delivered: '3.4', or '3' when whole."""
    return f"{item_sum / n_items:g}"


def _clip_round(value: float, low: int, high: int) -> int:
    return int(min(high, max(low, round(value))))
