"""Radioactivity amounts: parse what the order states and convert to millicuries.

1 mCi = 37 MBq exactly. Weight-based prescriptions (kBq/kg, as for radium-223) are turned into a
total when a body weight is on file; otherwise the per-kg amount is kept and flagged, because
supply units cannot be computed without it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from cds_service.knowledge.model import UnitRounding

# Millicuries per one unit of each spelling (UCUM codes and common written forms).
_MCI_PER_UNIT: dict[str, float] = {
    "ci": 1000.0,
    "mci": 1.0,
    "uci": 0.001, "µci": 0.001, "μci": 0.001, "microci": 0.001, "microcurie": 0.001, "microcuries": 0.001,
    "millicurie": 1.0, "millicuries": 1.0,
    "bq": 1 / 37_000_000.0,
    "kbq": 1 / 37_000.0,
    "mbq": 1 / 37.0,
    "gbq": 1000 / 37.0,
}

_TEXT = re.compile(
    r"(\d+(?:[.,]\d+)?)\s*(gbq|mbq|kbq|mci|millicuries?|µci|μci|uci|microcuries?)\b"
    r"(\s*/\s*kg\b|\s+per\s+kg\b)?(\s*(?:/|per)\s*(?:m?l|cc|vial|syringe|capsule)\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Activity:
    """What the order says about the amount: the total in mCi when it can be known."""

    stated: str
    mci: float | None = None
    mci_per_kg: float | None = None

    @property
    def needs_weight(self) -> bool:
        return self.mci is None and self.mci_per_kg is not None


def _unit_factor(unit: str) -> tuple[float, bool] | None:
    unit = unit.strip().lower().replace("[", "").replace("]", "").replace(" ", "")
    per_kg = unit.endswith("/kg")
    if per_kg:
        unit = unit[:-3]
    factor = _MCI_PER_UNIT.get(unit)
    return (factor, per_kg) if factor is not None else None


def from_quantity(value: float, unit: str, weight_kg: float | None) -> Activity | None:
    """An Activity from a FHIR Quantity's value and unit code, or None when it is not radioactivity."""
    parsed = _unit_factor(unit)
    if parsed is None or value <= 0:
        return None
    factor, per_kg = parsed
    stated = f"{value:g} {unit}"
    if per_kg:
        per = value * factor
        return Activity(stated=stated, mci=per * weight_kg if weight_kg else None, mci_per_kg=per)
    return Activity(stated=stated, mci=value * factor)


def from_text(text: str, weight_kg: float | None) -> Activity | None:
    """The first radioactivity amount written in free text (e.g. ``"55 kBq/kg"``, ``"200 mCi"``); an
    amount per mL, per vial or per dose is a strength, not what is ordered, and is skipped."""
    match = next((m for m in _TEXT.finditer(text) if not m.group(4)), None)
    if not match:
        return None  # a strength or concentration (kBq/mL, mCi per vial) is not the ordered activity
    value = float(match.group(1).replace(",", "."))
    unit = match.group(2) + ("/kg" if match.group(3) else "")
    return from_quantity(value, unit, weight_kg)


def quantity_text(quantity: object) -> str | None:
    """How a Quantity reads on the order (``"1 {pill}"``), to say what it states instead of an activity."""
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), (int, float)):
        return None
    unit = quantity.get("unit") or quantity.get("code") or ""
    return f"{quantity['value']:g} {unit}".strip()


def round_units(amount: float, rounding: UnitRounding = UnitRounding()) -> int:
    """Whole billing units: CMS rounds a dose that is not a multiple of the descriptor up to the next
    unit; a float error within the tolerance is not a fraction, and a dose is never below the minimum."""
    if rounding.direction == "half-up":
        whole = int(Decimal(str(amount)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    else:
        whole = math.ceil(amount - rounding.tolerance)
    return max(rounding.minimum, whole)
