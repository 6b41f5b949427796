"""Vocabularies of export contract 1.0 and the proportions the generator draws them with.

Proportions are plausible for Dutch outpatient mental-health care (generalist
basic care and specialised care); they are illustrative, not published figures.
"""
from __future__ import annotations

import itertools
from bisect import bisect
from random import Random

# --- contract 1.0 column order per file (the header row) --------------------------------
COLUMNS = {
    "locations.csv": ["location_id", "location_name", "region"],
    "therapists.csv": ["therapist_id", "location_id", "profession", "is_trainee"],
    "episodes.csv": ["episode_id", "client_id", "location_id", "therapist_id", "care_type",
                     "diagnosis_group", "referrer", "start_date", "end_date", "end_reason",
                     "sessions_attended", "age_at_start", "sex"],
    "measurements.csv": ["measurement_id", "episode_id", "instrument", "administered_on",
                         "session_number", "occasion", "total_score"],
    "item_responses.csv": ["measurement_id", "item", "response"],
}
DATA_FILES = list(COLUMNS)

# Instrument registry of the contract: (items, item_min, item_max, total_min, total_max).
# items None: delivered as a total only.
INSTRUMENTS = {
    "SCL90": (90, 1, 5, 90, 450),
    "HDRS": (None, None, None, 0, 52),  # 17 items exist, but the systems deliver the total
    "UBOS": (5, 0, 6, 0, 6),
    "WAV": (12, 1, 5, 12, 60),
    "CQI": (1, 0, 10, 0, 10),
    "SF36": (None, None, None, 0, 100),
    "WORK": (None, None, None, 0, 80),
}
SCL90_NORM = 118  # mean Dutch population score (seed 000)


class Choice:
    """A weighted categorical draw with precomputed cumulative weights (fast per call)."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.values = list(weights)
        self._cumulative = list(itertools.accumulate(weights.values()))
        self._total = self._cumulative[-1]

    def draw(self, rng: Random) -> str:
        return self.values[bisect(self._cumulative, rng.random() * self._total)]

    def at(self, share: float) -> str:
        """The value at cumulative ``share`` in [0, 1) (for draws from a hash instead of an RNG)."""
        return self.values[bisect(self._cumulative, share * self._total)]


PROFESSION = Choice({"psychologist": 48, "psychotherapist": 15, "psychiatrist": 10,
                     "nurse_specialist": 17, "other": 10})
TRAINEE_SHARE = 0.2  # GZ-psychologists and psychotherapists in training
CARE_TYPE = Choice({"basic": 45, "specialised": 55})
DIAGNOSIS = {
    "basic": Choice({"depression": 30, "dysthymia": 5, "anxiety": 26, "somatoform": 5,
                     "substance_use": 2, "impulse_control": 3, "stress_burnout": 17, "other": 12}),
    "specialised": Choice({"depression": 30, "dysthymia": 7, "anxiety": 20, "somatoform": 6,
                           "substance_use": 10, "impulse_control": 5, "stress_burnout": 7, "other": 15}),
}
REFERRER = Choice({"gp": 72, "occupational_physician": 5, "medical_specialist": 8, "self": 5, "other": 10})
# Burn-out clients are often sent by the company doctor.
REFERRER_BURNOUT = Choice({"gp": 50, "occupational_physician": 38, "medical_specialist": 2, "self": 4, "other": 6})
END_REASON = Choice({"completed": 70, "dropout": 18, "referred": 8, "other": 4})
SEX = Choice({"female": 60, "male": 38, "other": 1, "unknown": 1})

# Age of clients (years): (age, cumulative share) points of an inverse distribution function.
AGE_QUANTILES = [(12, 0.0), (18, 0.03), (25, 0.17), (35, 0.41), (45, 0.61), (55, 0.79),
                 (65, 0.92), (80, 0.99), (95, 1.0)]

# --- names ----------------------------------------------------------------------------
PROVINCE_CITIES = {
    "Groningen": ["Groningen", "Veendam", "Delfzijl"],
    "Fryslân": ["Leeuwarden", "Sneek", "Heerenveen"],
    "Drenthe": ["Assen", "Emmen", "Meppel"],
    "Overijssel": ["Zwolle", "Deventer", "Enschede", "Almelo"],
    "Flevoland": ["Lelystad", "Almere", "Emmeloord"],
    "Gelderland": ["Arnhem", "Nijmegen", "Apeldoorn", "Ede", "Tiel", "Doetinchem"],
    "Utrecht": ["Utrecht", "Amersfoort", "Zeist", "Nieuwegein"],
    "Noord-Holland": ["Haarlem", "Alkmaar", "Hoorn", "Hilversum", "Zaandam"],
    "Zuid-Holland": ["Leiden", "Delft", "Gouda", "Dordrecht", "Zoetermeer"],
    "Zeeland": ["Middelburg", "Goes", "Terneuzen"],
    "Noord-Brabant": ["'s-Hertogenbosch", "Tilburg", "Eindhoven", "Breda", "Helmond", "Oss"],
    "Limburg": ["Maastricht", "Venlo", "Roermond", "Heerlen", "Weert"],
}
CONCERN_PREFIXES = ["GGZ", "Stichting", "Zorggroep", "Psychologenpraktijk", "Centrum voor Psychotherapie",
                    "Behandelcentrum", "Psychiatrisch Centrum", "Praktijk voor Psychologie"]
CONCERN_STEMS = ["De Linde", "Het Baken", "Maasoever", "De Waarden", "Veluwezoom", "De Kempen",
                 "Westfriesland", "Lingezegen", "Het Groene Hart", "Zuiderzee", "De Horst", "Amstelland",
                 "Eemland", "De Peel", "Vechtstreek", "Kennemerland", "Achterhoek", "De Liemers",
                 "Dommeldal", "Hollands Midden", "Reestdal", "De Bevelanden", "Noorderzijl", "Heuvelland",
                 "Drechtsteden", "Rijnmond-Oost", "Gooi en Vecht", "Salland", "Twentekanaal", "Dinkelland"]
LOCATION_QUIRKS = ["", "", "", " ({district})", ', locatie "{landmark}"', "; deeltijdbehandeling"]
DISTRICTS = ["Centrum", "Noord", "Oost", "Zuid", "West", "Stationsgebied", "Binnenstad"]
LANDMARKS = ["De Brug", "Het Anker", "De Vaart", "Het Kompas", "De Boog", "Zonnehof", "Het Pakhuis"]
SOURCE_SYSTEMS = ["ZorgDossier 5.2 + ROM-portaal 3.1", "Cliëntvolgsysteem GGZ 2024.4",
                  "EPD Vitaal 11 / Meetmodule 2.7", "PraktijkPlan EPD 8.0"]


def concern_names(rng: Random, count: int) -> list[str]:
    """``count`` distinct Dutch-sounding concern names (prefix + stem), in a seeded order."""
    pool = [f"{prefix} {stem}" for prefix in CONCERN_PREFIXES for stem in CONCERN_STEMS]
    rng.shuffle(pool)
    # Beyond the pool (hundreds of concerns) number the names so they stay distinct.
    return [pool[i % len(pool)] + (f" {i // len(pool) + 1}" if i >= len(pool) else "") for i in range(count)]


def short_name(concern_name: str) -> str:
    """The stem that locations are named after ("GGZ De Linde" -> "De Linde")."""
    for prefix in sorted(CONCERN_PREFIXES, key=len, reverse=True):
        if concern_name.startswith(prefix + " "):
            return concern_name[len(prefix) + 1:]
    return concern_name
