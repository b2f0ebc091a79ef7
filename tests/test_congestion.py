"""On a congested TN the follower inside the DSO-led plan is the TSO's true DC-OPF, and its LMPs are explained by
the binding branch: checked against pandapower's ``rundcopp`` on a net built here from the raw data, and against
pandapower's own PTDF matrix with ``rundcopp``'s branch multipliers (LMP_n = LMP_ref - sum_l mu_l PTDF_ln)."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest
from pandapower.pypower.idx_brch import MU_SF, MU_ST
from pandapower.pypower.makePTDF import makePTDF
from test_core_correctness import pp_transmission_net

from coordinator.session import PlanningSession
from coordinator.solvers.base import SolveOptions
from scenarios.config import build_case, load_scenario


@pytest.fixture(scope="module")
def congested_hour():
    """13:00 of the default case (line28 derated to 9 MW binds): the DSO-led plan and rundcopp at its PCC schedule."""
    case = build_case(load_scenario("ieee30_5adn"), periods=1, start_hour=13)
    result = PlanningSession(case, options=SolveOptions(solver="fast", mip_gap=1e-6)).solve(case, ac_periods=[])
    assert result["status"] == "optimal"
    withdrawal: dict[int, float] = {}
    for adn in result["adns"]:
        withdrawal[adn["tn_bus"]] = withdrawal.get(adn["tn_bus"], 0.0) + adn["pcc_mw"][0]
    net = pp_transmission_net(case.tn, 0, withdrawal)
    pp.rundcopp(net)
    return case, result, net


def test_the_derated_branch_binds_and_prices_differ(congested_hour) -> None:
    case, result, net = congested_hour
    k = [ln.name for ln in case.tn.lines].index("line28")
    assert net.res_line.loading_percent.iloc[k] == pytest.approx(100.0, abs=1e-4)
    assert abs(result["tn"]["flow_mw"]["line28"][0]) == pytest.approx(case.tn.lines[k].fmax, rel=1e-6)
    lmp = [v[0] for v in result["tn"]["lmp"].values()]
    assert max(lmp) / min(lmp) >= 1.10


def test_plan_dispatch_and_lmps_equal_rundcopp(congested_hour) -> None:
    case, result, net = congested_hour
    for n in case.tn.buses:
        assert result["tn"]["lmp"][str(n)][0] == pytest.approx(float(net.res_bus.lam_p.at[n]), abs=1e-5)
    gens = net.res_gen.p_mw.to_numpy()
    plan = [v[0] for key, v in result["tn"]["gen_mw"].items() if key != "ext_grid"]
    np.testing.assert_allclose(plan, gens, atol=1e-4)


def test_lmp_differences_are_the_shadow_price_times_the_ptdf(congested_hour) -> None:
    case, result, net = congested_hour
    ppc = net._ppc
    lookup = net._pd2ppc_lookups["bus"]
    ptdf = makePTDF(ppc["baseMVA"], ppc["bus"], ppc["branch"], slack=int(lookup[case.tn.ref_bus]))
    mu = ppc["branch"][:, MU_SF] - ppc["branch"][:, MU_ST]
    assert np.count_nonzero(np.abs(mu) > 1e-6) >= 1  # a branch really binds
    ref = result["tn"]["lmp"][str(case.tn.ref_bus)][0]
    for n in case.tn.buses:
        assert result["tn"]["lmp"][str(n)][0] == pytest.approx(ref - mu @ ptdf[:, int(lookup[n])], abs=1e-5), n
