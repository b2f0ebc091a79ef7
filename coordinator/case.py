"""Case data: the plain numbers every formulation block and simulator reads.

Units everywhere: MW, MVAr, MWh, hours, $/MWh. ADN impedances are per unit on a 1 MVA base, so
per-unit power equals MW and ``l`` (squared current) is in MVA^2 per unit of squared voltage.
Arrays indexed by period have shape (T,) or (T, n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Generator:
    """TN generator with cost alpha*p^2 + beta*p ($/h); name is "ext_grid" or "gen<pandapower index>"."""

    name: str
    bus: int
    pmin: float
    pmax: float
    alpha: float
    beta: float


@dataclass(frozen=True)
class TNLine:
    name: str
    from_bus: int
    to_bus: int
    b_mw_per_rad: float  # baseMVA / x_pu
    fmax: float


@dataclass
class TransmissionNetwork:
    """DC-OPF data of the TN; ``base_load`` is the nominal load per bus, scaled per period by ``load_scale``.

    ``fixed_injection`` (MW per bus: non-controllable sgens and gens) is subtracted from the demand unscaled;
    ``source`` is the grid it was reduced from (``("case", name)`` or ``("file", path)``; None: ``("case", case)``).
    """

    case: str
    buses: list[int]
    ref_bus: int
    lines: list[TNLine]
    gens: list[Generator]
    base_load: dict[int, float]
    load_scale: np.ndarray  # (T,)
    source: tuple[str, str] | None = None
    fixed_injection: dict[int, float] = field(default_factory=dict)

    def demand(self, t: int) -> dict[int, float]:
        out = {n: d * float(self.load_scale[t]) for n, d in self.base_load.items()}
        for n, p in self.fixed_injection.items():
            out[n] = out.get(n, 0.0) - p
        return out


@dataclass(frozen=True)
class Branch:
    """Radial ADN branch from parent ``i`` to child ``j`` (per unit on 1 MVA)."""

    i: int
    j: int
    r: float
    x: float
    smax: float | None = None  # MVA at 1 p.u. voltage; ampacity l <= smax^2


@dataclass(frozen=True)
class Bess:
    bus: int
    pmax: float  # MW, charge and discharge
    emax: float  # MWh usable maximum
    emin: float  # MWh minimum
    e0: float  # MWh initial energy
    eta_c: float = 0.95
    eta_d: float = 0.95


@dataclass
class DistributionNetwork:
    """One ADN: a radial feeder with its root (bus 0) at the PCC on TN bus ``tn_bus``.

    ``source`` is the grid it was reduced from (``("case", "case33bw")``, ``("file", path)``, ``("simbench", code)``);
    ``bus_names`` names each bus of ``buses`` in that grid (empty: the bus numbers are the grid's own).
    """

    name: str
    tn_bus: int
    buses: list[int]
    branches: list[Branch]
    load_p: np.ndarray  # (T, n_bus) MW
    load_q: np.ndarray  # (T, n_bus) MVAr
    pv_bus: list[int]
    pv_peak: list[float]  # MW
    pv_avail: np.ndarray  # (T, n_pv) MW
    bess: list[Bess]
    prosumers: list[int]  # buses whose owner trades P2P (PV owners)
    vmin: float = 0.9
    vmax: float = 1.1
    pcc_limit: float = 10.0  # MW, substation transformer
    root: int = 0
    source: tuple[str, str] = ("case", "case33bw")
    bus_names: tuple[str, ...] = ()

    def children(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {b: [] for b in self.buses}
        for br in self.branches:
            out[br.i].append(br.j)
        return out


@dataclass(frozen=True)
class Prices:
    """Leader cost coefficients ($/MWh); tariff prices are used only in price mode ``tariff``."""

    c_tn_imp: float = 1.0
    c_tn_exp: float = 1.0
    c_wheel: float = 0.5
    c_ret: float = 2.0
    c_p2p: float = 0.1
    c_deg: float = 0.5
    c_curt: float = 1.0
    c_loss: float = 0.5
    tariff_import: tuple[float, ...] = ()  # per period, for price mode "tariff"
    tariff_export: tuple[float, ...] = ()
    price_cap: float = 1000.0  # $/MWh: bound on every follower multiplier (big-M on the dual side)


@dataclass
class Case:
    tn: TransmissionNetwork
    adns: list[DistributionNetwork]
    periods: int
    step_hours: float
    prices: Prices = field(default_factory=Prices)
    price_mode: str = "lmp"  # "lmp" | "tariff"
    inter_adn_p2p: bool = True
    start_hour: float = 0.0

    def validate(self) -> None:
        """Shape and physical-sanity checks that catch a mis-built case before a solver sees it. Messages name the
        ADN and the device (``adn1.bess[2].eta_c = 1.2``) and what is allowed."""
        t = self.periods
        if self.tn.load_scale.shape != (t,):
            raise ValueError(f"tn.load_scale has shape {self.tn.load_scale.shape}, expected ({t},)")
        _finite_nonneg("tn.load_scale", self.tn.load_scale)
        for a in self.adns:
            n = len(a.buses)
            for name in ("load_p", "load_q"):
                arr = getattr(a, name)
                if arr.shape != (t, n):
                    raise ValueError(f"{a.name}.{name} has shape {arr.shape}, expected ({t}, {n})")
                _finite(f"{a.name}.{name}", arr)
            if a.pv_avail.shape != (t, len(a.pv_bus)):
                raise ValueError(f"{a.name}.pv_avail has shape {a.pv_avail.shape}, expected ({t}, {len(a.pv_bus)})")
            if a.tn_bus not in self.tn.buses:
                raise ValueError(f"{a.name}.tn_bus={a.tn_bus} is not a TN bus")
            _check_adn_physics(a)
        if self.price_mode == "tariff":
            for name in ("tariff_import", "tariff_export"):
                if len(getattr(self.prices, name)) != t:
                    raise ValueError(f"prices.{name} needs {t} values for price mode 'tariff'")


def _bad(name: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"{name} = {value!r}: not physical; allowed: {allowed}")


def _finite(name: str, arr: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(np.asarray(arr, dtype=float)))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise _bad(f"{name}{list(index)}", float(np.asarray(arr)[index]), "a finite number")


def _finite_nonneg(name: str, arr: np.ndarray) -> None:
    _finite(name, arr)
    bad = np.argwhere(np.asarray(arr, dtype=float) < 0)
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise _bad(f"{name}{list(index)}", float(np.asarray(arr)[index]), ">= 0")


def _check_adn_physics(a: DistributionNetwork) -> None:
    """Efficiencies in (0, 1], capacities >= 0, ordered SoC and voltage bounds, finite numbers."""
    for j, peak in enumerate(a.pv_peak):
        if not math.isfinite(peak) or peak < 0:
            raise _bad(f"{a.name}.pv[{j}].peak_mw (bus {a.pv_bus[j]})", peak, "a finite number >= 0")
    _finite_nonneg(f"{a.name}.pv_avail", a.pv_avail)
    for b, bess in enumerate(a.bess):
        where = f"{a.name}.bess[{b}]"
        for name in ("eta_c", "eta_d"):
            eta = getattr(bess, name)
            if not math.isfinite(eta) or not 0.0 < eta <= 1.0:
                raise _bad(f"{where}.{name}", eta, "(0, 1]")
        for name in ("pmax", "emax", "emin", "e0"):
            value = getattr(bess, name)
            if not math.isfinite(value) or value < 0:
                raise _bad(f"{where}.{name}", value, "a finite number >= 0")
        if not bess.emin <= bess.e0 <= bess.emax:
            raise _bad(f"{where}.(emin, e0, emax)", (bess.emin, bess.e0, bess.emax), "emin <= e0 <= emax")
    for name in ("vmin", "vmax", "pcc_limit"):
        value = getattr(a, name)
        if not math.isfinite(value) or value < 0:
            raise _bad(f"{a.name}.{name}", value, "a finite number >= 0")
    if not a.vmin <= a.vmax:  # equal limits are extreme but physical (no voltage drop allowed)
        raise _bad(f"{a.name}.(vmin, vmax)", (a.vmin, a.vmax), "vmin <= vmax")
