"""``tsodso study``: the paired statistics against a hand computation, day specs, failed days, and an end-to-end
study of 2 days x 2 schemes on ``small_2adn`` with 2 periods per day."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scenarios import study
from scenarios.cli import main
from scenarios.study import KPIS, paired_findings, study_days

# Student t, 97.5 % quantile, 2 degrees of freedom, in closed form: t = (2p - 1) / sqrt(2 p (1 - p)) = 4.3026527297
T_975_2DOF = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025)


def _row(status: str, **kpis: float) -> dict:
    return {"status": status, "message": "", "solve_time_s": 1.0, "wall_s": 1.0, "kpis": kpis}


def test_paired_findings_equal_a_hand_computation_on_three_days() -> None:
    from scipy.stats import t

    assert T_975_2DOF == pytest.approx(4.30265, abs=1e-5)  # printed tables
    assert t.ppf(0.975, 2) == pytest.approx(T_975_2DOF, rel=1e-12)
    dso = [10.0, 12.0, 11.5]
    tso = [9.0, 12.5, 10.0]
    cost_dso, cost_tso = [100.0, 200.0, 300.0], [100.0 + 1e-8, 150.0, 310.0]  # day 1: solver noise, not a result
    days = [{"day": d, "dso-led": _row("optimal", tn_import_mwh=a, dso_cost=c),
             "tso-led": _row("optimal" if d != 8 else "feasible", tn_import_mwh=b, dso_cost=e)}
            for d, a, b, c, e in zip((1, 8, 15), dso, tso, cost_dso, cost_tso, strict=True)]
    days.append({"day": 22, "dso-led": _row("optimal", tn_import_mwh=99.0, dso_cost=1.0),
                 "tso-led": _row("error")})  # failed: not paired
    found = {f["kpi"]: f for f in paired_findings(days)}
    assert [f["kpi"] for f in paired_findings(days)] == [k for k, _, _ in KPIS]

    # hand: d = 1, -0.5, 1.5
    mean = (1 - 0.5 + 1.5) / 3
    sd = math.sqrt(((1 - mean) ** 2 + (-0.5 - mean) ** 2 + (1.5 - mean) ** 2) / 2)
    half = T_975_2DOF * sd / math.sqrt(3)
    f = found["tn_import_mwh"]
    assert f["n_days"] == 3
    assert f["mean_diff"] == pytest.approx(2 / 3, rel=1e-12)
    assert f["sd_diff"] == pytest.approx(sd, rel=1e-12)
    assert (f["ci_low"], f["ci_high"]) == pytest.approx((mean - half, mean + half), rel=1e-12)
    assert (f["days_positive"], f["days_negative"]) == (2, 1)
    assert f["mean_dso_led"] == pytest.approx(33.5 / 3) and f["mean_tso_led"] == pytest.approx(31.5 / 3)

    g = found["dso_cost"]  # d = -1e-8 (noise), 50, -10
    assert g["mean_diff"] == pytest.approx((50 - 10 - 1e-8) / 3)
    assert (g["days_positive"], g["days_negative"]) == (1, 1)
    assert found["bess_throughput_mwh"]["n_days"] == 0 and math.isnan(found["bess_throughput_mwh"]["mean_diff"])

    one = paired_findings(days[:1])[0]  # n = 1: a mean but no interval
    assert one["n_days"] == 1 and one["mean_diff"] == pytest.approx(1.0)
    assert math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])


def test_day_specs() -> None:
    default = study_days(None)
    assert len(default) == 52 and default[:3] == [1, 8, 15] and default[-1] == 358
    assert study_days("15,196") == [15, 196]
    assert study_days("196,") == [196]
    assert study_days(" 196 , 15,15") == [15, 196]
    eight = study_days("8")
    assert len(eight) == 8 and len(set(eight)) == 8 and 1 <= eight[0] < 46 and 321 < eight[-1] <= 366
    assert np.ptp(np.diff(eight)) <= 1  # evenly spread
    assert study_days("366") == list(range(1, 367))
    for spec, message in (("400", "--days: 400 is outside 1..366"), ("15,400", "--days: 400 is outside 1..366"),
                          ("0", "--days: 0 is outside 1..366"), ("x", "--days: 'x' is not an integer"),
                          (",", "no day")):
        with pytest.raises(ValueError, match=message.replace(".", r"\.")):
            study_days(spec)


def test_bad_arguments_exit_2_without_solving(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "small_2adn", "--days", "400"]) == 2
    assert "--days: 400 is outside 1..366" in capsys.readouterr().err
    assert main(["study", "small_2adn", "--schemes", "dso-led,bottom-up"]) == 2
    assert "'bottom-up' is not a scheme" in capsys.readouterr().err
    assert main(["study", "no_such_scenario", "--days", "1,"]) == 2
    assert "scenario not found" in capsys.readouterr().err


def test_a_failed_day_is_recorded_and_the_study_goes_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def fake_plan_day(config, day, scheme, options, sessions):
        calls.append((day, scheme))
        if (day, scheme) == (8, "tso-led"):
            raise RuntimeError("solver exploded")
        if (day, scheme) == (15, "dso-led"):
            return {"status": "infeasible", "message": "no schedule", "solve_time_s": 0.1, "kpis": {}}
        return {"status": "optimal", "message": "", "solve_time_s": 0.1,
                "kpis": {key: float(day) + (scheme == "dso-led") for key, _, _ in KPIS}}

    monkeypatch.setattr(study, "_plan_day", fake_plan_day)
    out = tmp_path / "study.json"
    assert main(["study", "small_2adn", "--days", "1,8,15,22", "--json", str(out), "--no-progress"]) == 0
    assert len(calls) == 8  # every day and scheme was tried
    data = json.loads(out.read_text())
    by_day = {d["day"]: d for d in data["days"]}
    assert by_day[8]["tso-led"]["status"] == "error"
    assert "RuntimeError: solver exploded" in by_day[8]["tso-led"]["message"]
    assert by_day[15]["dso-led"]["status"] == "infeasible" and by_day[15]["dso-led"]["message"] == "no schedule"
    for f in data["findings"]:
        assert f["n_days"] == 2 and f["mean_diff"] == pytest.approx(1.0) and f["days_positive"] == 2

    def all_fail(config, day, scheme, options, sessions):
        raise RuntimeError("nothing works")

    monkeypatch.setattr(study, "_plan_day", all_fail)
    assert main(["study", "small_2adn", "--days", "1,", "--no-progress"]) == 1  # no paired day


def test_study_end_to_end_two_days(tmp_path: Path) -> None:
    """2 days x 2 schemes, 2 periods each: documented JSON schema, plots, the same rows with 2 worker processes, and
    the re-used DSO-led model gives the same KPIs as a fresh solve of that day."""
    import dataclasses

    from coordinator.blocks.dcopf import dcopf_qp
    from coordinator.session import PlanningSession
    from coordinator.solvers.base import SolveOptions
    from coordinator.tso_led import follower_at
    from scenarios.config import build_case, load_scenario

    out, plots = tmp_path / "study.json", tmp_path / "plots"
    assert main(["study", "small_2adn", "--days", "15,196", "--periods", "2", "--json", str(out), "--plots",
                 str(plots), "--no-progress", "--mip-gap", "1e-6"]) == 0
    data = json.loads(out.read_text())
    assert data["method"] == "paired t, 95 %" and data["schemes"] == ["dso-led", "tso-led"]
    assert [d["day"] for d in data["days"]] == [15, 196]
    assert {f["kpi"] for f in data["findings"]} == {k for k, _, _ in KPIS}
    for f in data["findings"]:
        assert {"kpi", "mean_diff", "ci_low", "ci_high", "n_days", "days_positive"} <= set(f)
        assert f["n_days"] == 2
    for day in data["days"]:
        for scheme in ("dso-led", "tso-led"):
            row = day[scheme]
            assert row["status"] == "optimal" and row["solve_time_s"] > 0
            assert set(row["kpis"]) == {k for k, _, _ in KPIS}
            assert 0 < row["kpis"]["tn_line_loading_max_pct"] < 100
    # two worker processes give the same rows
    parallel = tmp_path / "parallel.json"
    assert main(["study", "small_2adn", "--days", "15,196", "--periods", "2", "--json", str(parallel), "--jobs", "2",
                 "--no-progress", "--mip-gap", "1e-6"]) == 0
    for one, two in zip(data["days"], json.loads(parallel.read_text())["days"], strict=True):
        assert one["day"] == two["day"]
        for scheme in ("dso-led", "tso-led"):
            assert two[scheme]["status"] == "optimal"
            for key, value in one[scheme]["kpis"].items():
                assert two[scheme]["kpis"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), (one["day"], key)
    written = {p.name for p in plots.glob("*.png")}
    assert "differences.png" in written and {f"diff_{k}.png" for k, _, _ in KPIS} <= written

    # the second day's DSO-led KPIs (model re-used from day 15) equal a fresh solve of day 196
    cfg = load_scenario("small_2adn")
    case = build_case(dataclasses.replace(cfg, day_of_year=196, start_hour=0.0), periods=2, start_hour=0.0)
    session = PlanningSession(case, options=SolveOptions(solver="fast", mip_gap=1e-6))
    fresh = session.solve(case, ac_periods=[])
    for key, value in fresh["kpis"].items():
        if key in data["days"][1]["dso-led"]["kpis"]:
            assert data["days"][1]["dso-led"]["kpis"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
    # TN flows of the result against an independent DC-OPF at the solved PCC schedule
    qp = dcopf_qp(case.tn)
    dispatch = follower_at(case, qp, np.array([adn["pcc_mw"] for adn in fresh["adns"]]))
    for k, line in enumerate(case.tn.lines):
        flows = fresh["tn"]["flow_mw"][line.name]
        for t in range(case.periods):
            assert flows[t] == pytest.approx(dispatch[t].x[qp.flow_col[k]], abs=1e-4)
    worst = max(abs(dispatch[t].x[qp.flow_col[k]]) / line.fmax * 100
                for k, line in enumerate(case.tn.lines) for t in range(case.periods))
    assert fresh["tn"]["line_loading_max_pct"] == pytest.approx(worst, abs=1e-3)


@pytest.mark.slow
def test_study_with_the_cosimulation(tmp_path: Path) -> None:
    """``--cosim``: one co-simulation per day and scheme, an HDF5 file each, KPIs from the AC power flow."""
    out, runs = tmp_path / "study.json", tmp_path / "runs"
    assert main(["study", "small_2adn", "--days", "196,", "--periods", "1", "--cosim", "--runs", str(runs),
                 "--json", str(out), "--no-progress"]) == 0
    data = json.loads(out.read_text())
    assert data["mode"] == "co-simulation"
    assert {p.name for p in runs.glob("*.h5")} == {"day196-dso-led.h5", "day196-tso-led.h5"}
    for scheme in ("dso-led", "tso-led"):
        row = data["days"][0][scheme]
        assert row["status"] == "completed"
        assert all(math.isfinite(row["kpis"][k]) for k in ("tn_import_mwh", "dso_cost", "tn_line_loading_max_pct"))
    assert all(f["n_days"] == 1 for f in data["findings"])
