"""A concern's fixed structure: its locations and therapists (small, kept in memory).

Each therapist and location carries a hidden ``effect`` on treatment success,
so that the generated data has real differences for the internal benchmark
to find (and noise that can hide them in small units).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from random import Random

from . import catalog


@dataclass(slots=True)
class Therapist:
    therapist_id: str
    location_id: str
    profession: str
    is_trainee: bool
    effect: float  # shift of the chance to improve, e.g. +0.05

    def row(self) -> list[str]:
        return [self.therapist_id, self.location_id, self.profession, "1" if self.is_trainee else "0"]


@dataclass(slots=True)
class Location:
    location_id: str
    name: str
    region: str | None
    weight: float  # relative share of the concern's episodes
    effect: float
    therapists: list[Therapist] = field(default_factory=list)

    def row(self) -> list[str]:
        return [self.location_id, self.name, self.region or ""]


@dataclass(slots=True)
class Concern:
    concern_id: str
    name: str
    city: str
    province: str
    source_system: str
    n_episodes: int
    effect: float
    locations: list[Location]

    @property
    def therapists(self) -> list[Therapist]:
        return [t for location in self.locations for t in location.therapists]


def split_episodes(rng: Random, total: int, n_concerns: int) -> list[int]:
    """Split ``total`` episodes unevenly (large and small concerns), each getting at least one."""
    weights = [rng.uniform(0.2, 1.0) ** 2 for _ in range(n_concerns)]
    floor_each = 1 if total >= n_concerns else 0
    spare = total - floor_each * n_concerns
    shares = [spare * w / sum(weights) for w in weights]
    counts = [floor_each + int(s) for s in shares]
    # Largest remainders get the episodes that rounding down left over.
    by_remainder = sorted(range(n_concerns), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def build_concern(seed: int, index: int, concern_id: str, name: str, n_episodes: int) -> Concern:
    rng = Random(f"{seed}:{concern_id}:organisation")
    province = rng.choice(sorted(catalog.PROVINCE_CITIES))
    city = rng.choice(catalog.PROVINCE_CITIES[province])
    locations = _locations(rng, name, province, n_episodes)
    _staff(rng, locations, n_episodes)
    return Concern(concern_id=concern_id, name=name, city=city, province=province,
                   source_system=catalog.SOURCE_SYSTEMS[index % len(catalog.SOURCE_SYSTEMS)],
                   n_episodes=n_episodes, effect=rng.gauss(0, 0.04), locations=locations)


def _locations(rng: Random, concern_name: str, province: str, n_episodes: int) -> list[Location]:
    count = min(60, 2 + round(n_episodes / 4000) + rng.randint(0, 3))
    width = max(2, len(str(count)))
    stem = catalog.short_name(concern_name)
    provinces = sorted(catalog.PROVINCE_CITIES)
    locations = []
    for number in range(1, count + 1):
        # Most branches are in the home province; a few concerns reach into a neighbour.
        where = province if rng.random() < 0.9 else rng.choice(provinces)
        city = rng.choice(catalog.PROVINCE_CITIES[where])
        quirk = rng.choice(catalog.LOCATION_QUIRKS).format(
            district=rng.choice(catalog.DISTRICTS), landmark=rng.choice(catalog.LANDMARKS))
        region = None if rng.random() < 0.05 else where
        locations.append(Location(location_id=f"L{number:0{width}d}", name=f"{stem} {city}{quirk}",
                                  region=region, weight=rng.lognormvariate(0, 0.6),
                                  effect=rng.gauss(0, 0.04)))
    return locations


def _staff(rng: Random, locations: list[Location], n_episodes: int) -> None:
    """Therapists per location in proportion to its size; ~55 episodes per therapist in 3 years."""
    total_weight = sum(loc.weight for loc in locations)
    wanted = max(2 * len(locations), round(n_episodes / 55))
    per_location = [max(2, math.ceil(wanted * loc.weight / total_weight)) for loc in locations]
    width = max(3, len(str(sum(per_location))))
    number = 0
    for location, count in zip(locations, per_location):
        for position in range(count):
            number += 1
            # Trainees need a supervisor: every location's first therapist is experienced.
            trainee = position > 0 and rng.random() < catalog.TRAINEE_SHARE
            # Trainees achieve a little less on average; experienced therapists vary more.
            effect = rng.gauss(-0.04, 0.04) if trainee else rng.gauss(0.0, 0.07)
            location.therapists.append(Therapist(
                therapist_id=f"T{number:0{width}d}", location_id=location.location_id,
                profession=catalog.PROFESSION.draw(rng), is_trainee=trainee, effect=effect))
    staff = [t for location in locations for t in location.therapists]
    if not any(t.is_trainee for t in staff):  # the case-mix breakdown by trainee needs both kinds
        staff[-1].is_trainee = True
