"""DER placement per ADN: a placement table (``coordinator/data/placement.csv``) or the ``auto`` rules.

``auto`` (see ``docs/scenario-format.md``), deterministic so that a scenario always builds the same case:

- prosumers: the ``prosumers`` non-root buses with the largest nominal load (ties: lower bus number). If the grid
  carries its own sgens (simbench), those are the PV and the prosumers are the ``prosumers`` non-root sgen buses
  with the largest installed power; ``pv_share`` is then refused (the grid's own PV is used as it is);
- PV (grids without sgens): ``pv_share`` x the ADN's nominal peak load in total, split over the prosumers in
  proportion to their nominal load;
- BESS: ``bess.count`` units at the first prosumers (largest first), each of ``p_mw`` (or ``p_share`` x nominal
  peak load) and ``e_mwh`` (or ``hours`` x its power), SoC limits as fractions of the energy.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from coordinator.case import Bess
from coordinator.grids.adn import ADNStatic
from coordinator.grids.source import GridError

AUTO = "auto"


def default_placement_csv() -> Path:
    """The shipped placement table, package data of ``coordinator`` (found the same way in a checkout and a wheel)."""
    return Path(str(importlib.resources.files("coordinator").joinpath("data").joinpath("placement.csv")))


PLACEMENT_CSV = default_placement_csv()


@dataclass(frozen=True)
class BessSpec:
    """One battery as written in the placement table (energies as SoC fractions of ``e_mwh``)."""

    bus: int
    p_mw: float
    e_mwh: float
    eta: float
    soc_min: float
    soc_max: float
    soc0: float

    def to_bess(self) -> Bess:
        return Bess(
            bus=self.bus,
            pmax=self.p_mw,
            emax=self.soc_max * self.e_mwh,
            emin=self.soc_min * self.e_mwh,
            e0=self.soc0 * self.e_mwh,
            eta_c=self.eta,
            eta_d=self.eta,
        )


@dataclass(frozen=True)
class Placement:
    """PV and BESS of one ADN; the prosumers are the PV owners unless given."""

    name: str
    pv_bus: tuple[int, ...]
    pv_peak: tuple[float, ...]
    bess: tuple[BessSpec, ...]
    prosumers: tuple[int, ...] | None = None  # None: the PV buses

    @property
    def pv_total(self) -> float:
        return float(sum(self.pv_peak))

    @property
    def owners(self) -> tuple[int, ...]:
        return self.pv_bus if self.prosumers is None else self.prosumers


_PLACEMENT_COLUMNS = ("adn", "kind", "bus", "p_mw", "e_mwh", "eta", "soc_min", "soc_max", "soc0")


def load_placements(path: str | Path | None = None) -> dict[str, Placement]:
    """Read the placement table (CSV, ``#`` comment lines allowed); see ``data/README.md`` for the columns."""
    path = Path(path) if path is not None else PLACEMENT_CSV
    return dict(_load_placements(str(path.resolve())))


@functools.lru_cache(maxsize=8)
def _load_placements(path: str) -> tuple[tuple[str, Placement], ...]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if line.strip() and not line.lstrip().startswith("#")))
    pv: dict[str, list[tuple[int, float]]] = {}
    bess: dict[str, list[BessSpec]] = {}
    for k, row in enumerate(rows, start=1):
        where = f"{path}, data row {k}"
        missing = [c for c in _PLACEMENT_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"{where}: missing columns {missing}; expected {list(_PLACEMENT_COLUMNS)}")
        adn, kind = row["adn"].strip(), row["kind"].strip().lower()
        if adn == AUTO:
            raise ValueError(f"{where}: placement name {AUTO!r} is reserved for the automatic rules")
        bus = int(row["bus"])
        if bus < 1:
            raise ValueError(f"{where}: bus {bus} must be a non-root bus (>= 1; bus 0 is the root)")
        pv.setdefault(adn, [])
        bess.setdefault(adn, [])
        if kind == "pv":
            pv[adn].append((bus, float(row["p_mw"])))
        elif kind == "bess":
            spec = BessSpec(bus, *(float(row[c]) for c in _PLACEMENT_COLUMNS[3:]))
            if not 0.0 <= spec.soc_min <= spec.soc0 <= spec.soc_max <= 1.0:
                raise ValueError(f"{where}: need 0 <= soc_min <= soc0 <= soc_max <= 1")
            bess[adn].append(spec)
        else:
            raise ValueError(f"{where}: kind {kind!r} must be 'pv' or 'bess'")
    out = []
    for adn in pv:
        buses = [b for b, _ in pv[adn]]
        if len(set(buses)) != len(buses):
            raise ValueError(f"{path}: ADN {adn!r} lists a PV bus twice")
        out.append((adn, Placement(adn, tuple(buses), tuple(p for _, p in pv[adn]), tuple(bess[adn]))))
    return tuple(out)


# --------------------------------------------------------------------------------------------------------------------
# automatic placement


@dataclass(frozen=True)
class BessRule:
    """``count`` batteries; power ``p_mw`` or ``p_share`` x peak load; energy ``e_mwh`` or ``hours`` x power."""

    count: int = 3
    p_mw: float | None = None
    p_share: float | None = None  # default 0.135 when neither is given (0.5 MW on case33bw)
    e_mwh: float | None = None
    hours: float | None = None  # default 4 when neither is given
    eta: float = 0.95
    soc_min: float = 0.1
    soc_max: float = 0.9
    soc0: float = 0.5

    def power(self, peak_load: float) -> float:
        if self.p_mw is not None:
            return self.p_mw
        return (0.135 if self.p_share is None else self.p_share) * peak_load

    def energy(self, power: float) -> float:
        if self.e_mwh is not None:
            return self.e_mwh
        return (4.0 if self.hours is None else self.hours) * power


@dataclass(frozen=True)
class AutoRule:
    """Parameters of ``placement: auto``; ``pv_share`` None means 0.75 (or the grid's own sgens if it has any)."""

    pv_share: float | None = None
    prosumers: int = 8
    bess: BessRule = BessRule()


DEFAULT_PV_SHARE = 0.75


def auto_placement(name: str, grid: ADNStatic, rule: AutoRule) -> Placement:
    """The DER of ``rule`` on ``grid`` (module docstring); buses in case numbering."""
    peak = grid.peak_load
    own_pv = bool(grid.sgen_bus)
    if own_pv:
        if rule.pv_share is not None:
            raise GridError(f"{name}: pv_share is not used: grid {grid.label} has its own sgens "
                            f"({sum(grid.sgen_peak):.3g} MW), which are its PV; drop pv_share")
        installed = dict(zip(grid.sgen_bus, grid.sgen_peak, strict=True))
        ranked = sorted((b for b in grid.sgen_bus if b != 0), key=lambda b: (-installed[b], b))
    else:
        ranked = sorted((b for b in grid.buses if b != 0 and grid.p_nom[b] > 0), key=lambda b: (-grid.p_nom[b], b))
    owners = tuple(ranked[: rule.prosumers])
    needed = max(rule.bess.count, 1 if (not own_pv and (rule.pv_share is None or rule.pv_share > 0)) else 0)
    if len(owners) < min(needed, rule.prosumers) or len(owners) < rule.bess.count:
        what = "non-root sgen buses" if own_pv else "non-root load buses"
        raise GridError(f"{name}: placement auto needs {max(needed, rule.bess.count)} {what} in {grid.label}, "
                        f"it has {len(ranked)}")
    pv_bus: tuple[int, ...] = ()
    pv_peak: tuple[float, ...] = ()
    if not own_pv:
        share = DEFAULT_PV_SHARE if rule.pv_share is None else rule.pv_share
        weight = sum(float(grid.p_nom[b]) for b in owners)
        if share > 0:
            pv_bus = owners
            pv_peak = tuple(share * peak * float(grid.p_nom[b]) / weight for b in owners)
    b = rule.bess
    p = b.power(peak)
    e = b.energy(p)
    bess = tuple(BessSpec(bus, p, e, b.eta, b.soc_min, b.soc_max, b.soc0) for bus in owners[: b.count])
    return Placement(f"{AUTO}:{name}", pv_bus, pv_peak, bess, prosumers=owners)


def rule_from_record(record: dict | None) -> AutoRule:
    """An :class:`AutoRule` from its JSON record (``dataclasses`` fields, as a run's HDF5 file stores the scenario)."""
    record = dict(record or {})
    bess = BessRule(**(record.pop("bess", None) or {}))
    return AutoRule(bess=bess, **record)
