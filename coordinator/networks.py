"""Build :mod:`coordinator.case` network data from the pandapower test cases.

The TN comes from ``pandapower.networks.case30()`` (or any pandapower case with lines, two-winding trafos, ext_grids
and gens) reduced to DC-OPF data with the same per-unit conventions pandapower uses in its ppc, so that
``pp.rundcopp`` is an independent check of our follower. The ADNs come from ``case33bw()``: a radial feeder whose
branches are oriented away from the root and expressed per unit on a 1 MVA base (per-unit power = MW).

DER placement (PV and BESS per ADN) is read from ``coordinator/data/placement.csv`` (package data).
"""

from __future__ import annotations

import copy
import csv
import functools
import importlib.resources
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from coordinator.case import Bess, Branch, DistributionNetwork, Generator, TNLine, TransmissionNetwork

if TYPE_CHECKING:
    from coordinator.profiles import DayProfiles

ADN_CASE = "case33bw"
ADN_BASE_MVA = 1.0  # per-unit base of the ADN data: per-unit power equals MW
_UNRATED_KA = 99999.0  # pandapower's placeholder ampacity for "no rating" (case33bw uses it)
# Rating rule for unrated ADN branches (case33bw publishes none; see data/README.md, "ADN branch ratings"):
# RATING_MARGIN x the apparent nominal peak load downstream of the branch, and at least RATING_FLOOR_MVA.
RATING_MARGIN = 2.0
RATING_FLOOR_MVA = 1.0


def default_placement_csv() -> Path:
    """The shipped placement table, package data of ``coordinator`` (found the same way in a checkout and a wheel)."""
    return Path(str(importlib.resources.files("coordinator").joinpath("data").joinpath("placement.csv")))


# --------------------------------------------------------------------------------------------------------------------
# pandapower nets (cached)


@functools.cache
def _cached_net(case: str):  # noqa: ANN202 - pandapower has no public type for a net
    import pandapower.networks as pn

    factory = getattr(pn, case, None)
    if not callable(factory):
        raise ValueError(f"pandapower.networks has no case {case!r}")
    return factory()


def pandapower_net(case: str):  # noqa: ANN201
    """A fresh copy of a pandapower test case; building it once and copying is ~50x faster than rebuilding."""
    return copy.deepcopy(_cached_net(case))


def tn_load_buses(case: str = "case30") -> list[int]:
    """TN buses with at least one in-service load: the places an ADN may be hosted."""
    return sorted(_tn_static(case)[4])


def tn_branch_names(case: str = "case30") -> list[str]:
    """Names of the TN's in-service lines and transformers as in ``TNLine.name`` (``line7``, ``trafo2``)."""
    return [ln.name for ln in _tn_static(case)[2]]


# --------------------------------------------------------------------------------------------------------------------
# Transmission network


def _finite(value: float, default: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else default


@functools.cache
def _tn_static(case: str) -> tuple[tuple[int, ...], int, tuple[TNLine, ...], tuple[Generator, ...], dict[int, float]]:
    """Everything of the TN that does not depend on the period: buses, ref bus, lines, gens, nominal loads."""
    net = _cached_net(case)
    sn = float(net.sn_mva)
    vn = net.bus.vn_kv
    buses = tuple(int(b) for b in net.bus.index[net.bus.in_service.astype(bool)])

    lines: list[TNLine] = []
    for idx, ln in net.line[net.line.in_service.astype(bool)].iterrows():
        v = float(vn.at[ln.from_bus])
        par = float(ln.parallel)
        x_pu = ln.x_ohm_per_km * ln.length_km / par / (v**2 / sn)
        mlp = _finite(ln.get("max_loading_percent", 100.0), 100.0)
        fmax = _finite(ln.max_i_ka * ln.df * par * math.sqrt(3) * v * mlp / 100.0, math.inf)
        lines.append(TNLine(f"line{idx}", int(ln.from_bus), int(ln.to_bus), sn / x_pu, fmax))

    for idx, tr in net.trafo[net.trafo.in_service.astype(bool)].iterrows():
        if tr.shift_degree != 0 or bool(tr.get("tap_phase_shifter", False)):
            raise NotImplementedError(f"trafo {idx}: phase shifters are not supported in the DC model")
        v_hv, v_lv = float(vn.at[tr.hv_bus]), float(vn.at[tr.lv_bus])
        par = float(tr.parallel)
        # reactance referred to the LV side and the system base, as pandapower builds BR_X
        x_pu = (
            math.sqrt(tr.vk_percent**2 - tr.vkr_percent**2) / 100.0 * sn / tr.sn_mva / par * (tr.vn_lv_kv / v_lv) ** 2
        )
        ratio = (tr.vn_hv_kv / v_hv) / (tr.vn_lv_kv / v_lv)
        steps = _finite(tr.tap_pos, 0.0) - _finite(tr.tap_neutral, 0.0)
        tap = 1.0 + steps * _finite(tr.tap_step_percent, 0.0) / 100.0
        ratio = ratio * tap if tr.tap_side == "hv" else ratio / tap if tr.tap_side == "lv" else ratio
        mlp = _finite(tr.get("max_loading_percent", 100.0), 100.0)
        fmax = float(tr.sn_mva) * float(tr.df) * par * mlp / 100.0
        lines.append(TNLine(f"trafo{idx}", int(tr.hv_bus), int(tr.lv_bus), sn / (x_pu * ratio), fmax))

    for element in ("trafo3w", "impedance", "dcline", "sgen", "storage", "ward", "xward"):
        if len(net[element]) and net[element].in_service.astype(bool).any():
            raise NotImplementedError(f"{case}: in-service {element} elements are not supported in the DC model")

    costs: dict[tuple[str, int], tuple[float, float]] = {
        (str(c.et), int(c.element)): (float(c.cp2_eur_per_mw2), float(c.cp1_eur_per_mw))
        for _, c in net.poly_cost.iterrows()
    }
    gens: list[Generator] = []
    ext = net.ext_grid[net.ext_grid.in_service.astype(bool)]
    for idx, eg in ext.iterrows():
        alpha, beta = costs.get(("ext_grid", int(idx)), (0.0, 0.0))
        name = "ext_grid" if len(ext) == 1 else f"ext_grid{idx}"
        gens.append(
            Generator(name, int(eg.bus), _finite(eg.min_p_mw, -math.inf), _finite(eg.max_p_mw, math.inf), alpha, beta)
        )
    for idx, g in net.gen[net.gen.in_service.astype(bool)].iterrows():
        alpha, beta = costs.get(("gen", int(idx)), (0.0, 0.0))
        gens.append(
            Generator(f"gen{idx}", int(g.bus), _finite(g.min_p_mw, 0.0), _finite(g.max_p_mw, math.inf), alpha, beta)
        )

    if len(ext):
        ref_bus = int(ext.bus.iloc[0])
    else:
        slack = net.gen[net.gen.in_service.astype(bool) & net.gen.slack.astype(bool)]
        if not len(slack):
            raise ValueError(f"{case}: no ext_grid and no slack gen, cannot pick a reference bus")
        ref_bus = int(slack.bus.iloc[0])

    base_load: dict[int, float] = {}
    loads = net.load[net.load.in_service.astype(bool)]
    for _, ld in loads.iterrows():
        base_load[int(ld.bus)] = base_load.get(int(ld.bus), 0.0) + float(ld.p_mw * ld.scaling)
    # a shunt's conductance is a constant load in the DC model (MATPOWER's Gs); case30 has none with p_mw != 0
    for _, sh in net.shunt[net.shunt.in_service.astype(bool)].iterrows():
        if sh.p_mw:
            base_load[int(sh.bus)] = base_load.get(int(sh.bus), 0.0) + float(sh.p_mw * sh.step)
    return buses, ref_bus, tuple(lines), tuple(gens), base_load


def transmission_network(load_scale: np.ndarray, case: str = "case30") -> TransmissionNetwork:
    """DC-OPF data of a pandapower case used as shipped; ``load_scale`` (T,) scales every bus load per period."""
    buses, ref_bus, lines, gens, base_load = _tn_static(case)
    return TransmissionNetwork(
        case=case,
        buses=list(buses),
        ref_bus=ref_bus,
        lines=list(lines),
        gens=list(gens),
        base_load=dict(base_load),
        load_scale=np.asarray(load_scale, dtype=float).copy(),
    )


# --------------------------------------------------------------------------------------------------------------------
# DER placement table


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
    """PV and BESS of one ADN; the prosumers are the PV owners."""

    name: str
    pv_bus: tuple[int, ...]
    pv_peak: tuple[float, ...]
    bess: tuple[BessSpec, ...]

    @property
    def pv_total(self) -> float:
        return float(sum(self.pv_peak))


_PLACEMENT_COLUMNS = ("adn", "kind", "bus", "p_mw", "e_mwh", "eta", "soc_min", "soc_max", "soc0")


def load_placements(path: str | Path | None = None) -> dict[str, Placement]:
    """Read the placement table (CSV, ``#`` comment lines allowed); see ``data/README.md`` for the columns."""
    path = Path(path) if path is not None else default_placement_csv()
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
        bus = int(row["bus"])
        if not 1 <= bus <= 32:
            raise ValueError(f"{where}: bus {bus} is not a non-root bus of {ADN_CASE} (1..32)")
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
# Distribution network


@functools.cache
def _adn_static() -> tuple[tuple[int, ...], tuple[Branch, ...], np.ndarray, np.ndarray]:
    """Buses, root-outward branches (per unit on 1 MVA) and nominal bus loads of case33bw."""
    net = _cached_net(ADN_CASE)
    root = int(net.ext_grid.bus.iloc[0])
    buses = tuple(int(b) for b in net.bus.index)
    if buses != tuple(range(len(buses))) or root != 0:
        raise ValueError(f"{ADN_CASE}: expected buses 0..n-1 with the root at 0")
    lines = net.line[net.line.in_service.astype(bool)]
    adj: dict[int, list[tuple[int, int]]] = {b: [] for b in buses}
    for idx, ln in lines.iterrows():
        adj[int(ln.from_bus)].append((int(ln.to_bus), int(idx)))
        adj[int(ln.to_bus)].append((int(ln.from_bus), int(idx)))

    parent_line: dict[int, tuple[int, int]] = {}
    seen, queue = {root}, deque([root])
    while queue:  # BFS from the root orients every branch parent -> child
        i = queue.popleft()
        for j, idx in adj[i]:
            if j in seen:
                if parent_line.get(i, (None, None))[1] != idx:
                    raise ValueError(f"{ADN_CASE}: in-service lines form a loop at line {idx}")
                continue
            seen.add(j)
            parent_line[j] = (i, idx)
            queue.append(j)
    if len(seen) != len(buses):
        raise ValueError(f"{ADN_CASE}: buses {sorted(set(buses) - seen)} are not connected to the root")

    branches: list[Branch] = []
    for j in sorted(parent_line, key=lambda b: parent_line[b][1]):
        i, idx = parent_line[j]
        ln = lines.loc[idx]
        v = float(net.bus.vn_kv.at[i])
        z_base = v**2 / ADN_BASE_MVA
        par = float(ln.parallel)
        r = ln.r_ohm_per_km * ln.length_km / par / z_base
        x = ln.x_ohm_per_km * ln.length_km / par / z_base
        ka = float(ln.max_i_ka)
        smax = ka * ln.df * par * math.sqrt(3) * v / ADN_BASE_MVA if math.isfinite(ka) and ka < _UNRATED_KA else None
        branches.append(Branch(i=i, j=j, r=float(r), x=float(x), smax=smax))

    load_p = np.zeros(len(buses))
    load_q = np.zeros(len(buses))
    for _, ld in net.load[net.load.in_service.astype(bool)].iterrows():
        load_p[int(ld.bus)] += ld.p_mw * ld.scaling
        load_q[int(ld.bus)] += ld.q_mvar * ld.scaling
    branches = _rate_unrated(branches, load_p, load_q)
    load_p.flags.writeable = False
    load_q.flags.writeable = False
    return buses, tuple(branches), load_p, load_q


def _rate_unrated(branches: list[Branch], load_p: np.ndarray, load_q: np.ndarray) -> list[Branch]:
    """Give every unrated branch ``max(RATING_MARGIN * |S_down|, RATING_FLOOR_MVA)``, S_down = the nominal P + jQ
    of all buses below it: a feeder sized for its peak with 100 % headroom, laterals at least 1 MVA (46 A at
    12.66 kV) so that a lateral can carry back the PV of its buses."""
    children: dict[int, list[int]] = {}
    for br in branches:
        children.setdefault(br.i, []).append(br.j)

    def downstream(j: int) -> tuple[float, float]:
        p, q = float(load_p[j]), float(load_q[j])
        for c in children.get(j, []):
            dp, dq = downstream(c)
            p, q = p + dp, q + dq
        return p, q

    out = []
    for br in branches:
        if br.smax is None:
            br = Branch(br.i, br.j, br.r, br.x, max(RATING_MARGIN * math.hypot(*downstream(br.j)), RATING_FLOOR_MVA))
        out.append(br)
    return out


def adn_nominal_load() -> tuple[np.ndarray, np.ndarray]:
    """Nominal (peak) P and Q per bus of case33bw, MW and MVAr (totals 3.715 MW, 2.3 MVAr)."""
    _, _, p, q = _adn_static()
    return p.copy(), q.copy()


def distribution_network(
    name: str,
    tn_bus: int,
    placement: Placement,
    profiles: DayProfiles,
    load_profiles_q: np.ndarray | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    pcc_limit: float | None = None,
) -> DistributionNetwork:
    """One case33bw ADN with the DER of ``placement`` and time series from ``profiles`` (a ``DayProfiles``).

    ``profiles.load`` scales the nominal bus loads (peak = nominal); Q follows ``load_profiles_q`` if given, else the
    same profile (constant power factor). ``profiles.pv`` (per unit of installed peak) times each PV's peak gives the
    available PV power. ``vmin``/``vmax``/``pcc_limit`` override the ``DistributionNetwork`` defaults when given.
    """
    buses, branches, p_nom, q_nom = _adn_static()
    load_scale = np.asarray(profiles.load, dtype=float)
    pv_scale = np.asarray(profiles.pv, dtype=float)
    q_scale = load_scale if load_profiles_q is None else np.asarray(load_profiles_q, dtype=float)
    if load_scale.ndim != 1 or pv_scale.shape != load_scale.shape or q_scale.shape != load_scale.shape:
        raise ValueError(
            f"{name}: profile shapes differ: load {load_scale.shape}, pv {pv_scale.shape}, q {q_scale.shape}"
        )
    bad = [b for b in placement.pv_bus + tuple(s.bus for s in placement.bess) if b not in buses or b == 0]
    if bad:
        raise ValueError(f"{name}: placement {placement.name!r} uses buses {bad} that are not non-root buses")
    extra = {k: v for k, v in (("vmin", vmin), ("vmax", vmax), ("pcc_limit", pcc_limit)) if v is not None}
    return DistributionNetwork(
        name=name,
        tn_bus=int(tn_bus),
        buses=list(buses),
        branches=list(branches),
        load_p=np.outer(load_scale, p_nom),
        load_q=np.outer(q_scale, q_nom),
        pv_bus=list(placement.pv_bus),
        pv_peak=list(placement.pv_peak),
        pv_avail=np.outer(pv_scale, np.asarray(placement.pv_peak, dtype=float)).reshape(len(pv_scale), -1),
        bess=[s.to_bess() for s in placement.bess],
        prosumers=list(placement.pv_bus),
        **extra,
    )
