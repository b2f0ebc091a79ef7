"""The leaders compiled per ADN and stacked (``coordinator/leaders.py``) are the rows of one model of everything.

Reference: the leaders built as one Pyomo model (``blocks/adns.add_adns``, the PCC box, the whole operating cost:
what ``coordinator.dso_led`` builds) and compiled at once. Rows are compared as sets of (variable name,
coefficient) with their right-hand sides for the case's data, so the order of rows and columns does not matter.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pyomo.environ as pyo
import pytest

from coordinator.blocks.adns import add_adns, add_pcc_box, dso_operating_cost
from coordinator.leaders import LeaderTemplate, _compile
from coordinator.toy import toy_case


def _one_model(case, voltage_cuts: bool, loss_allowance: float, peaks):
    m = pyo.ConcreteModel()
    m.T = pyo.Set(initialize=range(case.periods), ordered=True)
    add_adns(m, case, voltage_cuts, peaks)
    add_pcc_box(m, case, loss_allowance)
    m.objective = pyo.Objective(expr=case.step_hours * sum(
        dso_operating_cost(m, case, a, t) for a in m.pcc.A for t in m.T))
    part, _, data = _compile(m)
    theta = np.array([v.value for v in data])  # the data variables hold the case's data
    return part, theta


def _rows(a, rhs, keys) -> Counter:
    a = a.tocsr()
    out = Counter()
    for r in range(a.shape[0]):
        cols, vals = a.indices[a.indptr[r]:a.indptr[r + 1]], a.data[a.indptr[r]:a.indptr[r + 1]]
        out[(tuple(sorted((keys[c], round(float(v), 9)) for c, v in zip(cols, vals, strict=True) if v)),
             round(float(rhs[r]), 9))] += 1
    return out


def _cones(g, h, dims, keys) -> Counter:
    g = g.tocsr()
    out, start = Counter(), 0
    for d in dims:
        rows = []
        for r in range(start, start + d):
            cols, vals = g.indices[g.indptr[r]:g.indptr[r + 1]], g.data[g.indptr[r]:g.indptr[r + 1]]
            rows.append((tuple(sorted((keys[c], round(float(v), 9)) for c, v in zip(cols, vals, strict=True))),
                         round(float(h[r]), 9)))
        out[tuple(rows)] += 1
        start += d
    return out


@pytest.mark.parametrize("n_adns, cuts, inter", [(1, False, True), (3, False, True), (3, True, False)])
def test_the_stacked_parts_are_the_rows_of_one_model(n_adns: int, cuts: bool, inter: bool) -> None:
    case = toy_case(periods=3, n_adns=n_adns, fmax=40.0)
    case = dataclasses.replace(case, inter_adn_p2p=inter)
    peaks = [1.25 * adn.load_p.max(axis=0) for adn in case.adns]
    stacked = LeaderTemplate(case, cuts, 0.15, peaks)
    ref, ref_theta = _one_model(case, cuts, 0.15, peaks)
    theta = stacked.theta(case, 0.15)
    keys = [f"{name}[{idx}, {t}]" for name, idx, t in stacked.column_keys]
    ref_keys = [f"{name}[{idx}, {t}]" for name, idx, t in ref.keys]
    assert sorted(keys) == sorted(ref_keys) and len(set(keys)) == len(keys)
    for a_name, rhs, dat in (("a_eq", "eq_rhs", "eq_dat"), ("a_in", "in_rhs", "in_dat")):
        got = _rows(getattr(stacked, a_name), getattr(stacked, rhs) - getattr(stacked, dat) @ theta, keys)
        want = _rows(getattr(ref, a_name), getattr(ref, rhs) - getattr(ref, dat) @ ref_theta, ref_keys)
        assert got == want, a_name
    by_key = {k: c for c, k in enumerate(ref_keys)}
    order = np.array([by_key[k] for k in keys])
    for name in ("q", "lb", "ub", "integer"):
        np.testing.assert_allclose(getattr(stacked, name), getattr(ref, name)[order], rtol=1e-12, err_msg=name)
    assert stacked.q_const + stacked.q_dat @ theta == pytest.approx(ref.q_const + ref.q_dat @ ref_theta, rel=1e-12)
    assert _cones(*stacked.cones, keys) == _cones(*ref.cones, ref_keys)


def test_adns_of_one_structure_share_one_compilation(monkeypatch) -> None:
    from coordinator import leaders

    case = toy_case(periods=2, n_adns=2, fmax=40.0)
    twins = dataclasses.replace(case, adns=[case.adns[0], dataclasses.replace(case.adns[0], name="twin",
                                                                              load_p=2 * case.adns[0].load_p)])
    compiled = []
    real = leaders._adn_part
    monkeypatch.setattr(leaders, "_adn_part", lambda *a, **k: compiled.append(1) or real(*a, **k))
    peaks = [case.adns[0].load_p.max(axis=0)] * 2  # the same big-M basis: the same structure
    template = LeaderTemplate(twins, False, 0.15, peaks)
    assert len(compiled) == 1
    theta = template.theta(twins, 0.15)
    half = len(template.data_index[0])
    assert not np.allclose(theta[:half], theta[half:2 * half])  # each twin reads its own data
