"""Case-mix model (issue 12, part 1): the expected outcome of an episode from its intake.

Pure functions over pandas frames, fitted with statsmodels (docs/outcome-rules.md s12):

- **OLS** of the percentage improvement on the predictors -> expected improvement per episode,
  and the model's residual variance (the spread of one episode around its expectation);
- **multinomial logit** (statsmodels ``MNLogit``) of the reliable-change category
  (recovered / improved / unchanged / deteriorated) -> expected probability of each.

Predictors: SCL90 pre-score (continuous) and the categories diagnosis_group, referrer,
care_type, age_band and sex (treatment coding; a missing value is the category
``unknown``). The reference level of a category is its most frequent level in the whole
benchmark population (ties by name), fixed once so that every left-out model has the same
terms.

Leave-unit-out: the model that judges a unit is fitted without that unit's episodes. A
level that occurs only inside the left-out unit (unseen in the training episodes) has no
estimate: its dummy column is left out of the fit, so the unit's episodes with it are
predicted as the reference level (:func:`fit_columns`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

CATEGORIES = ("recovered", "improved", "unchanged", "deteriorated")
CATEGORICAL = ("diagnosis_group", "referrer", "care_type", "age_band", "sex")
CONTINUOUS = ("pre_score",)
UNKNOWN = "unknown"
OLS_MODEL = "ols_improvement"
MNLOGIT_MODEL = "mnlogit_reliable_change"


def age_band(age, lower_edges: Iterable[float]) -> str:
    """The band of ``age`` for sorted lower edges: edges [18, 25] -> '<18', '18-24', '>=25'.

    NULL (None / NaN) is ``unknown``. An edge belongs to the band it opens.
    """
    edges = [int(e) for e in lower_edges]
    if edges != sorted(edges) or len(set(edges)) != len(edges):
        raise ValueError(f"casemix_age_bands must be increasing whole numbers, got {list(lower_edges)}")
    if age is None or (isinstance(age, float) and np.isnan(age)) or pd.isna(age):
        return UNKNOWN
    if not edges or age < edges[0]:
        return f"<{edges[0]}" if edges else "all"
    for low, high in zip(edges, edges[1:]):
        if low <= age < high:
            return f"{low}-{high - 1}"
    return f">={edges[-1]}"


def prepare(frame: pd.DataFrame, age_edges: Iterable[float]) -> pd.DataFrame:
    """Predictor columns as the model reads them: age banded, missing categories ``unknown``."""
    out = frame.copy()
    edges = list(age_edges)
    out["age_band"] = [age_band(a, edges) for a in out["age_at_start"]]
    for column in CATEGORICAL:
        out[column] = out[column].astype(object).where(out[column].notna(), UNKNOWN).astype(str)
    out["pre_score"] = out["pre_score"].astype(float)
    return out


@dataclass(frozen=True)
class Design:
    """The terms of every model: intercept, pre_score and one dummy per non-reference level."""

    reference: dict[str, str]
    levels: dict[str, list[str]]  # non-reference levels, sorted
    terms: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Design":
        reference, levels = {}, {}
        for column in CATEGORICAL:
            counts = frame[column].value_counts()
            # most frequent level, ties by name
            ref = sorted(counts.index, key=lambda v: (-counts[v], v))[0] if len(counts) else UNKNOWN
            reference[column] = ref
            levels[column] = sorted(v for v in counts.index if v != ref)
        terms = ["Intercept", *CONTINUOUS,
                 *[f"{c}[{v}]" for c in CATEGORICAL for v in levels[c]]]
        return cls(reference, levels, terms)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The design matrix (float64, one column per term). A level the design does not know
        (not in the population it was made from) is coded as the reference level."""
        columns = [np.ones(len(frame))]
        columns += [frame[c].to_numpy(dtype=float) for c in CONTINUOUS]
        for column in CATEGORICAL:
            values = frame[column].to_numpy(dtype=object)
            columns += [(values == v).astype(float) for v in self.levels[column]]
        return np.column_stack(columns)


def fit_columns(x_train: np.ndarray) -> np.ndarray:
    """Indexes of the columns a fit can estimate: every column but a dummy that is all zero in
    the training rows (a level seen only in the left-out unit; its episodes then count as the
    reference level, whose coefficient is 0)."""
    keep = np.ones(x_train.shape[1], dtype=bool)
    keep[2:] = x_train[:, 2:].any(axis=0)  # intercept and pre_score always stay
    return np.flatnonzero(keep)


def separable_columns_dropped(x_train: np.ndarray, codes: np.ndarray, n_categories: int) -> np.ndarray:
    """:func:`fit_columns` for the multinomial model, less every dummy whose level has no training
    episode in some outcome category: its estimate would run off to infinity (separation; the
    fit never converges). Such a level counts as the reference level in this model, as an
    unseen one does."""
    columns = fit_columns(x_train)
    counts = np.column_stack([x_train[codes == j].sum(axis=0) for j in range(n_categories)])
    return np.array([c for c in columns if c < 2 or (counts[c] > 0).all()], dtype=int)


@dataclass
class FittedModel:
    """One fitted model: its terms and statistics (for marts.casemix_models) and a predictor."""

    model: str
    columns: np.ndarray          # indexes into the design's terms
    params: np.ndarray           # (k,) for OLS; (k, J-1) for MNLogit
    bse: np.ndarray
    n_obs: int
    statistics: dict
    categories: tuple = ()       # MNLogit: the outcome categories present, the first is the reference
    cov: np.ndarray | None = None  # OLS: covariance matrix of the estimates

    def prediction_se(self, x: np.ndarray) -> np.ndarray:
        """OLS: standard error of each row's expected value, sqrt(x' Cov(b) x) (the model's own
        uncertainty, apart from the spread of one episode around its expectation)."""
        xs = x[:, self.columns]
        return np.sqrt(np.einsum("ij,jk,ik->i", xs, self.cov, xs))

    def predict(self, x: np.ndarray) -> np.ndarray:
        xs = x[:, self.columns]
        if self.model == OLS_MODEL:
            return xs @ self.params
        eta = np.column_stack([np.zeros(len(xs)), xs @ self.params])
        eta -= eta.max(axis=1, keepdims=True)
        p = np.exp(eta)
        p /= p.sum(axis=1, keepdims=True)
        out = np.zeros((len(xs), len(CATEGORIES)))
        for j, category in enumerate(self.categories):
            out[:, CATEGORIES.index(category)] = p[:, j]
        return out

    def term_rows(self, terms: list[str]) -> list[dict]:
        names = [terms[i] for i in self.columns]
        if self.model == OLS_MODEL:
            return [{"equation": None, "term": t, "estimate": float(b), "std_error": float(s)}
                    for t, b, s in zip(names, self.params, self.bse)]
        rows = []
        for j, category in enumerate(self.categories[1:]):
            equation = f"{category} vs {self.categories[0]}"
            rows += [{"equation": equation, "term": t, "estimate": float(b), "std_error": float(s)}
                     for t, b, s in zip(names, self.params[:, j], self.bse[:, j])]
        return rows


def fit_ols(x: np.ndarray, y: np.ndarray) -> FittedModel:
    """OLS of the percentage improvement (statsmodels); ``scale`` is the residual variance."""
    from statsmodels.regression.linear_model import OLS  # sm.OLS, without importing all of statsmodels.api

    columns = fit_columns(x)
    result = OLS(y, x[:, columns]).fit()
    return FittedModel(OLS_MODEL, columns, np.asarray(result.params), np.asarray(result.bse), int(result.nobs),
                       {"r_squared": float(result.rsquared), "residual_variance": float(result.scale),
                        "log_likelihood": float(result.llf), "converged": True},
                       cov=np.asarray(result.cov_params()))


def null_log_likelihood(codes: np.ndarray) -> float:
    """Log-likelihood of the intercept-only multinomial model of ``codes`` (0..J-1).

    Its maximum-likelihood fit gives every category its share of the episodes, so the value is
    sum over categories of n_k log(n_k / n), exactly. statsmodels' ``llnull`` (and ``prsquared``,
    which reads it) finds the same number by fitting that model numerically, Nelder-Mead then BFGS:
    11.9 of the 27.9 s the tier M night's fits took (cProfile, issue 11).
    """
    counts = np.bincount(codes)
    counts = counts[counts > 0].astype(float)
    return float((counts * np.log(counts / counts.sum())).sum())


def fit_mnlogit(x: np.ndarray, category: np.ndarray, start: FittedModel | None = None,
                maxiter: int = 100) -> FittedModel:
    """Multinomial logit of the reliable-change category (statsmodels MNLogit, Newton).

    ``start``: a fitted model whose estimates start the iterations (warm start); terms it
    lacks start at 0. The reference category is the first of ``CATEGORIES`` present.
    """
    from statsmodels.discrete.discrete_model import MNLogit  # sm.MNLogit, without all of statsmodels.api
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

    present = tuple(c for c in CATEGORIES if (category == c).any())
    if len(present) < 2:
        raise ValueError("the multinomial model needs episodes in at least two reliable-change categories")
    codes = np.searchsorted(np.array([CATEGORIES.index(c) for c in present]),
                            np.array([CATEGORIES.index(c) for c in category]))
    columns = separable_columns_dropped(x, codes, len(present))
    start_params = None
    if start is not None and start.categories == present:
        start_params = np.zeros((len(columns), len(present) - 1))
        position = {c: i for i, c in enumerate(start.columns)}
        for row, c in enumerate(columns):
            if c in position:
                start_params[row] = start.params[position[c]]
        start_params = start_params.ravel(order="F")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", HessianInversionWarning)
        warnings.simplefilter("always", RuntimeWarning)
        result = MNLogit(codes, x[:, columns]).fit(method="newton", start_params=start_params,
                                                      maxiter=maxiter, disp=0)
    converged = bool(result.mle_retvals.get("converged", False))
    params = np.asarray(result.params).reshape(len(columns), len(present) - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bse = np.asarray(result.bse).reshape(len(columns), len(present) - 1)
    llnull = null_log_likelihood(codes)
    return FittedModel(MNLOGIT_MODEL, columns, params, bse, int(result.nobs),
                       {"log_likelihood": float(result.llf), "deviance": float(-2 * result.llf),
                        "null_deviance": -2 * llnull, "pseudo_r_squared": 1 - float(result.llf) / llnull,
                        "converged": converged, "iterations": int(result.mle_retvals.get("iterations", 0)),
                        "warnings": "; ".join(sorted({str(w.category.__name__) for w in caught})) or None},
                       categories=present)


@dataclass(frozen=True)
class LeftOut:
    """One model of the plan: the episodes left out of its fit, and the episodes it judges (the same)."""

    model_id: str
    level: str                   # concern, concern_group or location
    concerns: tuple[str, ...]    # the concern(s) left out (location: the location's concern)
    location_id: str | None
    rows: np.ndarray             # row positions of the left-out episodes


def concern_group(concern_id: str, groups: int) -> int:
    """A concern's group when the concerns outnumber ``casemix_max_models``: a stable hash, so a
    concern keeps its group when other concerns come or go."""
    import hashlib

    return int(hashlib.sha256(concern_id.encode()).hexdigest()[:8], 16) % groups


def plan(frame: pd.DataFrame, min_training: int, max_models: int) -> list[LeftOut]:
    """Which models to fit, each leaving out a unit (docs/outcome-rules.md s12, leave-unit-out).

    - Every concern with at least ``min_training`` episodes outside it gets a model fitted
      without the concern; it judges the concern, its locations and its therapists. With more
      concerns than ``max_models``, concerns are grouped (:func:`concern_group`) and a model
      leaves out its whole group, so the cost stays at ``max_models`` fits.
    - A concern without enough episodes outside it (a deployment with one concern: seed 000's
      own organisation) gets one model per location, fitted without that location (and so
      including the concern's other locations); it judges the location and its therapists.
      The concern itself then has no expected value.
    A location without enough training episodes outside it gets no model (no expected value).
    """
    total = len(frame)
    concerns = frame.groupby("concern_id", sort=True).indices
    outside = {c: total - len(rows) for c, rows in concerns.items()}
    pooled = sorted(c for c in concerns if outside[c] >= min_training)
    out: list[LeftOut] = []
    if len(pooled) > max_models:
        groups: dict[int, list[str]] = {}
        for c in pooled:
            groups.setdefault(concern_group(c, max_models), []).append(c)
        for g, members in sorted(groups.items()):
            rows = np.sort(np.concatenate([concerns[c] for c in members]))
            if total - len(rows) >= min_training:
                out.append(LeftOut(f"concern_group:{g}", "concern_group", tuple(members), None, rows))
            else:
                pooled = [c for c in pooled if c not in members]
    else:
        out += [LeftOut(f"concern:{c}", "concern", (c,), None, np.asarray(concerns[c])) for c in pooled]
    for c in sorted(set(concerns) - {m for lo in out for m in lo.concerns}):
        sub = frame.iloc[concerns[c]]
        for location, rows in sorted(sub.groupby("location_id", sort=True).indices.items()):
            rows = np.asarray(concerns[c])[rows]
            if total - len(rows) >= min_training:
                out.append(LeftOut(f"location:{c}/{location}", "location", (c,), location, rows))
    return out


EXPECTED_COLUMNS = ["concern_id", "episode_id", "model_id", "left_out_level", "expected_improvement",
                    "expected_improvement_se", "improvement_variance", *[f"p_{c}" for c in CATEGORIES]]


def stable_order(frame: pd.DataFrame) -> np.ndarray:
    """A key per episode that orders them the same way every night (a hash of concern and episode id)."""
    ids = (frame["concern_id"].astype(str) + "/" + frame["episode_id"].astype(str)).to_numpy(dtype=object)
    return pd.util.hash_array(ids, categorize=False)


def training_rows(train: np.ndarray, order: np.ndarray, max_training: int | None) -> np.ndarray:
    """The rows a model is fitted on: every ``train`` row, or past ``max_training`` the ones first in
    ``order`` (:func:`stable_order`): a sample that stays the same as long as the episodes do."""
    rows = np.flatnonzero(train)
    if max_training is None or len(rows) <= max_training:
        return rows
    return np.sort(rows[np.argpartition(order[rows], max_training - 1)[:max_training]])


def judge(frame: pd.DataFrame, design: Design, min_training: int, max_models: int,
          log=lambda message: None, max_training: int | None = None
          ) -> tuple[pd.DataFrame, list[tuple[LeftOut, FittedModel]]]:
    """Fit every model of :func:`plan` and predict its left-out episodes.

    ``frame``: one row per complete episode (prepared by :func:`prepare`), with
    ``pct_improvement`` and ``reliable_change`` (NULL when the episode has no category).
    Returns one row per judged episode (``EXPECTED_COLUMNS``) and the fitted models.
    The multinomial fits start from a fit on every episode (warm start: fewer iterations).
    ``max_training`` caps each fit's episodes by a stable sample (:func:`training_rows`), so the
    cost of a night grows with the number of models, not with the data (issue 11).
    """
    frame = frame.reset_index(drop=True)
    x = design.matrix(frame)
    y = frame["pct_improvement"].to_numpy(dtype=float)
    category = frame["reliable_change"].to_numpy(dtype=object)
    has_category = pd.notna(frame["reliable_change"]).to_numpy()
    steps = plan(frame, min_training, max_models)
    order = stable_order(frame)
    try:
        warm = training_rows(has_category, order, max_training)
        start = fit_mnlogit(x[warm], category[warm]) if steps else None
    except ValueError:
        start = None
    parts, models = [], []
    for step in steps:
        train = np.ones(len(frame), dtype=bool)
        train[step.rows] = False
        rows = training_rows(train, order, max_training)
        ols = fit_ols(x[rows], y[rows])
        mn_rows = rows[has_category[rows]]
        try:
            mn = fit_mnlogit(x[mn_rows], category[mn_rows], start=start)
            probabilities = mn.predict(x[step.rows])
        except ValueError as exc:  # fewer than two categories outside the unit: no shares expected
            log(f"casemix model {step.model_id}: no multinomial model ({exc})")
            mn, probabilities = None, np.full((len(step.rows), len(CATEGORIES)), np.nan)
        part = pd.DataFrame({
            "concern_id": frame["concern_id"].to_numpy()[step.rows],
            "episode_id": frame["episode_id"].to_numpy()[step.rows],
            "model_id": step.model_id,
            "left_out_level": step.level,
            "expected_improvement": ols.predict(x[step.rows]),
            "expected_improvement_se": ols.prediction_se(x[step.rows]),
            "improvement_variance": ols.statistics["residual_variance"],
            **{f"p_{c}": probabilities[:, j] for j, c in enumerate(CATEGORIES)},
        })
        parts.append(part)
        models += [(step, ols)] + ([(step, mn)] if mn is not None else [])
        log(f"casemix model {step.model_id}: {ols.n_obs} episodes, R2 {ols.statistics['r_squared']:.3f}"
            + (f", pseudo-R2 {mn.statistics['pseudo_r_squared']:.3f}" if mn is not None else "")
            + ("" if mn is None or mn.statistics["converged"] else " (multinomial fit did not converge)"))
    expected = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXPECTED_COLUMNS)
    return expected[EXPECTED_COLUMNS], models


def model_rows(models: list[tuple[LeftOut, FittedModel]], design: Design, software_version: str) -> list[dict]:
    """One row per model and term, with the model's statistics (marts.casemix_models)."""
    import json

    rows = []
    for step, fitted in models:
        common = {
            "concern_id": step.concerns[0] if len(step.concerns) == 1 else None,
            "model_id": step.model_id, "model": fitted.model, "left_out_level": step.level,
            "left_out_concerns": ",".join(step.concerns), "left_out_location_id": step.location_id,
            "n_obs": fitted.n_obs,
            "r_squared": fitted.statistics.get("r_squared"),
            "residual_variance": fitted.statistics.get("residual_variance"),
            "log_likelihood": fitted.statistics.get("log_likelihood"),
            "deviance": fitted.statistics.get("deviance"),
            "null_deviance": fitted.statistics.get("null_deviance"),
            "pseudo_r_squared": fitted.statistics.get("pseudo_r_squared"),
            "converged": fitted.statistics.get("converged"),
            "software": "statsmodels", "software_version": software_version,
            "method": "OLS" if fitted.model == OLS_MODEL else "MNLogit (Newton, warm start)",
            "reference_levels": json.dumps(design.reference, sort_keys=True),
            "terms_left_out": ",".join(t for i, t in enumerate(design.terms) if i not in set(fitted.columns)) or None,
        }
        rows += [{**common, **term} for term in fitted.term_rows(design.terms)]
    return rows


# The complete episodes the models are fitted on and judge (one row each), with the predictors.
EPISODES_SQL = """
    SELECT o.concern_id, o.episode_id, o.location_id, o.pre_score, o.pct_improvement, o.reliable_change,
           o.diagnosis_group, o.referrer, o.care_type, e.age_at_start, e.sex
    FROM marts.episode_outcomes AS o
    JOIN staging.episodes AS e
      ON e.concern_id = o.concern_id AND e.delivery_id = o.delivery_id AND e.episode_id = o.episode_id
    WHERE o.is_closed AND o.has_complete_scores AND o.pct_improvement IS NOT NULL
    ORDER BY o.concern_id, o.episode_id"""

MODELS_DDL = """
    CREATE OR REPLACE TABLE marts.casemix_models (
        run_id VARCHAR, concern_id VARCHAR, model_id VARCHAR, model VARCHAR, left_out_level VARCHAR,
        left_out_concerns VARCHAR,
        left_out_location_id VARCHAR, equation VARCHAR, term VARCHAR, estimate DOUBLE, std_error DOUBLE,
        n_obs BIGINT, r_squared DOUBLE, residual_variance DOUBLE, log_likelihood DOUBLE, deviance DOUBLE,
        null_deviance DOUBLE, pseudo_r_squared DOUBLE, converged BOOLEAN, software VARCHAR,
        software_version VARCHAR, method VARCHAR, predictors VARCHAR, reference_levels VARCHAR,
        terms_left_out VARCHAR, age_bands VARCHAR, min_training_episodes BIGINT, max_models BIGINT,
        max_training_episodes BIGINT)"""

EXPECTED_DDL = """
    CREATE OR REPLACE TABLE outcomes.casemix_expected (
        concern_id VARCHAR, episode_id VARCHAR, model_id VARCHAR, left_out_level VARCHAR,
        expected_improvement DOUBLE, expected_improvement_se DOUBLE, improvement_variance DOUBLE, p_recovered DOUBLE, p_improved DOUBLE,
        p_unchanged DOUBLE, p_deteriorated DOUBLE)"""


def build(con, run_id: str | None, age_edges, min_training: int, max_models: int,
          log=lambda message: None, max_training: int | None = None) -> dict:
    """Fit the case-mix models on the work database and write ``outcomes.casemix_expected`` (per
    episode) and ``marts.casemix_models`` (per model and term). Returns counts for the run's log."""
    import statsmodels

    frame = con.execute(EPISODES_SQL).df()
    frame = prepare(frame, age_edges)
    design = Design.of(frame)
    expected, models = judge(frame, design, int(min_training), int(max_models), log,
                             None if max_training is None else int(max_training))
    con.execute("CREATE SCHEMA IF NOT EXISTS outcomes")
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(EXPECTED_DDL)
    con.execute(MODELS_DDL)
    if len(expected):
        con.register("casemix_expected_frame", expected)
        # NaN (no multinomial model for the unit) is stored as NULL: no expectation, not a number
        select = ", ".join(f"CASE WHEN isnan({c}) THEN NULL ELSE {c} END" if expected[c].dtype.kind == "f" else c
                           for c in EXPECTED_COLUMNS)
        con.execute(f"INSERT INTO outcomes.casemix_expected SELECT {select} FROM casemix_expected_frame")
        con.unregister("casemix_expected_frame")
    rows = pd.DataFrame(model_rows(models, design, statsmodels.__version__))
    if len(rows):
        rows.insert(0, "run_id", run_id)
        rows["predictors"] = ", ".join([*CONTINUOUS, *CATEGORICAL])
        rows["age_bands"] = ", ".join(str(int(e)) for e in age_edges)
        rows["min_training_episodes"] = int(min_training)
        rows["max_models"] = int(max_models)
        rows["max_training_episodes"] = None if max_training is None else int(max_training)
        con.register("casemix_model_frame", rows)
        columns = [r[0] for r in con.execute("DESCRIBE marts.casemix_models").fetchall()]
        con.execute(f"INSERT INTO marts.casemix_models SELECT {', '.join(columns)} FROM casemix_model_frame")
        con.unregister("casemix_model_frame")
    return {"episodes": len(frame), "episodes_judged": len(expected), "models": len(models),
            "software_version": statsmodels.__version__}
