"""The contract between the Pyomo builders, the solvers and the result builder (``coordinator/model.py``).

References: the Pyomo blocks each builder actually added (which periods have a hull block or KKT variables), the
fast pipeline's ``formulation`` section for the same case, and a solve through ``PlanningSession`` with SCIP.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from coordinator.dso_led import Formulation, build_dso_led
from coordinator.model import PyomoModel
from coordinator.results import collect
from coordinator.session import PlanningSession
from coordinator.solvers.base import SolveOptions, SolveReport
from coordinator.toy import toy_case
from coordinator.tso_led import build_stage1, build_stage2

OLD_ATTRIBUTES = ("qp", "scheme", "affine_periods", "region_periods", "formulation_info", "relaxed_binaries")


def _pyomo_own_attributes() -> set[str]:
    probe = pyo.ConcreteModel()
    probe.sub = pyo.Block()
    return set(vars(probe)) | set(vars(probe.sub))


def plain_attributes(model: pyo.Block) -> list[str]:
    """Attributes of ``model``'s blocks that are neither Pyomo components, nor Pyomo's own, nor the cone registry."""
    own = _pyomo_own_attributes()
    return [f"{blk.name}.{name}" for blk in model.block_data_objects() for name, value in vars(blk).items()
            if name not in own and name != "cones" and not isinstance(value, pyo.Component)]


def test_the_probe_sees_an_ad_hoc_attribute() -> None:
    m = pyo.ConcreteModel()
    m.b = pyo.Block()
    m.b.x = pyo.Var()
    assert plain_attributes(m) == []
    m.b.scheme = "dso-led"
    assert plain_attributes(m) == ["b.scheme"]


@pytest.mark.parametrize("follower", ["auto", "kkt"])
def test_no_ad_hoc_attributes_on_any_built_model(follower: str) -> None:
    case = toy_case(periods=4, n_adns=3, fmax=60.0)
    stage1 = build_stage1(case)
    for v in stage1.model.component_data_objects(pyo.Var):  # stage 2 reads a stage-1 schedule: any values do
        v.set_value(0.0, skip_validation=True)
    stage2 = build_stage2(case, stage1.model, np.zeros((3, 4)), 1.0, stage1.qp)
    for pm in (build_dso_led(case, Formulation(follower=follower)), stage1, stage2):
        assert plain_attributes(pm.model) == [], pm.model.name


@pytest.mark.parametrize(("kw", "follower"), [(dict(periods=4, n_adns=3, fmax=60.0), "auto"),
                                              (dict(periods=2, n_adns=2), "kkt")])
def test_forms_are_the_blocks_the_builder_added(kw: dict, follower: str) -> None:
    case = toy_case(**kw)
    pm = build_dso_led(case, Formulation(follower=follower))
    m = pm.model
    assert pm.scheme == "dso-led" and len(pm.forms) == case.periods
    assert pm.periods("hull") == sorted(m.hull.keys())
    kkt_with_vars = sorted({t for (_, t) in m.follower.x.keys()}) if hasattr(m.follower, "x") else []
    assert pm.periods("kkt") == kkt_with_vars
    info = pm.formulation_info
    assert (info["affine_periods"], info["region_periods"], info["kkt_periods"]) == (
        pm.periods("affine"), pm.periods("hull"), pm.periods("kkt"))
    if follower == "kkt":
        assert pm.periods("kkt") == list(range(case.periods))
    # the views are components of the model, referenced from the contract
    assert pm.tn_x is m.tn_x and pm.lmp is m.lmp
    assert not any(name in vars(m) for name in OLD_ATTRIBUTES)


def test_both_paths_report_the_same_formulation_fields() -> None:
    from coordinator.pipeline import FastPipeline

    case = toy_case(periods=4, n_adns=3, fmax=60.0)
    formulation = Formulation(follower="auto")
    fast = FastPipeline(case, formulation, SolveOptions(solver="fast", time_limit=60)).solve(case)["formulation"]
    pyomo_info = build_dso_led(case, formulation).formulation_info
    assert list(fast) == list(pyomo_info)  # same keys, same order (docs/results-schema.md)
    assert {k: v for k, v in fast.items() if not k.endswith("_periods")} == {
        k: v for k, v in pyomo_info.items() if not k.endswith("_periods")}


def test_stage1_has_no_tn_views_and_collect_says_so() -> None:
    case = toy_case(periods=1)
    pm = build_stage1(case)
    assert pm.scheme == "tso-led" and pm.forms == () and pm.formulation_info == {}
    assert pm.relaxed_binaries > 0
    assert not any(v.is_binary() for v in pm.model.component_data_objects(pyo.Var))
    assert not any(name in vars(pm.model) for name in OLD_ATTRIBUTES)
    unsolved = SolveReport(status="no_solution", termination="t", objective=None, bound=None, solve_time_s=0.0,
                           solver="x")
    assert collect(pm, case, unsolved, 0.0)["scheme"] == "tso-led"
    solved = SolveReport(status="optimal", termination="t", objective=0.0, bound=0.0, solve_time_s=0.0, solver="x")
    with pytest.raises(ValueError, match="no TN views"):
        collect(pm, case, solved, 0.0)


def test_unknown_follower_form_is_refused() -> None:
    pm = build_stage1(toy_case(periods=1))
    with pytest.raises(ValueError, match="not among"):
        PyomoModel(pm.model, pm.qp, "dso-led", forms=("affine", "region"))
    with pytest.raises(ValueError, match="not one of"):
        pm.periods("region")


def test_session_on_the_pyomo_path_reports_through_the_contract() -> None:
    case = toy_case(periods=2, n_adns=1)
    session = PlanningSession(case, Formulation(follower="auto"), SolveOptions(solver="scip", time_limit=60))
    first = session.solve(case, ac_periods=[])
    again = session.solve(case, ac_periods=[])  # auto: rebuilt with the data
    assert first["status"] == again["status"] == "optimal"
    assert first["scheme"] == "dso-led"
    assert first["formulation"] == session.built.formulation_info
    assert again["objective"] == pytest.approx(first["objective"], rel=1e-6, abs=1e-6)
    assert first["checks"]["follower_cost_rel_gap"] < 1e-6
