"""coordinator.scaling: copies with scaled loads, ratings, PV and BESS; a rating override binds in a solve."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.blocks.dcopf import dcopf_qp
from coordinator.dso_led import Formulation, build_dso_led
from coordinator.follower import solve_follower
from coordinator.results import collect
from coordinator.scaling import BessSizing, scale_adn, scale_tn
from coordinator.solvers import solve
from coordinator.solvers.base import SolveOptions
from coordinator.toy import toy_case, toy_tn


def test_scale_tn_returns_a_modified_copy() -> None:
    tn = toy_tn(2)
    out = scale_tn(tn, load_scale=1.5, rating_scale=0.5, branch_ratings={"line2": 12.0})
    assert [ln.fmax for ln in out.lines] == [100.0, 30.0, 12.0]  # 200, 60 halved; line2 overridden
    assert out.base_load == {2: 150.0}
    assert [ln.fmax for ln in tn.lines] == [200.0, 60.0, 200.0] and tn.base_load == {2: 100.0}  # input untouched
    with pytest.raises(ValueError, match=r"unknown branches \['line9'\]; valid: line0, line1, line2"):
        scale_tn(tn, branch_ratings={"line9": 1.0})


def test_scale_adn_returns_a_modified_copy() -> None:
    adn = toy_case(periods=3).adns[0]
    out = scale_adn(adn, load_scale=2.0, pv_scale=0.0, bess=BessSizing(p_scale=2.0, e_scale=0.5))
    np.testing.assert_allclose(out.load_p, 2 * adn.load_p)
    assert out.pv_avail.max() == 0.0 and out.pv_peak == [0.0, 0.0]
    b, b0 = out.bess[0], adn.bess[0]
    assert (b.pmax, b.emax, b.emin, b.e0) == pytest.approx((2 * b0.pmax, b0.emax / 2, b0.emin / 2, b0.e0 / 2))
    assert scale_adn(adn, bess=BessSizing(e_scale=0.0)).bess == [] and len(adn.bess) == 1


def test_rating_override_binds_in_a_solve() -> None:
    """Line 0-2 of the toy TN carries 51-62 MW unconstrained; rated 45 MW it binds and the LMPs separate."""
    case = toy_case(periods=2, n_adns=1, fmax=200.0)
    case.tn = scale_tn(case.tn, branch_ratings={"line1": 45.0})
    model = build_dso_led(case, Formulation(follower="auto"))
    result = collect(model, case, solve(model.model, SolveOptions(solver="fast", mip_gap=1e-6)), 0.0, ac_periods=[])
    assert result["status"] == "optimal"
    qp = dcopf_qp(case.tn)
    k = [ln.name for ln in case.tn.lines].index("line1")
    for t in range(2):
        w = {case.adns[0].tn_bus: result["adns"][0]["pcc_mw"][t]}
        flow = solve_follower(qp, qp.b_eq(case.tn.demand(t), w)).x[qp.flow_col[k]]
        assert abs(flow) == pytest.approx(45.0, abs=1e-3)
        lmp = [result["tn"]["lmp"][str(n)][t] for n in case.tn.buses]
        assert max(lmp) > min(lmp) + 0.5
