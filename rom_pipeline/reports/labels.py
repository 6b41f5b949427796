"""Dutch labels and explanatory texts of the reports (seed 001 and seed 000 wording).

Bijlage 1 follows seed 001's explanations, corrected where the project follows the
seed's figures over its prose (docs/benchmark-rules.md: revenue growth divides by
year t-1; the average wage is wage sum / fte) and stating the formula we compute.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

# marts.financial_ratios.ratio -> label, in the seed's order.
FINANCIAL_RATIOS: list[tuple[str, str]] = [
    ("revenue_growth", "Omzetstijging"),
    ("net_result", "Nettoresultaat"),
    ("solvency", "Solvabiliteit"),
    ("resistance_capacity", "Weerstandsvermogen"),
    ("capital_intensity", "Kapitaalintensiteit"),
    ("liquidity", "Liquiditeit"),
    ("return_on_assets", "Rendement op activa"),
    ("return_on_equity", "Rendement op eigen vermogen"),
    ("ebitda", "Ebitda"),
    ("dscr1", "DSCR1"),
    ("dscr2", "DSCR2"),
    ("budget_per_client", "Gemiddeld budget per cliënt"),
    ("fte_per_client", "Gemiddeld aantal fte per cliënt"),
    ("sick_leave", "Verzuim"),
    ("average_wage", "Gecorrigeerd gemiddeld loon"),
    ("external_staff_share", "Deel inhuur van personeelskosten"),
    ("part_time_ratio", "Deeltijdratio"),
]

SPENDING: list[tuple[str, str]] = [
    ("spending_personnel_costs", "Loonkosten"),
    ("spending_social_premiums", "Premies"),
    ("spending_external_staff_costs", "Inhuur externen"),
    ("spending_food_costs", "Voedingskosten"),
    ("spending_general_costs", "Algemene kosten"),
    ("spending_client_costs", "Cliëntgebonden kosten"),
    ("spending_maintenance_costs", "Onderhoud"),
    ("spending_depreciation", "Afschrijvingen"),
    ("spending_allocations", "Dotaties"),
    ("spending_gross_result", "Brutoresultaat"),
]

# staging.annual_reports columns of "Algemene informatie over het concern".
GENERAL_INFORMATION: list[tuple[str, str]] = [
    ("clients_jan1", "Aantal patiënten/cliënten in zorg/behandeling op 1 januari van verslagjaar (a)"),
    ("clients_new", "Aantal nieuw ingeschreven patiënten/cliënten in zorg/behandeling in verslagjaar (b)"),
    ("clients_total", "Totaal aantal patiënten/cliënten in zorg/behandeling in verslagjaar (c=a+b)"),
    ("clients_discharged", "Aantal uitgeschreven patiënten/cliënten in verslagjaar (d)"),
    ("clients_dec31", "Aantal patiënten/cliënten in zorg/behandeling op 31 december van verslagjaar"),
    ("employees", "Aantal ggz-geörienteerde personeelsleden in loondienst op 31 december"),
    ("fte", "Aantal fte ggz-geörienteerd personeel in loondienst op 31 december"),
]

REVENUE: list[tuple[str, str]] = [
    ("revenue_total", "Totaal bedrijfsopbrengsten"),
    ("revenue_ggz", "Bedrijfsopbrengsten GGZ"),
    ("other_income_non_ggz", "Overige inkomsten niet-GGZ"),
]

KEY_FACTS: list[tuple[str, str]] = [
    ("concern_name", "Naam"),
    ("city", "Plaats"),
    ("n_locations", "Aantal locaties"),
    ("n_org_units", "Aantal organisatorische eenheden"),
    ("n_directors", "Aantal bestuurders"),
    ("n_supervisors", "Aantal toezichthouders"),
]

CLUSTERS: list[tuple[str, str]] = [
    ("all", "Samenvattende kwaliteitsindicator"),
    ("CQ", "Samenvattende indicator CQ-meting"),
    ("kernset", "Samenvattende indicator kernset-meting"),
    ("FP", "Samenvattende indicator FP-meting"),
]

CLUSTER_TABLE_TITLES = {
    "CQ": "CQ-metingen (ervaren kwaliteit)",
    "kernset": "Kernset (zorginhoudelijke uitkomstindicatoren)",
    "FP": "FP-metingen (forensische psychiatrie)",
}

SIZE_GROUPS = {
    "size_1": "omzet minder dan € 1 miljoen",
    "size_2": "omzet € 1 tot 10 miljoen",
    "size_3": "omzet € 10 tot 100 miljoen",
    "size_4": "omzet € 100 miljoen of meer",
}

# The ROM indicators come from the indicator catalogue the warehouse was published with
# (config.indicator_catalogue): see IndicatorCatalogue at the end of this module.

BREAKDOWN_DIMENSIONS: list[tuple[str, str]] = [
    ("diagnosis_group", "Diagnosegroep"),
    ("referrer", "Verwijzer"),
    ("care_type", "Zorgsoort"),
    ("therapist_experience", "Ervaring behandelaar"),
    ("baseline_severity", "Ernst bij aanvang (SCL-90 voormeting)"),
]

CATEGORIES = {
    "depression": "Depressie", "dysthymia": "Dysthymie", "anxiety": "Angststoornissen",
    "somatoform": "Somatoforme stoornissen", "substance_use": "Middelengebruik",
    "impulse_control": "Impulscontrole", "stress_burnout": "Stress / burn-out", "other": "Overig",
    "gp": "Huisarts", "occupational_physician": "Bedrijfsarts", "medical_specialist": "Medisch specialist",
    "self": "Eigen initiatief", "basic": "Generalistische basis-ggz", "specialised": "Gespecialiseerde ggz",
    "trainee": "In opleiding", "experienced": "Ervaren", "unknown": "Onbekend",
    "no_pre_score": "Geen voormeting",
}
# Categories with a natural order (others: alphabetical by label, with Overig and Onbekend last).
CATEGORY_ORDER = {
    "baseline_severity": ["<150", "150-199", "200-249", ">=250", "no_pre_score", "unknown"],
    "therapist_experience": ["experienced", "trainee", "unknown"],
    "care_type": ["basic", "specialised", "unknown"],
}
LAST_CATEGORIES = ["other", "unknown"]


def category_sort_key(dimension: str, category: str) -> tuple:
    order = CATEGORY_ORDER.get(dimension)
    if order and category in order:
        return (0, order.index(category), "")
    last = LAST_CATEGORIES.index(category) + 1 if category in LAST_CATEGORIES else 0
    return (1 if not order else 2, last, label(CATEGORIES, category).casefold())

PROFESSIONS = {
    "psychologist": "psycholoog", "psychotherapist": "psychotherapeut", "psychiatrist": "psychiater",
    "nurse_specialist": "verpleegkundig specialist", "other": "overig",
}

COMPARATORS = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}


def label(mapping: dict[str, str], key: str | None) -> str:
    if key is None:
        return ""
    return mapping.get(key, key.replace("_", " "))


# Bijlage 1: one explanation per ratio (seed 001's text; formula as computed, docs/benchmark-rules.md).
BIJLAGE_1: list[tuple[str, str]] = [
    ("Omzetstijging",
     "Omzetstijging geeft weer hoezeer de omzet is gegroeid ten opzichte van het voorgaande jaar. "
     "De omzetstijging wordt gemeten door het totale budget van jaar t min het totale budget in jaar t-1 "
     "te delen door het totale budget in jaar t-1. Dit percentage geldt voor alle activiteiten van het "
     "concern. (De tekst van het voorbeeldrapport deelt door jaar t; de cijfers van dat rapport, "
     "bijvoorbeeld 61.3% in 2013, delen door jaar t-1. Wij volgen de cijfers.)"),
    ("Nettoresultaat",
     "Het netto bedrijfsresultaat geeft weer welk percentage van de inkomsten niet wordt besteed aan "
     "uitgaven. Het is een soort 'winst' voor de instelling, wat in een later jaar uitgegeven kan worden. "
     "Het bedrijfsresultaat versterkt het eigen vermogen van de instelling. Het nettoresultaat is het "
     "resultaat na dotaties, afschrijvingen, financieel saldo en belastingen. Berekening: nettoresultaat / "
     "totale bedrijfsopbrengsten."),
    ("Solvabiliteit",
     "De solvabiliteit is het aandeel eigen vermogen in het totale vermogen van de instelling. Een gezonde "
     "instelling houdt een solvabiliteit van minstens 10-20% aan om eventuele negatieve schokken te kunnen "
     "opvangen. Berekening: eigen vermogen / totaal vermogen."),
    ("Weerstandsvermogen",
     "Het weerstandsvermogen geeft aan hoeveel verlies een instelling kan opvangen met het eigen vermogen. "
     "Ook hierbij wordt meestal uitgegaan van een weerstandsvermogen van ongeveer 15%. Berekening: eigen "
     "vermogen / totale bedrijfsopbrengsten."),
    ("Kapitaalintensiteit",
     "De kapitaalintensiteit geeft weer hoeveel vermogen er nodig is om een euro omzet te genereren. "
     "Gemiddeld heeft de sector een ratio van ongeveer 0.8 tot 0.9. Dit betekent dat voor elke euro omzet "
     "ongeveer 80 cent aan kapitaalgoederen nodig is. Berekening: totaal vermogen / totale "
     "bedrijfsopbrengsten."),
    ("Liquiditeit",
     "De liquiditeit meet of de instelling genoeg vrij besteedbaar vermogen heeft om aan de "
     "kortetermijnverplichtingen te kunnen voldoen. Een te hoge liquiditeit kan betekenen dat 'geld "
     "onbenut op een bankrekening' staat. Er wordt geadviseerd om een liquiditeit van ongeveer 100% tot "
     "200% aan te houden. Berekening: vlottende activa / kortlopende schulden (current ratio)."),
    ("Rendement op activa",
     "Het rendement op activa wordt berekend door het nettoresultaat te delen door de totale activa "
     "(zoals de cijfers van het oorspronkelijke benchmarkrapport: de tekst daarvan noemt de brutomarge). "
     "Het is een maatstaf voor de efficiëntie van de instelling."),
    ("Rendement op eigen vermogen",
     "Het rendement op eigen vermogen wordt berekend door het nettoresultaat te delen door het eigen "
     "vermogen. Dit is een ruwe indicatie in hoeverre het eigen vermogen rendabel is geïnvesteerd. Bij een "
     "negatief eigen vermogen is het teken van dit kengetal niet te interpreteren."),
    ("Ebitda",
     "De EBITDA geeft weer wat de inkomsten zijn voordat wordt afgeschreven op materiële en immateriële "
     "activa, rente en belastingen. De EBITDA is sterk afhankelijk van de beslissing of een instelling de "
     "gebouwen huurt of in eigen bezit neemt. Omdat huurkosten onder reguliere uitgaven vallen, en "
     "afschrijvingen op vastgoed in eigen bezit niet, heeft een instelling die de gebouwen huurt een lagere "
     "EBITDA. Verder zijn de afschrijvingen op activa buiten het vastgoed zeer klein en dragen "
     "zorginstellingen normaliter geen belastingen af. Berekening: (brutoresultaat + afschrijvingen) / "
     "totale bedrijfsopbrengsten."),
    ("DSCR1 en DSCR2",
     "De Debt Service Coverage Ratio (DSCR) kan op twee manieren gemeten worden: in de enge zin (DSCR1) en "
     "in de ruime zin (DSCR2). De DSCR1 wordt als volgt berekend: (bedrijfsresultaat + rente-inkomsten) / "
     "rente-uitgaven. De DSCR2 wordt als volgt berekend: EBITDA / rente-uitgaven. De DSCR meet in hoeverre "
     "de inkomsten voldoende zijn om aan de financiële verplichtingen te voldoen. Bij een DSCR kleiner dan "
     "1 kan de instelling niet aan de financiële verplichtingen voldoen, en bij een DSCR groter dan 1 heeft "
     "de instelling nog mogelijkheden om nieuwe leningen aan te gaan (in theorie). De DSCR kent een grote "
     "spreiding en kan van jaar tot jaar sterk verschillen."),
    ("Gemiddeld budget per cliënt",
     "Het budget per cliënt geeft weer hoeveel inkomsten per cliënt beschikbaar zijn. Dit geeft de "
     "mogelijkheden weer om zorg te verlenen, en hangt sterk samen met de cliëntsamenstelling en de "
     "gemiddelde zorgzwaarte in de instelling. Berekening: bedrijfsopbrengsten GGZ / totaal aantal "
     "cliënten in zorg in het verslagjaar (c = a + b)."),
    ("Gemiddeld aantal fte per cliënt",
     "Het gemiddeld aantal fte per cliënt is afhankelijk van de mix tussen intramurale en extramurale "
     "cliënten. Aangezien extramurale cliënten vaak minder contacturen hebben, is het aantal fte per cliënt "
     "bij extramurale instellingen meestal lager dan bij intramurale instellingen. Berekening: fte / totaal "
     "aantal cliënten in zorg (c)."),
    ("Verzuim",
     "Een hoog verzuim gaat mogelijk gepaard met een lagere kwaliteit. Het gemiddelde verzuim ligt rond de "
     "5% in deze sector."),
    ("Gecorrigeerd gemiddeld loon",
     "Het gemiddeld loon wordt berekend door de loonsom te delen door het aantal fte. (Het voorbeeldrapport "
     "schrijft 'fte gedeeld door loonsom'; een loon is loonsom per fte.) Het gemiddeld loon wordt "
     "gecorrigeerd voor eventuele andere activiteiten van het concern, zodat het gecorrigeerde gemiddeld "
     "loon beter overeenkomt met de GGZ-werkzaamheden: de loonsom wordt vermenigvuldigd met het aandeel "
     "GGZ in de bedrijfsopbrengsten."),
    ("Deel inhuur van personeelskosten",
     "Het deel inhuur van personeelskosten geeft aan welk percentage van de loonkosten wordt besteed aan "
     "personeel niet in loondienst (PNIL). Ingehuurd personeel is over het algemeen duurder dan personeel in "
     "loondienst omdat vaak BTW moet worden afgedragen. Berekening: inhuur externen / (loonkosten + premies "
     "+ inhuur externen)."),
    ("Deeltijdratio",
     "De deeltijdratio is het aantal fte gedeeld door het aantal werknemers. De deeltijdratio is de fractie "
     "van een voltijd baan die gemiddeld wordt gewerkt. Bij een deeltijdratio van 0.6 werkt de gemiddelde "
     "medewerker in loondienst drie dagen."),
    ("Verdeling uitgaven",
     "De uitgaven worden verdeeld over een aantal uitgavencategorieën op basis van het jaarverslag, elk als "
     "percentage van de totale bedrijfsopbrengsten. Gemiddeld geeft een instelling ongeveer 50% uit aan "
     "loonkosten, 15% aan premies en overige kosten, 15% aan hotelmatige kosten (cliëntgebonden kosten, "
     "voedingskosten, algemene kosten), 15% aan huisvestingskosten (afschrijvingen, huur, energiekosten en "
     "onderhoud) en 5% aan brutoresultaat en overig."),
    ("Brutoresultaat",
     "Het brutoresultaat is de totale bedrijfsopbrengsten min alle kostenposten. Uit het brutoresultaat "
     "moeten nog de rente op de leningen worden betaald. Ontvangen rente of bijzondere inkomsten zijn geen "
     "deel van de gewone bedrijfsvoering. Hierdoor kan het brutoresultaat van het netto bedrijfsresultaat "
     "afwijken. Een niet ingevulde kostenpost telt hier als nul (zoals in de cijfers van het "
     "voorbeeldrapport)."),
]


@dataclass(frozen=True)
class IndicatorCatalogue:
    """The indicators as the warehouse was published with them (``config.indicator_catalogue``, one row
    per entry of the catalogue in rom_pipeline/parameters.yaml): Dutch labels, order, direction, kind,
    range, and which ones the reports chart and break down. An indicator a deployment adds by
    configuration appears in the reports through this, without code.

    Each list below is worked out once per catalogue (``cached_property``): a tier M build asks them about
    two million times (every formatted cell asks ``counts`` and ``percent``). They are read, never changed."""

    rows: tuple[dict, ...]

    @classmethod
    def from_rows(cls, rows: list[dict]) -> "IndicatorCatalogue":
        return cls(tuple(sorted(rows, key=lambda r: r["position"])))

    def _codes(self, keep) -> list[str]:
        return [r["indicator"] for r in self.rows if keep(r)]

    @cached_property
    def labels(self) -> dict[str, str]:
        return {r["indicator"]: r["label_nl"] for r in self.rows}

    @cached_property
    def counts(self) -> list[str]:
        """Volumes (n_closed): shown as counts, never charted or benchmarked."""
        return self._codes(lambda r: r["kind"] == "count")

    @cached_property
    def order(self) -> list[str]:
        """The indicator tables' rows: every score, in catalogue order."""
        return self._codes(lambda r: r["kind"] != "count")

    @cached_property
    def charted(self) -> list[str]:
        return self._codes(lambda r: r["chart"])

    @cached_property
    def breakdown(self) -> list[str]:
        return self._codes(lambda r: r["breakdown"])

    @cached_property
    def with_target(self) -> list[str]:
        return self._codes(lambda r: r["target"] is not None)

    @cached_property
    def lower_is_better(self) -> set[str]:
        return set(self._codes(lambda r: r["higher_is_better"] is False))

    @cached_property
    def percent(self) -> set[str]:
        return set(self._codes(lambda r: r["unit"] == "%"))

    @cached_property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """The range a mean can take (charts cut funnel limits there); percentages are 0..100."""
        return {r["indicator"]: (r["lower_bound"], r["upper_bound"]) for r in self.rows
                if r["kind"] == "mean" and r["lower_bound"] is not None and r["upper_bound"] is not None}
