"""The AC check runs all periods of an ADN as islands of one net: it must match one power flow per period."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandapower as pp

from coordinator.acpf import AcChecker
from coordinator.case import Branch
from coordinator.toy import toy_adn

PERIODS = 4


def relabelled_adn():
    """The toy feeder with bus labels that are neither 0-based nor ordered like positions."""
    label = {0: 40, 1: 7, 2: 23, 3: 11}
    adn = toy_adn("relabelled", tn_bus=0, periods=PERIODS)
    return dataclasses.replace(
        adn, buses=[label[b] for b in adn.buses], root=label[adn.root],
        branches=[Branch(label[b.i], label[b.j], b.r, b.x) for b in adn.branches],
        pv_bus=[label[b] for b in adn.pv_bus])


def reference_voltages(adn, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """|V| (T, n_bus) from one runpp per period on a net of per-unit impedances: not coordinator.acpf's lines."""
    out = []
    for t in range(len(p)):
        net = pp.create_empty_network(sn_mva=1.0)
        for bus in adn.buses:
            pp.create_bus(net, vn_kv=20.0, index=bus)
        for br in adn.branches:
            pp.create_impedance(net, br.i, br.j, rft_pu=br.r, xft_pu=br.x, rtf_pu=br.r, xtf_pu=br.x, sn_mva=1.0)
        pp.create_ext_grid(net, adn.root, vm_pu=1.0)
        for k, bus in enumerate(adn.buses):
            pp.create_load(net, bus, p_mw=float(p[t, k]), q_mvar=float(q[t, k]))
        pp.runpp(net, numba=False, tolerance_mva=1e-10)
        out.append(net.res_bus.vm_pu.loc[adn.buses].to_numpy())
    return np.array(out)


def withdrawals(adn) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    p = adn.load_p * rng.uniform(0.5, 3.0, size=adn.load_p.shape)
    return p, 0.4 * p


def test_islands_match_one_power_flow_per_period():
    adn = relabelled_adn()
    p, q = withdrawals(adn)
    v = reference_voltages(adn, p, q)
    assert v.min() < 0.99  # loaded enough for a wrong bus or period order to show
    checker = AcChecker()
    periods = list(range(PERIODS))
    assert checker.voltage_error(adn, p, q, v, periods) < 1e-7
    for t in periods:  # an error placed in one period and bus is found, whichever it is
        off = v.copy()
        off[t, t % len(adn.buses)] += 0.01
        assert math.isclose(checker.voltage_error(adn, p, q, off, periods), 0.01, abs_tol=1e-7)
    assert checker.voltage_error(adn, p, q, v, [1, 3]) < 1e-7  # a subset of periods, on its own net
    assert checker.voltage_error(adn, p, q, v, []) == 0.0


def test_one_diverging_period_is_reported():
    adn = relabelled_adn()
    p, q = withdrawals(adn)
    v = reference_voltages(adn, p, q)
    p[2] *= 1e4  # no power flow solution in period 2
    assert AcChecker().voltage_error(adn, p, q, v, list(range(PERIODS))) == math.inf


def test_several_adns_in_one_net_keep_their_own_errors():
    """Two different feeders in one net: each ADN's error is its own, as on a net of its own."""
    small = relabelled_adn()
    big = toy_adn("big", tn_bus=1, periods=PERIODS)
    big = dataclasses.replace(big, load_p=2.0 * big.load_p)
    cases = [(adn, *withdrawals(adn)) for adn in (small, big)]
    v = [reference_voltages(adn, p, q) for adn, p, q in cases]
    periods = list(range(PERIODS))
    adns, p, q = zip(*cases, strict=True)
    checker = AcChecker()
    np.testing.assert_array_less(checker.voltage_errors(adns, p, q, v, periods), 1e-7)
    off = [v[0], v[1].copy()]
    off[1][2, 1] += 0.02  # an error in the second ADN only
    errors = checker.voltage_errors(adns, p, q, off, periods)
    assert errors[0] < 1e-7 and math.isclose(errors[1], 0.02, abs_tol=1e-7)
    np.testing.assert_array_equal(checker.voltage_errors([], [], [], [], periods), [])
