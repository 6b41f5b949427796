"""Number formats and the z-score colour scale of the reports: small pure functions.

One format everywhere, the one seed 001 prints: thousands separated by a comma,
decimals by a point, the euro sign before the amount with a space.

    percentage        61.3%        one decimal
    euro amount       € 2,970      whole euros
    plain ratio       0.41         two decimals (capital intensity, DSCR, fte per client)
    z-score           -0.2         one decimal
    indicator value   93.53        two decimals (the seed's "gemiddelde" column)
    count             1,234

A missing value is an empty string (the seed leaves the cell blank). Negative zero
is printed as 0 (a z of -0.04 rounds to "0.0", not "-0.0").
"""
from __future__ import annotations

import math
from numbers import Real

EMPTY = ""


def _is_missing(x) -> bool:
    return x is None or (isinstance(x, Real) and not math.isfinite(float(x)))


def _fixed(x: float, decimals: int) -> str:
    text = f"{float(x):,.{decimals}f}"
    # "-0.0" -> "0.0": rounding a tiny negative number must not print a sign.
    if text.startswith("-") and float(text.replace(",", "")) == 0:
        text = text[1:]
    return text


def fmt_number(x, decimals: int = 2) -> str:
    return EMPTY if _is_missing(x) else _fixed(x, decimals)


def fmt_pct(x, decimals: int = 1) -> str:
    """A value stored in percent (61.33) as the seed prints it: ``61.3%``."""
    return EMPTY if _is_missing(x) else f"{_fixed(x, decimals)}%"


def fmt_eur(x) -> str:
    """Euro, whole: ``€ 2,970``; negative ``€ -21,069``."""
    return EMPTY if _is_missing(x) else f"€ {_fixed(x, 0)}"


def fmt_ratio(x) -> str:
    return fmt_number(x, 2)


def fmt_z(x) -> str:
    return fmt_number(x, 1)


def fmt_count(x) -> str:
    return EMPTY if _is_missing(x) else f"{int(round(float(x))):,d}"


def fmt_by_unit(x, unit: str | None) -> str:
    """A financial ratio by the unit ``marts.financial_ratios`` gives it (percent, euro, ratio)."""
    if unit == "percent":
        return fmt_pct(x)
    if unit == "euro":
        return fmt_eur(x)
    return fmt_ratio(x)


def fmt_n(n, min_count: int = 5) -> str:
    """A count of episodes; below ``min_count`` it is never shown (design: counts below 5)."""
    if _is_missing(n):
        return EMPTY
    return f"<{min_count}" if n < min_count else fmt_count(n)


# --- z-score colour scale (seed 001: dark pink < -3, white at 0, dark yellow > 3) -----------------

Z_CLASS_NONE = "z-none"
# Bounds of |z| for the intensity steps 1..3; beyond 3 is step 4 (the "dark" ends of the scale).
_Z_STEPS = (0.5, 1.5, 2.5)


def z_colour_class(z) -> str:
    """CSS class of a z-score on the diverging scale of seed 001.

    ``z-0`` (white) for |z| < 0.5; ``z-pink-1..3`` / ``z-yellow-1..3`` for |z| from 0.5,
    1.5 and 2.5 up to 3 inclusive; ``z-pink-4`` (dark pink) below -3 and ``z-yellow-4``
    (dark yellow) above 3; ``z-none`` when there is no z. Pink is below the mean and
    yellow above it: neither colour means better or worse (the report says so).
    """
    if _is_missing(z):
        return Z_CLASS_NONE
    z = float(z)
    size = abs(z)
    if size > 3:
        step = 4
    else:
        step = sum(size >= bound for bound in _Z_STEPS)
    if step == 0:
        return "z-0"
    return f"z-{'pink' if z < 0 else 'yellow'}-{step}"


Z_LEGEND = [
    ("z-pink-4", "< -3"), ("z-pink-3", "-3 tot -2.5"), ("z-pink-2", "-2.5 tot -1.5"),
    ("z-pink-1", "-1.5 tot -0.5"), ("z-0", "-0.5 tot 0.5"), ("z-yellow-1", "0.5 tot 1.5"),
    ("z-yellow-2", "1.5 tot 2.5"), ("z-yellow-3", "2.5 tot 3"), ("z-yellow-4", "> 3"),
]
