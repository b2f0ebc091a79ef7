"""Scenario YAML -> config -> Case: shapes, overrides, and one test per validation error."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from coordinator.networks import tn_load_buses
from scenarios.config import ScenarioError, build_case, load_scenario, parse_scenario, scenario_names

BASE: dict[str, Any] = {
    "name": "t",
    "day_of_year": 196,
    "step": "1h",
    "periods": 4,
    "start_hour": 10,
    "adns": [
        {"name": "a", "tn_bus": 7, "placement": "adn1"},
        {"name": "b", "tn_bus": 18, "placement": "adn5", "load_profile": "L0-A"},
    ],
}


@pytest.mark.parametrize("name", ["ieee30_5adn", "ieee30_5adn_legacy"])
def test_default_scenario(name: str) -> None:
    cfg = load_scenario(name)
    assert {"ieee30_5adn", "ieee30_5adn_legacy", "small_2adn"} <= set(scenario_names())
    assert cfg.name == name and len(cfg.adns) == 5
    assert (cfg.step_minutes, cfg.periods, cfg.day_of_year, cfg.price_mode) == (60, 24, 207, "lmp")
    buses = [a.tn_bus for a in cfg.adns]
    assert len(set(buses)) == 5 and set(buses) <= set(tn_load_buses())
    gen_buses = {0, 1, 12, 21, 22, 26}
    assert not set(buses) & gen_buses
    assert cfg.source.endswith(f"{name}.yaml")


def test_new_default_uses_the_study_fields() -> None:
    cfg = load_scenario("ieee30_5adn")
    assert (cfg.load_level, cfg.price_unit, dict(cfg.tn.branch_ratings)) == ("year", "relative", {"line28": 9.0})
    assert len({(a.load_profile, a.pv_scale, a.bess) for a in cfg.adns}) == 5  # the ADNs differ
    legacy = load_scenario("ieee30_5adn_legacy")
    assert (legacy.load_level, legacy.price_unit, dict(legacy.tn.branch_ratings)) == ("day", "$/MWh", {})


def test_build_case_hourly() -> None:
    case = build_case(load_scenario("ieee30_5adn_legacy"))
    assert case.periods == 24 and case.step_hours == 1.0
    assert case.tn.load_scale.shape == (24,) and case.tn.load_scale.max() == pytest.approx(1.0)
    for adn in case.adns:
        assert adn.load_p.shape == adn.load_q.shape == (24, 33)
        assert adn.pv_avail.shape == (24, 8)
        assert adn.load_p.sum(axis=1).max() == pytest.approx(3.715)  # day peak = nominal
    # PV surplus at noon in the high-PV ADNs, deficit in the low-PV ones
    surplus = {a.name: float((a.pv_avail.sum(1) - a.load_p.sum(1)).max()) for a in case.adns}
    assert surplus["adn1"] > 0 and surplus["adn5"] < 0


def test_build_case_15min_and_overrides() -> None:
    cfg = parse_scenario(BASE)
    case = build_case(cfg, step_minutes=15, periods=8, start_hour=11.5)
    assert (case.periods, case.step_hours, case.start_hour) == (8, 0.25, 11.5)
    assert case.tn.load_scale.shape == (8,)
    assert all(a.load_p.shape == (8, 33) and a.pv_avail.shape == (8, 8) for a in case.adns)
    hourly = build_case(cfg)
    assert hourly.periods == 4 and hourly.adns[0].load_p.shape == (4, 33)


def test_tariff_expanded_per_period() -> None:
    data = copy.deepcopy(BASE)
    data.update(price_mode="tariff", start_hour=22, prices={"tariff": {"import": list(range(24)), "export": [1.5]}})
    case = build_case(parse_scenario(data))
    assert case.prices.tariff_import == (22.0, 23.0, 0.0, 1.0)
    assert case.prices.tariff_export == (1.5,) * 4
    q = build_case(parse_scenario(data), step_minutes=15, periods=6, start_hour=23.5)
    assert q.prices.tariff_import == (23.0, 23.0, 0.0, 0.0, 0.0, 0.0)


def test_prices_override_defaults() -> None:
    data = copy.deepcopy(BASE)
    data["prices"] = {"c_wheel": 0.25, "price_cap": 500}
    cfg = parse_scenario(data)
    assert (cfg.prices.c_wheel, cfg.prices.price_cap, cfg.prices.c_ret) == (0.25, 500.0, 2.0)


def _set(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *head, last = path.split(".")
    node: Any = data
    for key in head:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    node[last] = value
    return data


ERRORS = [
    # (mutation path, value, expected field path in message, expected text(s))
    ("colour", "red", "colour", ["unknown field", "allowed", "adns"]),
    ("adns.1.tnbus", 7, "adns[1].tnbus", ["unknown field", "tn_bus"]),
    ("tn.kase", "case30", "tn.kase", ["unknown field", "load_profile"]),
    ("periods", "24", "periods", ["'24'", "integer"]),
    ("periods", True, "periods", ["True", "integer"]),
    ("periods", 0, "periods", ["= 0", ">= 1"]),
    ("step", "60min", "step", ["'60min'", "'1h'", "'15min'"]),
    ("start_hour", 0.5, "start_hour", ["0.5", "multiple"]),
    ("day_of_year", 400, "day_of_year", ["400", "1 .. 366"]),
    ("price_mode", "auction", "price_mode", ["'auction'", "'lmp'", "'tariff'"]),
    ("adns.1.tn_bus", 12, "adns[1].tn_bus", ["= 12", "not a load bus", "7, 9, 11"]),
    ("adns.1.tn_bus", 7, "adns[1].tn_bus", ["= 7", "already hosts", "'a'"]),
    ("adns.1.name", "a", "adns[1].name", ["'a'", "duplicate"]),
    ("adns.1.placement", "adn9", "adns[1].placement", ["'adn9'", "'adn1'"]),
    ("adns.0.load_profile", "h0-a", "adns[0].load_profile", ["'h0-a'", "closest: 'H0-A'"]),
    ("adns.0.pv_profile", "PV99", "adns[0].pv_profile", ["'PV99'", "'PV3'"]),
    ("adns.0.vmax", 0.95, "adns[0].vmax", ["0.95", "1.0 .. 1.5"]),
    ("prices.c_wheel", -1.0, "prices.c_wheel", ["-1.0", ">= 0"]),
    ("prices.c_ret", "cheap", "prices.c_ret", ["'cheap'", "number"]),
    ("prices.tariff", {"import": [1.0] * 5, "export": [1.0]}, "prices.tariff.import", ["5 values", "24 values"]),
    ("prices.tariff", {"import": [1.0], "export": [-2.0]}, "prices.tariff.export[0]", ["-2.0", "non-negative"]),
    ("price_mode", "tariff", "prices.tariff", ["required", "tariff"]),
    ("tn.case", "case99", "tn.case", ["'case99'", "case30"]),
    ("inter_adn_p2p", "yes", "inter_adn_p2p", ["'yes'", "true or false"]),
    ("adns", [], "adns", ["[]", "non-empty"]),
    ("tn.load_scale", 0, "tn.load_scale", ["= 0", "> 0"]),
    ("tn.rating_scale", "big", "tn.rating_scale", ["'big'", "number"]),
    ("tn.branch_ratings", {"line99": 10}, "tn.branch_ratings.line99", ["= 10", "unknown branch", "line40"]),
    ("tn.branch_ratings", {"line7": -5}, "tn.branch_ratings.line7", ["-5", ">= 0"]),
    ("tn.branch_ratings", [10], "tn.branch_ratings", ["[10]", "mapping"]),
    ("load_level", "month", "load_level", ["'month'", "'day'", "'year'"]),
    ("prices.unit", "EUR", "prices.unit", ["'EUR'", "'relative'", "'$/MWh'"]),
    ("adns.0.load_scale", -1, "adns[0].load_scale", ["-1", "> 0"]),
    ("adns.0.pv_scale", -0.5, "adns[0].pv_scale", ["-0.5", ">= 0"]),
    ("adns.0.bess", {"p_scale": 2, "size": 1}, "adns[0].bess.size", ["unknown field", "p_scale", "e_scale"]),
    ("adns.0.bess", {"e_scale": -1}, "adns[0].bess.e_scale", ["-1", ">= 0"]),
    ("adns.0.bess", 2.0, "adns[0].bess", ["2.0", "mapping"]),
]


@pytest.mark.parametrize("mut_path,value,field,texts", ERRORS, ids=[f"{e[0]}={e[1]!r}"[:40] for e in ERRORS])
def test_validation_errors(tmp_path: Path, mut_path: str, value: Any, field: str, texts: list[str]) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(_set(mut_path, value)))
    with pytest.raises(ScenarioError) as err:
        load_scenario(file)
    msg = str(err.value)
    assert str(file) in msg and f": {field}" in msg and err.value.path == field, msg
    for text in texts:
        assert text in msg, msg
    assert isinstance(err.value, ValueError)


def test_study_fields_reach_the_case() -> None:
    plain = build_case(parse_scenario(BASE))
    data = copy.deepcopy(BASE)
    data["tn"] = {"load_scale": 1.2, "rating_scale": 0.5, "branch_ratings": {"line7": 40, "line40": 5.5}}
    data["adns"][0].update(load_scale=0.8, pv_scale=2.0, bess={"p_scale": 0.5, "e_scale": 3})
    data["adns"][1]["bess"] = {"p_scale": 0}
    case = build_case(parse_scenario(data))
    assert case.tn.demand(0) == pytest.approx({n: 1.2 * d for n, d in plain.tn.demand(0).items()})
    fmax = {ln.name: ln.fmax for ln in case.tn.lines}
    old = {ln.name: ln.fmax for ln in plain.tn.lines}
    assert fmax["line7"] == 40.0 and fmax["line40"] == 5.5
    assert fmax["line0"] == pytest.approx(0.5 * old["line0"]) == pytest.approx(65.0)  # case30 line 1-2: 130 MVA
    a, a0 = case.adns[0], plain.adns[0]
    np.testing.assert_allclose(a.load_p, 0.8 * a0.load_p)
    np.testing.assert_allclose(a.load_q, 0.8 * a0.load_q)
    np.testing.assert_allclose(a.pv_avail, 2.0 * a0.pv_avail)
    assert a.pv_peak == pytest.approx([2.0 * p for p in a0.pv_peak])
    # placement adn1: three 0.5 MW / 2 MWh units, SoC 0.1..0.9, start 0.5
    assert [(b.pmax, b.emax, b.emin, b.e0) for b in a.bess] == [pytest.approx((0.25, 5.4, 0.6, 3.0))] * 3
    assert case.adns[1].bess == []  # zero power removes the batteries
    np.testing.assert_allclose(case.adns[1].load_p, plain.adns[1].load_p)


def test_load_level_year_uses_the_year_peak() -> None:
    from coordinator.profiles import day_profiles

    data = copy.deepcopy(BASE)
    data["load_level"] = "year"
    case = build_case(parse_scenario(data))
    plain = build_case(parse_scenario(BASE))
    assert case.tn.load_scale.max() < plain.tn.load_scale.max()
    expected = day_profiles(196, periods=4, start_hour=10, load_profile="L0-A", normalise="year").load
    np.testing.assert_allclose(case.adns[1].load_p.sum(axis=1), 3.715 * expected)


def test_relative_prices_scale_with_the_tn() -> None:
    from coordinator.prices import reference_marginal_cost

    data = copy.deepcopy(BASE)
    data["prices"] = {"unit": "relative", "c_tn_imp": 0.25, "c_wheel": 0.1, "price_cap": 500}
    case = build_case(parse_scenario(data))
    ref = reference_marginal_cost(case.tn)
    assert 3.0 < ref < 5.0  # case30's DC LMPs are ~3.8 $/MWh
    assert case.prices.c_tn_imp == pytest.approx(0.25 * ref) and case.prices.c_wheel == pytest.approx(0.1 * ref)
    assert case.prices.c_ret == pytest.approx(2.0 * ref)  # an unlisted coefficient: its default, in the same unit
    assert case.prices.price_cap == 500.0  # a bound on the duals, always in $/MWh


def test_missing_required_field() -> None:
    data = copy.deepcopy(BASE)
    del data["adns"][0]["placement"]
    with pytest.raises(ScenarioError, match=r"adns\[0\]\.placement: required"):
        parse_scenario(data, source="x.yaml")


def test_unknown_scenario_name_lists_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="ieee30_5adn"):
        load_scenario("no_such_scenario")


def test_invalid_yaml(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(file)


def test_build_case_rejects_bad_overrides() -> None:
    cfg = parse_scenario(BASE)
    with pytest.raises(ScenarioError, match="step_minutes"):
        build_case(cfg, step_minutes=30)
    with pytest.raises(ScenarioError, match="periods"):
        build_case(cfg, periods=0)
    with pytest.raises(ScenarioError, match="start_hour"):
        build_case(cfg, start_hour=10.25)


def test_build_case_with_stand_in_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_case only needs day_profiles' documented API: swap in a stub and check the wiring."""
    import coordinator.profiles as profiles

    calls = []

    def fake(day_of_year, step_minutes=60, periods=24, start_hour=0.0, load_profile="H0-B", pv_profile="PV3",
             normalise="day"):
        calls.append((day_of_year, step_minutes, periods, start_hour, load_profile, pv_profile, normalise))
        return profiles.DayProfiles(load=np.full(periods, 0.5), pv=np.full(periods, 0.25), step_minutes=step_minutes)

    monkeypatch.setattr(profiles, "day_profiles", fake)
    case = build_case(parse_scenario(BASE))
    assert calls[0] == (196, 60, 4, 10.0, "G0-A", "PV3", "day")
    assert calls[2][4] == "L0-A"
    assert case.tn.load_scale == pytest.approx(np.full(4, 0.5))
    assert case.adns[1].pv_avail.sum(axis=1) == pytest.approx(np.full(4, 0.25 * 1.486))
