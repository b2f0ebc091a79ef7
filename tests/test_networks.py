"""Network data vs pandapower's own ppc (independent of our formulas) and the case33bw/placement facts."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
from pandapower.pypower.idx_brch import BR_X, F_BUS, RATE_A, T_BUS, TAP
from pandapower.pypower.idx_bus import BUS_TYPE, PD, REF
from pandapower.pypower.idx_cost import COST, NCOST
from pandapower.pypower.idx_gen import GEN_BUS, PMAX, PMIN

from coordinator.networks import (
    adn_nominal_load,
    distribution_network,
    load_placements,
    pandapower_net,
    tn_load_buses,
    transmission_network,
)

PV_FACTORS = {"adn1": 1.2, "adn2": 0.9, "adn3": 0.75, "adn4": 0.5, "adn5": 0.4}
ADN_PEAK = 3.715


@pytest.fixture(scope="module")
def ppc30() -> dict:
    net = pn.case30()
    pp.rundcopp(net)
    return net._ppc


def test_tn_lines_match_pandapower_ppc(ppc30: dict) -> None:
    tn = transmission_network(np.ones(3))
    br = ppc30["branch"].real
    assert len(tn.lines) == len(br) == 41
    for line, row in zip(tn.lines, br, strict=True):
        assert (line.from_bus, line.to_bus) == (int(row[F_BUS]), int(row[T_BUS]))
        assert line.b_mw_per_rad == pytest.approx(100.0 / (row[BR_X] * row[TAP]), rel=1e-9)
        assert line.fmax == pytest.approx(row[RATE_A], rel=1e-9)
    assert tn.lines[0].b_mw_per_rad == pytest.approx(100 / 0.06) and tn.lines[0].fmax == pytest.approx(130.0)


def test_tn_gens_loads_ref_match_ppc(ppc30: dict) -> None:
    tn = transmission_network(np.array([1.0, 0.5]))
    gen, cost, bus = ppc30["gen"].real, ppc30["gencost"], ppc30["bus"].real
    assert [g.name for g in tn.gens] == ["ext_grid", "gen0", "gen1", "gen2", "gen3", "gen4"]
    for g, row, c in zip(tn.gens, gen, cost, strict=True):
        assert g.bus == int(row[GEN_BUS]) and (g.pmin, g.pmax) == pytest.approx((row[PMIN], row[PMAX]), abs=1e-6)
        assert c[NCOST] == 3
        assert (g.alpha, g.beta) == pytest.approx((c[COST], c[COST + 1]))  # ppc costs are per MW on base 1
    assert tn.ref_bus == int(np.flatnonzero(bus[:, BUS_TYPE] == REF)[0]) == 0
    pd = {int(i): v for i, v in enumerate(bus[:, PD]) if v}
    assert tn.base_load == pytest.approx(pd)
    assert sum(tn.base_load.values()) == pytest.approx(189.2)
    assert tn.demand(1)[7] == pytest.approx(15.0)
    assert tn_load_buses() == sorted(pd)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # case14 predates tap_dependency_table
def test_tn_trafos_match_ppc_case14() -> None:
    tn = transmission_network(np.ones(1), case="case14")
    net = pn.case14()
    pp.rundcpp(net)
    br = net._ppc["branch"].real
    assert len(tn.lines) == len(br)
    for line, row in zip(tn.lines, br, strict=True):
        assert (line.from_bus, line.to_bus) == (int(row[F_BUS]), int(row[T_BUS]))
        assert line.b_mw_per_rad == pytest.approx(net.sn_mva / (row[BR_X] * row[TAP]), rel=1e-9)


def test_pandapower_net_is_a_fresh_copy() -> None:
    a, b = pandapower_net("case30"), pandapower_net("case30")
    a.load.loc[0, "p_mw"] = 999.0
    assert b.load.at[0, "p_mw"] == pytest.approx(21.7)


def _profiles(t: int) -> SimpleNamespace:
    """Stand-in for coordinator.profiles.DayProfiles, so these tests do not need simbench data."""
    return SimpleNamespace(load=np.linspace(0.5, 1.0, t), pv=np.linspace(0.0, 0.8, t), step_minutes=60)


def test_adn_radial_orientation_and_impedance() -> None:
    placement = load_placements()["adn1"]
    adn = distribution_network("adn1", 7, placement, _profiles(4))
    assert adn.buses == list(range(33)) and adn.root == 0
    assert len(adn.branches) == 32
    parents = Counter(br.j for br in adn.branches)
    assert set(parents) == set(range(1, 33)) and set(parents.values()) == {1}
    # every branch points away from the root: a walk from the root over children reaches all buses once
    seen, stack, children = [], [0], adn.children()
    while stack:
        i = stack.pop()
        seen.append(i)
        stack.extend(children[i])
    assert sorted(seen) == list(range(33))
    # case33bw line 4 (bus 4 -> 5): 0.8190 + j0.7070 ohm at 12.66 kV, base 1 MVA
    br = next(b for b in adn.branches if (b.i, b.j) == (4, 5))
    z_base = 12.66**2 / 1.0
    assert (br.r, br.x) == pytest.approx((0.8190 / z_base, 0.7070 / z_base))
    # case33bw lines are unrated (99999 kA placeholder): rated 2 x the nominal load downstream, at least 1 MVA.
    # Downstream of 4 -> 5: buses 5..17 and 25..32 (Baran & Wu's one-line diagram), summed from the pandapower net.
    net = pn.case33bw()
    below = net.load[net.load.bus.isin([*range(5, 18), *range(25, 33)])]
    assert br.smax == pytest.approx(2.0 * math.hypot(below.p_mw.sum(), below.q_mvar.sum()))
    root = next(b for b in adn.branches if (b.i, b.j) == (0, 1))
    assert root.smax == pytest.approx(2.0 * math.hypot(3.715, 2.3))
    leaf = next(b for b in adn.branches if (b.i, b.j) == (31, 32))
    assert leaf.smax == pytest.approx(1.0)  # 2 x 72 kVA is below the 1 MVA floor
    # tie switches (out-of-service lines) are not branches
    assert (7, 20) not in {(b.i, b.j) for b in adn.branches} and (20, 7) not in {(b.i, b.j) for b in adn.branches}


def test_adn_time_series_and_der() -> None:
    prof = _profiles(5)
    placement = load_placements()["adn3"]
    adn = distribution_network("x", 16, placement, prof, load_profiles_q=np.full(5, 0.5), vmax=1.05)
    p_nom, q_nom = adn_nominal_load()
    assert p_nom.sum() == pytest.approx(ADN_PEAK) and q_nom.sum() == pytest.approx(2.3)
    assert adn.load_p.shape == adn.load_q.shape == (5, 33)
    assert adn.load_p.sum(axis=1) == pytest.approx(ADN_PEAK * prof.load)
    assert adn.load_q.sum(axis=1) == pytest.approx(np.full(5, 1.15))
    assert adn.pv_avail.shape == (5, 8)
    assert adn.pv_avail[:, 2] == pytest.approx(placement.pv_peak[2] * prof.pv)
    assert adn.prosumers == adn.pv_bus == list(placement.pv_bus)
    assert adn.vmax == 1.05 and adn.vmin == 0.9 and adn.tn_bus == 16
    assert len(adn.bess) == 3
    for b in adn.bess:
        assert b.bus in adn.pv_bus
        assert (b.pmax, b.emin, b.emax, b.e0, b.eta_c, b.eta_d) == pytest.approx((0.5, 0.2, 1.8, 1.0, 0.95, 0.95))


@pytest.mark.parametrize("name,factor", sorted(PV_FACTORS.items()))
def test_placement_pv_factor(name: str, factor: float) -> None:
    pl = load_placements()[name]
    assert len(pl.pv_bus) == 8 and len(set(pl.pv_bus)) == 8 and 0 not in pl.pv_bus
    assert pl.pv_total / ADN_PEAK == pytest.approx(factor, abs=1e-3)
    assert len(pl.bess) == 3 and {b.bus for b in pl.bess} <= set(pl.pv_bus)


def test_placement_average_factor() -> None:
    pls = load_placements()
    assert sorted(pls) == sorted(PV_FACTORS)
    assert np.mean([p.pv_total for p in pls.values()]) / ADN_PEAK == pytest.approx(0.75, abs=1e-3)
    assert not math.isclose(min(p.pv_total for p in pls.values()), max(p.pv_total for p in pls.values()))
