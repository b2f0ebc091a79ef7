"""Reference marginal cost of a TN (coordinator.prices) against a hand computation and pandapower's DC-OPF."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandapower as pp
import pytest

from coordinator.case import Generator, Prices
from coordinator.networks import pandapower_net, transmission_network
from coordinator.prices import reference_marginal_cost, relative_prices
from coordinator.toy import toy_tn


def test_toy_tn_by_hand() -> None:
    # 100 MW on 0.02 p^2 + 2 p (0..150) and 0.05 p^2 + 4 p (0..100): both run, so
    # (lam - 2) / 0.04 + (lam - 4) / 0.1 = 100  ->  35 lam = 190
    assert reference_marginal_cost(toy_tn(1)) == pytest.approx(190 / 35, rel=1e-8)


def test_generator_limits_and_linear_costs_by_hand() -> None:
    tn = toy_tn(1)
    # the cheap unit capped at 60 MW: the other covers 40 MW at 4 + 2 * 0.05 * 40 = 8
    capped = replace(tn, gens=[replace(tn.gens[0], pmax=60.0), tn.gens[1]])
    assert reference_marginal_cost(capped) == pytest.approx(8.0, rel=1e-8)
    # a linear-cost unit (alpha = 0) that is marginal sets lam = its beta
    linear = replace(tn, gens=[Generator("g", 0, 0.0, 60.0, 0.0, 3.0), Generator("h", 1, 0.0, 100.0, 0.0, 7.0)])
    assert reference_marginal_cost(linear) == pytest.approx(7.0, rel=1e-8)
    with pytest.raises(ValueError, match="outside"):
        reference_marginal_cost(replace(tn, base_load={2: 1000.0}))


def test_case30_equals_rundcopp_without_line_limits() -> None:
    net = pandapower_net("case30")
    net.line["max_loading_percent"] = 1e6
    pp.rundcopp(net)
    lam = net.res_bus.lam_p.to_numpy()
    assert np.ptp(lam) < 1e-6  # no congestion: one price everywhere
    tn = transmission_network(np.ones(1), "case30")
    assert reference_marginal_cost(tn) == pytest.approx(float(lam[0]), rel=1e-5)


def test_relative_prices_multiply_every_coefficient_but_the_cap() -> None:
    p = Prices(c_tn_imp=0.5, c_wheel=0.2, tariff_import=(1.0, 2.0), tariff_export=(0.5, 0.5), price_cap=300.0)
    out = relative_prices(p, 4.0)
    assert (out.c_tn_imp, out.c_wheel, out.c_ret) == pytest.approx((2.0, 0.8, 8.0))
    assert out.tariff_import == pytest.approx((4.0, 8.0)) and out.tariff_export == pytest.approx((2.0, 2.0))
    assert out.price_cap == 300.0
