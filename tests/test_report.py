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
