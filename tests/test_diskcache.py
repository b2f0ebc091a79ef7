"""The disk cache returns what a fresh read or compile returns, and a changed input never gets a stale entry."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandas as pd
import pytest
import scipy.sparse as sp

from coordinator import profiles
from coordinator.grids import source
from coordinator.leaders import LeaderTemplate, leader_template
from coordinator.toy import toy_case


@pytest.fixture()
def cache(tmp_path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TSODSO_CACHE_DIR", str(folder))
    source._load.cache_clear()
    yield folder
    source._load.cache_clear()


def entries(folder, function: str = "") -> int:
    """Cached results in ``folder`` (of the functions whose cache folder starts with ``function``)."""
    return sum(1 for p in folder.rglob("output.pkl") if p.parent.parent.name.startswith(function))


def same_template(a: LeaderTemplate, b: LeaderTemplate) -> None:
    for name in ("a_eq", "eq_dat", "a_in", "in_dat"):
        assert (getattr(a, name) != getattr(b, name)).nnz == 0, name
    for name in ("eq_rhs", "in_rhs", "q", "q_dat", "lb", "ub", "integer"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for x, y in zip(a.data_index, b.data_index, strict=True):
        np.testing.assert_array_equal(x, y)
    assert (sp.csr_matrix(a.cones[0]) != sp.csr_matrix(b.cones[0])).nnz == 0
    assert a.column_keys == b.column_keys


def test_a_cached_template_equals_a_fresh_compile(cache) -> None:
    case = toy_case(periods=4, n_adns=2, fmax=40.0)
    first = leader_template(case, False, 0.1)
    assert entries(cache, "_compiled") == 1 and entries(cache, "_cached_adn_part") == 2  # the template, each ADN
    again = leader_template(case, False, 0.1)
    assert again is not first and entries(cache) == 3  # read back from disk, not compiled again
    fresh = LeaderTemplate(case, False, 0.1)
    same_template(again, fresh)
    other_day = dataclasses.replace(case, adns=[dataclasses.replace(a, load_p=1.3 * a.load_p) for a in case.adns])
    np.testing.assert_array_equal(again.theta(other_day, 0.1), fresh.theta(other_day, 0.1))
    np.testing.assert_array_equal(again.rolled(1), fresh.rolled(1))


def test_a_changed_structure_is_compiled_anew(cache) -> None:
    case = toy_case(periods=4, n_adns=2, fmax=40.0)
    leader_template(case, False, 0.1)
    adn = case.adns[0]
    bigger = dataclasses.replace(case, adns=[dataclasses.replace(
        adn, bess=[dataclasses.replace(b, pmax=2 * b.pmax) for b in adn.bess])] + case.adns[1:])
    for changed, cuts in ((bigger, False), (case, True)):
        got = leader_template(changed, cuts, 0.1)
        same_template(got, LeaderTemplate(changed, cuts, 0.1))
    assert entries(cache, "_compiled") == 3
    assert entries(cache, "_cached_adn_part") == 5  # the toy's two ADNs, the bigger one, both again with cuts


def test_a_changed_grid_file_is_read_again(cache, tmp_path) -> None:
    path = tmp_path / "grid.json"
    pp.to_json(pn.case9(), str(path))
    assert len(source.raw_net(("file", str(path))).bus) == 9
    source._load.cache_clear()
    assert len(source.raw_net(("file", str(path))).bus) == 9 and entries(cache) == 1
    pp.to_json(pn.case14(), str(path))
    source._load.cache_clear()
    assert len(source.raw_net(("file", str(path))).bus) == 14


def test_a_cached_profile_column_equals_pandas(cache) -> None:
    column = profiles.available_profiles()["load"][3] + "_pload"
    path = profiles._path(profiles.LOAD_FILE)
    expected = pd.read_csv(path, sep=";", usecols=[column])[column].to_numpy()
    stamp = (0, 0)  # a key of its own: another test's entry cannot answer
    np.testing.assert_array_equal(profiles._read_column(path, stamp, column), expected)
    written = entries(cache)
    np.testing.assert_array_equal(profiles._read_column(path, stamp, column), expected)
    assert written >= 1 and entries(cache) == written


@pytest.mark.parametrize("setting", ["off", "unwritable"])
def test_without_a_usable_folder_nothing_is_cached_and_nothing_fails(tmp_path, monkeypatch, setting) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text(json.dumps("not a folder"))
    monkeypatch.setenv("TSODSO_CACHE_DIR", "off" if setting == "off" else str(blocker / "cache"))
    case = toy_case(periods=2, n_adns=1)
    same_template(leader_template(case, False, 0.1), LeaderTemplate(case, False, 0.1))
    assert blocker.is_file() and not any(tmp_path.rglob("output.pkl"))


def test_a_changed_cached_function_is_called_again(cache, tmp_path, monkeypatch) -> None:
    """joblib sees only the pickling shim's code, so the cached function's own source must key its entries."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    for body, expected in (("x + 1", 2), ("x + 100", 101)):
        (tmp_path / "cached_mod.py").write_text(
            f"from coordinator.diskcache import disk_cached\n\n\n@disk_cached\ndef f(x):\n    return {body}\n")
        sys.modules.pop("cached_mod", None)
        importlib.invalidate_caches()
        module = importlib.import_module("cached_mod")
        assert module.f(1) == expected and module.f(1) == expected
    assert entries(cache) == 2
    sys.modules.pop("cached_mod", None)


def test_a_cached_region_exploration_equals_a_fresh_one(cache) -> None:
    from coordinator.blocks.dcopf import dcopf_qp
    from coordinator.parametric import RegionCache, explore_regions, withdrawal_box

    case = toy_case(periods=1, n_adns=2, fmax=40.0)
    qp = dcopf_qp(case.tn)
    demand = case.tn.demand(0)
    lo, hi = withdrawal_box(case, 0, 0.15)
    first = RegionCache(qp).explore(demand, lo, hi)
    assert entries(cache, "_explored") == 1
    again = RegionCache(qp).explore(demand, lo, hi)  # a new process's cache: read back from disk
    assert entries(cache, "_explored") == 1 and again is not first
    fresh = explore_regions(qp, demand, lo, hi, samples=8)
    assert len(again) == len(fresh) > 0
    for a, b in zip(sorted(again, key=lambda r: r.active), sorted(fresh, key=lambda r: r.active), strict=True):
        assert a.active == b.active
        np.testing.assert_allclose(a.L, b.L)
        np.testing.assert_allclose(a.cut0, b.cut0)
    wider = {n: v + 1.0 for n, v in hi.items()}
    RegionCache(qp).explore(demand, lo, wider)
    assert entries(cache, "_explored") == 2  # another box is explored anew
