"""``tsodso report`` / ``compare``: KPIs equal the stored ones, both file kinds load, plots and JSON are written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scenarios.cli import main
from scenarios.report import kpi_deltas, run_kpis
from scenarios.results_io import load_run

PLOTS = {"pcc_exchange", "bess_soc", "pv", "lmp", "voltage"}


@pytest.mark.parametrize("scheme", ["dso-led", "tso-led"])
def test_json_kpis_equal_the_ones_solve_stored(plan_files: dict[str, Path], scheme: str) -> None:
    stored = json.loads(plan_files[scheme].read_text())
    kpis = run_kpis(load_run(plan_files[scheme]))
    assert kpis["scheme"] == scheme
    for key, value in stored["kpis"].items():
        assert kpis["total"][key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    for adn in stored["adns"]:
        for key, value in adn["kpis"].items():
            assert kpis["adns"][adn["name"]][key] == pytest.approx(value, rel=1e-9, abs=1e-9), (adn["name"], key)


def test_hdf5_run_kpis_follow_the_recorded_series(run_file: Path) -> None:
    from simulators.recorder import read_run

    run = load_run(run_file)
    data = read_run(str(run_file))
    assert run.source.startswith("co-simulation") and len(run.hours) == 2
    kpis = run_kpis(run)
    imports = sum(np.clip(data[f"/ADNGrid/{a.name}/pcc_p_mw"], 0, None).sum() for a in run.adns) * run.step_hours
    assert kpis["total"]["tn_import_mwh"] == pytest.approx(imports)
    assert kpis["total"]["v_min_pu"] == pytest.approx(min(np.min(data[f"/ADNGrid/{a.name}/vm_pu"]) for a in run.adns))
    assert math.isfinite(kpis["total"]["bess_equivalent_cycles"])  # capacity read from the placement table
    assert kpis["total"]["solve_time_mean_s"] > 0 and kpis["total"]["model_binaries"] > 0
    assert math.isfinite(kpis["total"]["line_loading_max_pct"])


def test_report_command_on_both_kinds(plan_files: dict[str, Path], run_file: Path, tmp_path: Path) -> None:
    for name, path in (("plan", plan_files["tso-led"]), ("run", run_file)):
        out = tmp_path / name
        assert main(["report", str(path), "--json", str(out / "kpis.json"), "--plots", str(out)]) == 0
        written = {p.stem for p in out.glob("*.png")}
        assert PLOTS <= written
        assert ("solve_time" in written) == (name == "run")  # one solve per plan: nothing to plot per step
        kpis = json.loads((out / "kpis.json").read_text())
        assert set(kpis["adns"]) == {a.name for a in load_run(path).adns}
    assert "tso_led" in json.loads((tmp_path / "plan" / "kpis.json").read_text())


def test_compare_reports_b_minus_a(plan_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    assert main(["compare", str(plan_files["dso-led"]), str(plan_files["tso-led"]), "--json", str(out),
                 "--plots", str(tmp_path / "plots")]) == 0
    data = json.loads(out.read_text())
    for key, delta in data["delta_b_minus_a"]["total"].items():
        a, b = data["a"]["total"][key], data["b"]["total"][key]
        if math.isfinite(a) and math.isfinite(b):
            assert delta == pytest.approx(b - a)
    assert PLOTS <= {p.stem for p in (tmp_path / "plots").glob("*.png")}
    assert kpi_deltas(data["a"], data["a"])["total"]["tn_import_mwh"] == 0


def test_report_of_a_missing_or_unsolved_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    bad = tmp_path / "infeasible.json"
    bad.write_text(json.dumps({"scheme": "dso-led", "status": "infeasible"}))
    assert main(["report", str(bad)]) == 2


@pytest.mark.parametrize("scheme", ["dso-led", "tso-led"])
def test_dso_cost_formula_reproduces_the_plan_objective(plan_files: dict[str, Path], scheme: str) -> None:
    """The one formula used for runs (scenarios.dso_cost), evaluated on a plan's series, equals the plan's objective
    (DSO-led: the MISOCP objective; TSO-led: its DSO cost at the final LMPs): an independent check of the formula."""
    from coordinator.case import Prices
    from scenarios.dso_cost import Pricing, dso_cost

    stored = json.loads(plan_files[scheme].read_text())
    assert stored["price_mode"] == "lmp"
    value = dso_cost(load_run(plan_files[scheme]), Pricing(Prices()))  # toy_case uses the default prices
    assert value == pytest.approx(stored["objective"], rel=1e-5, abs=1e-4)
    # and it reacts to every price: doubling the degradation cost adds the throughput again
    run = load_run(plan_files[scheme])
    throughput = sum(float(np.nansum(a.charge_mw) + np.nansum(a.discharge_mw)) for a in run.adns) * run.step_hours
    doubled = dso_cost(run, Pricing(Prices(c_deg=2 * Prices().c_deg)))
    assert doubled - value == pytest.approx(Prices().c_deg * throughput, rel=1e-9, abs=1e-9)


def test_dso_cost_of_a_run_uses_the_recorded_series(run_file: Path, tmp_path: Path) -> None:
    from simulators.recorder import read_attrs, read_run

    kpis = run_kpis(load_run(run_file))
    cost = kpis["total"]["dso_cost"]
    assert math.isfinite(cost)
    # energy part by hand: LMP at each host bus x AC PCC exchange; the rest are non-negative fees
    data, scenario = read_run(str(run_file)), json.loads(read_attrs(str(run_file))["scenario"])
    energy = sum(float(np.sum(data[f"/TSO/tn/lmp/{a['tn_bus']}"] * data[f"/ADNGrid/{a['name']}/pcc_p_mw"]))
                 for a in scenario["adns"])
    assert cost >= energy - 1e-9
    # the run (2 steps, 2 h horizon, perfect forecasts) applies about what one 2-period plan of the same hours
    # costs: AC losses and the re-plan at the second step make the only difference
    plan = tmp_path / "plan.json"
    assert main(["solve", "small_2adn", "--periods", "2", "--no-ac-check", "--output", str(plan)]) == 0
    assert cost == pytest.approx(json.loads(plan.read_text())["objective"], rel=0.03)


def _small_kpis(n_adns: int, awkward: bool = False) -> dict:
    """A KPI dict shaped like run_kpis' with the default case's kinds of values (or awkward long ones)."""
    values = {"tn_import_mwh": 193.2412, "tn_export_mwh": 0.0, "pv_energy_mwh": 1234.567, "demand_mwh": -16.27,
              "bess_throughput_mwh": 39.26, "curtailment_mwh": -1.456e-04 if awkward else -1.456e-6,
              "p2p_intra_mwh": -0.012345 if awkward else 0.012345,
              "p2p_inter_mwh": 2.147, "bess_equivalent_cycles": 0.8179, "self_consumption": 0.976,
              "self_sufficiency": 0.2866, "v_min_pu": 0.9219, "v_max_pu": 1.027, "line_loading_max_pct": 87.65}
    total = dict(values) | {"dso_cost": 1075.2, "tso_generation_cost": 91620.4, "solve_time_mean_s": 9.94,
                            "model_binaries": 2654.0}
    return {"adns": {f"adn{k + 1}": dict(values) for k in range(n_adns)}, "total": total}


@pytest.mark.parametrize(("n_adns", "awkward"), [(2, False), (5, False), (5, True), (12, False)])
def test_report_tables_fit_80_columns_without_truncation(n_adns: int, awkward: bool) -> None:
    from rich.console import Console

    from scenarios.report import _cell, kpi_tables

    kpis = _small_kpis(n_adns, awkward)
    console = Console(width=80, record=True)
    tables = kpi_tables(kpis, "run: dso-led, plan (JSON), 24 periods", width=80)
    for table in tables:
        console.print(table)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    for value in kpis["total"].values():  # every value appears whole, on one line
        assert _cell(value) in text
    for name in kpis["adns"]:
        assert name in text
    if not awkward:
        assert (len(tables) == 2) == (n_adns <= 5)  # 5 ADNs + total fit one table (+ the run totals)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def assert_legends_clear(fig) -> None:
    """Every legend lies inside the figure and off every axes' plotting area, tick labels, title, axis labels and
    texts."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert box.x0 >= fig_box.x0 - 1 and box.x1 <= fig_box.x1 + 1 and box.y0 >= fig_box.y0 - 1 \
            and box.y1 <= fig_box.y1 + 1, "legend cut off by the figure edge"
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            artists = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.title, ax.xaxis.label, ax.yaxis.label,
                       ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text(), *ax.texts]
            assert not _overlaps(box, ax.get_window_extent(renderer)), "legend on the plotting area"
            for artist in artists:
                if artist.get_visible() and artist.get_text():
                    assert not _overlaps(box, artist.get_window_extent(renderer)), f"legend on {artist.get_text()!r}"


def test_plot_legends_sit_on_no_label(plan_files: dict[str, Path], run_file: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    from scenarios.report import write_plots

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    write_plots([load_run(plan_files["dso-led"]), load_run(run_file)], tmp_path)
    assert len(figures) >= 5
    for fig in figures:
        assert_legends_clear(fig)
        for ax in fig.axes:  # no free text inside the axes (the voltage plot's source is in the x label now)
            assert not ax.texts


def test_tidy_tables_hold_the_file_series(plan_files: dict[str, Path], run_file: Path) -> None:
    """``load_run(...).adn_table()``: one row per ADN and period, the values of the file (read here with json/h5py)."""
    import json

    import h5py

    from scenarios.results_io import load_run

    plan = json.loads(plan_files["dso-led"].read_text())
    table = load_run(plan_files["dso-led"]).adn_table()
    assert len(table) == len(plan["adns"]) * plan["periods"]
    for adn in plan["adns"]:
        rows = table[table.adn == adn["name"]].sort_values("period")
        np.testing.assert_allclose(rows.pcc_mw, adn["pcc_mw"])
        np.testing.assert_allclose(rows.soc_mwh, np.sum([b["soc_mwh"] for b in adn["bess"]], axis=0))
    lmp = load_run(plan_files["dso-led"]).lmp_table()
    assert len(lmp) == len(plan["tn"]["lmp"]) * plan["periods"]
    bus = next(iter(plan["tn"]["lmp"]))
    np.testing.assert_allclose(lmp[lmp.bus == int(bus)].sort_values("period").lmp, plan["tn"]["lmp"][bus])
    run_table = load_run(run_file).adn_table()
    with h5py.File(run_file, "r", locking=False) as h5:
        pcc = h5["ADNGrid/adn1/pcc_p_mw"][()]
    np.testing.assert_allclose(run_table[run_table.adn == "adn1"].sort_values("period").pcc_mw, pcc)
