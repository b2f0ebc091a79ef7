"""``tsodso sweep``: validation before any run, grid expansion and overrides, an end-to-end sweep on a LocalCluster
of 2 workers (with runs that fail), ``--resume`` and ``tsodso report DIR``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from scenarios import sweep as sweep_module
from scenarios.cli import UsageError, main
from scenarios.report import run_kpis
from scenarios.results_io import load_run
from scenarios.sweep import apply_override, is_complete, parse_sweep, run_one

SMALL = {"scenario": "small_2adn", "mode": "solve", "base": {"periods": 2},
         "options": {"time_limit": 30, "no_ac_check": True}}


WORKERS: dict[str, list] = {}  # what the end-to-end sweep's cluster looked like


def _raw_small() -> dict:
    from scenarios.config import SCENARIO_DIR

    return yaml.safe_load((SCENARIO_DIR / "small_2adn.yaml").read_text())


def _write(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _rows(directory: Path) -> dict[str, dict[str, str]]:
    with (directory / "summary.csv").open(newline="") as f:
        return {r["run_id"]: r for r in csv.DictReader(f)}


# --- (a) validation: every error names the key, exit 2, nothing run ------------------------------------------------
@pytest.mark.parametrize(("change", "words"), [
    ({"mode": "simulate"}, ["mode", "'simulate'", "solve, run"]),
    ({"grid": {"adns.*.vmaxx": [1.05]}}, ["grid point 0", "adns[0].vmaxx", "unknown field"]),
    ({"grid": {"day_of_year": [15, 400]}}, ["grid point 1", "day_of_year=400", "day_of_year = 400", "out of range"]),
    ({"grid": {"scheme": ["dso-led", "bottom-up"]}}, ["grid point 1", "scheme", "'bottom-up'", "tso-led"]),
    ({"options": {"time_limit": -1}}, ["options.time_limit", "-1", "must be > 0"]),
    ({"options": {"hours": 2}}, ["options.hours", "not an option of 'tsodso solve'"]),
    ({"options": {"output": "x.json"}}, ["options.output", "not an option"]),
    ({"grid": {"day_of_year": []}}, ["grid.day_of_year", "non-empty list"]),
    ({"grid": {"adns.7.vmax": [1.05]}}, ["grid.adns.7.vmax", "no item 7"]),
    ({"scenario": "no_such_case"}, ["scenario", "'no_such_case'", "small_2adn"]),
    ({"runs": 3}, ["runs", "unknown key", "grid"]),
])
def test_a_bad_sweep_file_is_named_and_exits_2_before_any_run(tmp_path: Path, capsys, change: dict,
                                                                words: list[str]) -> None:
    sweep = {**SMALL, "grid": {"day_of_year": [196]}} | change
    path = _write(tmp_path, sweep)
    with pytest.raises(UsageError) as err:
        parse_sweep(sweep, source=str(path), base_dir=tmp_path)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert main(["sweep", str(path), "--output", str(tmp_path / "out")]) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_existing_sweep_folder_needs_resume(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.csv").write_text("index,run_id\n")
    path = _write(tmp_path, {**SMALL, "grid": {"day_of_year": [196]}})
    assert main(["sweep", str(path), "--output", str(tmp_path / "out")]) == 2
    assert main(["sweep", str(path), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"]) == 2


# --- (b) overrides and grid expansion --------------------------------------------------------------------------
def test_dotted_keys_reach_every_or_one_adn_and_create_missing_mappings() -> None:
    data = _raw_small()
    apply_override(data, "adns.*.vmax", 1.07)
    apply_override(data, "adns[1].pv_profile", "PV5")
    apply_override(data, "adns.0.vmin", 0.92)
    apply_override(data, "adns.adn5.pcc_limit", 3.0)
    apply_override(data, "prices.c_wheel", 4.0)  # small_2adn has no prices mapping: created
    apply_override(data, "tn", {"load_profile": "G1-A"})  # merged: case stays
    assert [a["vmax"] for a in data["adns"]] == [1.07, 1.07]
    assert [a["pv_profile"] for a in data["adns"]] == ["PV3", "PV5"]
    assert data["adns"][0]["vmin"] == 0.92 and "vmin" not in data["adns"][1]
    assert data["adns"][1]["pcc_limit"] == 3.0 and "pcc_limit" not in data["adns"][0]
    assert data["prices"] == {"c_wheel": 4.0}
    assert data["tn"] == {"case": "case30", "load_profile": "G1-A"}
    with pytest.raises(UsageError, match="no item named 'adn9'"):
        apply_override(data, "adns.adn9.vmax", 1.05)
    with pytest.raises(UsageError, match="needs a list"):
        apply_override(data, "tn.*.case", "case30")


def test_the_runs_are_the_product_of_the_grid_lists_with_stable_ids(tmp_path: Path) -> None:
    sweep = {**SMALL, "grid": {"day_of_year": [15, 196], "adns.*.pv_profile": ["PV3", "PV5", "PV8"],
                               "scheme": ["dso-led", "tso-led"]}}
    runs = parse_sweep(sweep, base_dir=tmp_path).runs
    assert len(runs) == 2 * 3 * 2
    seen = {(r["params"]["day_of_year"], r["params"]["adns.*.pv_profile"], r["params"]["scheme"]) for r in runs}
    assert seen == {(d, p, s) for d in (15, 196) for p in ("PV3", "PV5", "PV8") for s in ("dso-led", "tso-led")}
    for r in runs:
        assert r["scenario"]["day_of_year"] == r["params"]["day_of_year"]
        assert r["scenario"]["periods"] == 2  # base applies to every run
        assert {a["pv_profile"] for a in r["scenario"]["adns"]} == {r["params"]["adns.*.pv_profile"]}
        assert r["argv"][-2:] == ["--scheme", r["params"]["scheme"]]
        assert ["--time-limit", "30"] == r["argv"][:2] and "--no-ac-check" in r["argv"]
    assert len({r["run_id"] for r in runs}) == len(runs)
    assert [r["run_id"] for r in parse_sweep(sweep, base_dir=tmp_path).runs] == [r["run_id"] for r in runs]
    changed = parse_sweep({**sweep, "base": {"periods": 3}}, base_dir=tmp_path).runs
    assert not {r["run_id"] for r in changed} & {r["run_id"] for r in runs}  # another run: resume must not skip it


def test_a_failure_inside_a_run_becomes_a_row(tmp_path: Path) -> None:
    bad = {"index": 0, "run_id": "0000-broken", "mode": "solve", "params": {"x": 1}, "argv": [],
           "scenario": {"name": "broken", "adns": []}}  # parse_scenario rejects it inside the CLI
    out = run_one(bad)
    assert out["result"] is None
    assert out["row"]["status"] == "error" and "adns" in out["row"]["error"]


def test_resume_skips_finished_and_recorded_failures_only(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.json").write_text("{}")
    ok = {"status": "optimal", "result": "runs/a.json", "error": ""}
    assert is_complete(ok, tmp_path, retry_failed=False)
    assert not is_complete(ok | {"result": "runs/missing.json"}, tmp_path, retry_failed=False)
    failed = {"status": "infeasible", "result": "", "error": "the continuous relaxation is infeasible"}
    assert is_complete(failed, tmp_path, retry_failed=False)
    assert not is_complete(failed, tmp_path, retry_failed=True)
    assert not is_complete(None, tmp_path, retry_failed=False)
    assert not is_complete({"status": "lost", "result": "", "error": "KilledWorker: ..."}, tmp_path, False)


def _thread_env() -> dict[str, str | None]:
    import os

    return {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


# --- (c) end to end on a LocalCluster of 2 workers ------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """4 solves of 2 periods, vmax 1.0: 2 days x vmin 0.9 (solves) / 1.0 (infeasible: no voltage drop allowed)."""
    tmp = tmp_path_factory.mktemp("sweep")
    base = {"periods": 2, "adns.*.vmax": 1.0}
    path = _write(tmp, {**SMALL, "base": base, "grid": {"day_of_year": [196, 15], "adns.*.vmin": [0.9, 1.0]}})
    out = tmp / "out"
    real_start = sweep_module.start_client

    def start_and_look(scheduler, workers):  # the cluster the sweep gets: threads and environment of its workers
        client, cluster = real_start(scheduler, workers)
        WORKERS["nthreads"] = [w["nthreads"] for w in client.scheduler_info()["workers"].values()]
        WORKERS["env"] = list(client.run(_thread_env).values())
        return client, cluster

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_module, "start_client", start_and_look)
        assert main(["sweep", str(path), "--workers", "2", "--output", str(out), "--no-progress"]) == 1  # failures
    return path, out


def test_c_local_workers_have_one_thread_and_single_threaded_blas(sweep_dir: tuple[Path, Path]) -> None:
    assert WORKERS["nthreads"] == [1, 1]
    assert WORKERS["env"] == [dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")] * 2


def test_c_every_run_has_a_row_a_file_and_its_kpis(sweep_dir: tuple[Path, Path]) -> None:
    _, out = sweep_dir
    rows = _rows(out)
    assert len(rows) == 4
    for row in rows.values():
        vmin = float(row["adns.*.vmin"])
        assert row["worker"].startswith("tcp://")
        assert float(row["wall_time_s"]) > 0
        scenario = yaml.safe_load((out / "runs" / f"{row['run_id']}.yaml").read_text())
        assert scenario["day_of_year"] == int(row["day_of_year"]) and scenario["periods"] == 2
        assert {(a["vmin"], a["vmax"]) for a in scenario["adns"]} == {(vmin, 1.0)}
        result = json.loads((out / row["result"]).read_text())
        assert result["status"] == row["status"] and result["periods"] == 2
        if vmin == 1.0:
            assert row["status"] == "infeasible" and "infeasible" in row["error"]
            assert row["tn_import_mwh"] == ""
            continue
        assert row["status"] == "optimal" and row["error"] == ""
        for key, value in result["kpis"].items():  # the solve's own KPIs, written by 'tsodso solve'
            if key in row and isinstance(value, float) and math.isfinite(value):
                assert float(row[key]) == pytest.approx(value, rel=1e-9, abs=1e-9), key
        for key, value in run_kpis(load_run(out / row["result"]))["total"].items():
            if math.isfinite(value):
                assert float(row[key]) == pytest.approx(value, rel=1e-12, abs=1e-12), key
    ok = [r for r in rows.values() if r["status"] == "optimal"]
    assert {r["day_of_year"] for r in ok} == {"196", "15"}
    assert ok[0]["pv_energy_mwh"] != ok[1]["pv_energy_mwh"]  # the days really differ


def test_d_resume_runs_only_what_is_missing(sweep_dir: tuple[Path, Path], capsys) -> None:
    path, out = sweep_dir
    before = _rows(out)
    capsys.readouterr()
    assert main(["sweep", str(path), "--output", str(out), "--resume", "--workers", "2"]) == 1
    assert _rows(out) == before  # nothing ran again, not even the recorded failures
    assert "4 already complete" in " ".join(capsys.readouterr().err.split())
    lost = next(r for r in before.values() if r["status"] == "optimal")
    (out / lost["result"]).unlink()
    assert main(["sweep", str(path), "--output", str(out), "--resume", "--workers", "1", "--no-progress"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "3 already complete" in err and "1 runs finished, 0 failed" in err
    after = _rows(out)
    assert after.keys() == before.keys()
    assert all(after[k] == before[k] for k in after if k != lost["run_id"])
    assert after[lost["run_id"]]["started"] >= before[lost["run_id"]]["finished"]
    assert (out / lost["result"]).exists()
    assert float(after[lost["run_id"]]["tn_import_mwh"]) == pytest.approx(float(lost["tn_import_mwh"]), rel=1e-6)


def test_e_report_of_a_sweep_folder_plots_kpis_against_parameters(sweep_dir: tuple[Path, Path], tmp_path: Path,
                                                                  capsys, monkeypatch) -> None:
    _, out = sweep_dir
    monkeypatch.setenv("COLUMNS", "250")  # the whole table, not cut to 80 columns
    assert main(["report", str(out), "--plots", str(tmp_path / "plots")]) == 0
    text = capsys.readouterr().out
    assert "4 runs, 2 ok" in text and "infeasible" in text
    pngs = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"sweep_tn_import_mwh.png", "sweep_self_consumption.png", "sweep_wall_time_s.png"} <= pngs
    assert all(p.stat().st_size > 5000 for p in (tmp_path / "plots").glob("*.png"))
    assert main(["report", str(tmp_path)]) == 2  # a folder without summary.csv


@pytest.mark.slow
def test_run_mode_writes_hdf5_per_run(tmp_path: Path) -> None:
    """Co-simulation sweep: 1 h of small_2adn for both schemes (about 30 s)."""
    path = _write(tmp_path, {"scenario": "small_2adn", "mode": "run", "options": {"hours": 1, "time_limit": 30},
                             "grid": {"scheme": ["dso-led", "tso-led"]}})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--workers", "2", "--output", str(out), "--no-progress"]) == 0
    rows = _rows(out)
    assert {r["scheme"] for r in rows.values()} == {"dso-led", "tso-led"}
    for row in rows.values():
        assert row["status"] == "ok" and row["result"].endswith(".h5")
        run = load_run(out / row["result"])
        assert run.scheme == row["scheme"] and len(run.hours) == 1
        assert float(row["tn_import_mwh"]) == pytest.approx(run_kpis(run)["total"]["tn_import_mwh"], rel=1e-12)
