"""Fault trials for the CLI's input and output: every bad input is one clear line and exit 2, no result is lost.

Classes: scenario files, data files, CLI arguments, output paths, solver limits and infeasible cases, report inputs,
Ctrl-C, packaging and the CLI's import structure. Each trial asserts the exit code and that the message names
the file, the field (or key, row) and the value; a traceback in a user error fails the trial.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from scenarios.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["small_2adn", "--periods", "2", "--no-ac-check"]
# one ADN that cannot import (pcc_limit 0) while its evening load exceeds its BESS: no operating point exists
INFEASIBLE_YAML = """\
name: infeasible
tn: {case: case30, load_profile: G0-A}
day_of_year: 196
step: 1h
periods: 2
start_hour: 20
adns:
  - {name: adn1, tn_bus: 7, placement: adn1, load_profile: H0-A, pv_profile: PV3, pcc_limit: 0}
"""


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A regression that writes a default output (result.json) writes it here, not into the checkout."""
    monkeypatch.chdir(tmp_path)


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Exit code and everything printed (stdout + stderr, wrapping undone) of ``tsodso ARGS`` in-process."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())


def user_error(capsys: pytest.CaptureFixture, *args: str) -> str:
    """Run a command that must fail as a user error: exit 2, an ``error`` line, no traceback. Returns the text."""
    code, text = run_cli(capsys, *args)
    assert code == 2, text
    assert "error" in text and "Traceback" not in text, text
    return text


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- scenario files ---------------------------------------------------------------------------------------------
SCENARIO = (ROOT / "scenarios" / "small_2adn.yaml").read_text()


def test_duplicate_yaml_key_names_file_line_and_key(tmp_path, capsys):
    bad = write(tmp_path / "dup.yaml", SCENARIO.replace("periods: 4\n", "periods: 4\nperiods: 6\n"))
    line = SCENARIO.splitlines().index("periods: 4") + 2
    text = user_error(capsys, "solve", bad)
    assert str(bad) in text and "periods" in text and f"line {line}" in text and "duplicate" in text


def test_duplicate_key_in_a_nested_mapping(tmp_path, capsys):
    bad = write(tmp_path / "dup.yaml", SCENARIO.replace("placement: adn5,", "placement: adn5, placement: adn1,"))
    text = user_error(capsys, "solve", bad)
    assert "duplicate" in text and "placement" in text


@pytest.mark.parametrize(("content", "expected"), [
    ("", ["<top level>", "mapping"]),
    ("- a\n- b\n", ["<top level>", "mapping"]),
    ("name: [unclosed\n", ["not valid YAML"]),
    ("\xff\xfe binary", ["not a text file"]),
])
def test_unusable_scenario_file(tmp_path, capsys, content, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content.encode("latin-1"))
    text = user_error(capsys, "solve", bad)
    assert str(bad) in text and all(e in text for e in expected), text


def test_wrong_type_names_field_and_value(tmp_path, capsys):
    bad = write(tmp_path / "t.yaml", SCENARIO.replace("periods: 4", "periods: four"))
    text = user_error(capsys, "solve", bad)
    assert "periods = 'four'" in text and "integer" in text


def test_missing_scenario(capsys):
    text = user_error(capsys, "solve", "no_such_scenario")
    assert "no_such_scenario" in text and "small_2adn" in text  # lists what is allowed


# --- data files -------------------------------------------------------------------------------------------------
def test_bad_placement_row_names_file_row_and_column(tmp_path, capsys):
    from coordinator.networks import default_placement_csv

    rows = default_placement_csv().read_text().splitlines()
    data = [k for k, r in enumerate(rows) if r.strip() and not r.startswith("#")]
    bad_row = data[3]  # the third data row after the header
    cells = rows[bad_row].split(",")
    cells[2] = "40"  # bus column
    rows[bad_row] = ",".join(cells)
    csv = write(tmp_path / "placement.csv", "\n".join(rows) + "\n")
    scenario = write(tmp_path / "s.yaml", SCENARIO + "placement_file: placement.csv\n")
    text = user_error(capsys, "solve", scenario)
    # a placement table fits any network, so the bus is checked against the ADN that uses it
    assert csv.exists() and "adns[0].placement" in text and "[40]" in text and "1..32" in text


def test_missing_placement_file(tmp_path, capsys):
    scenario = write(tmp_path / "s.yaml", SCENARIO + "placement_file: nowhere.csv\n")
    text = user_error(capsys, "solve", scenario)
    assert "placement_file = 'nowhere.csv'" in text and "not found" in text


# --- CLI arguments ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    (["--mip-gap", "nan"], "--mip-gap: must be a finite number, got 'nan'"),
    (["--mip-gap", "-0.1"], "--mip-gap: must be >= 0, got -0.1"),
    (["--time-limit", "inf"], "--time-limit: must be a finite number, got 'inf'"),
    (["--time-limit", "0"], "--time-limit: must be > 0, got 0"),
    (["--periods", "0"], "--periods: must be > 0, got 0"),
    (["--periods", "2.5"], "--periods: expected a whole number, got '2.5'"),
    (["--periods", "100000"], "--periods: must be <= 35136"),
    (["--start-hour", "nan"], "--start-hour: must be a finite number"),
])
def test_bad_solve_argument(tmp_path, capsys, args, expected):
    code, text = run_cli(capsys, "solve", "small_2adn", *args, "--output", tmp_path / "r.json")
    assert code == 2 and expected in text, text


@pytest.mark.parametrize(("args", "expected"), [
    (["--hours", "nan"], "--hours: must be a finite number"),
    (["--horizon", "inf"], "--horizon: must be a finite number"),
    (["--mip-gap", "nan"], "--mip-gap: must be a finite number"),
])
def test_bad_run_argument(tmp_path, capsys, args, expected):
    code, text = run_cli(capsys, "run", "small_2adn", *args, "--output", tmp_path / "r.h5")
    assert code == 2 and expected in text, text


def test_horizon_past_the_profile_year_is_refused(tmp_path, capsys):
    # small_2adn starts at hour 10 of day 196 (14 July 2016): 171 days minus 10 h, plus the hour of the DST change
    allowed = 171 * 24 - 10 + 1
    text = user_error(capsys, "solve", "small_2adn", "--periods", str(allowed + 1), "--output", tmp_path / "r.json")
    assert f"periods = {allowed + 1}" in text and f"at most {allowed} periods" in text and "profile year" in text


def test_run_past_the_profile_year_is_refused_before_any_output(tmp_path, capsys):
    out = tmp_path / "sub" / "r.h5"
    text = user_error(capsys, "run", "small_2adn", "--hours", "100000", "--output", out, "--no-progress")
    assert "--hours" in text and "100000" in text and "past" in text and "at most" in text
    assert not (tmp_path / "sub").exists()


def test_start_hour_out_of_range(tmp_path, capsys):
    text = user_error(capsys, "solve", "small_2adn", "--start-hour", "30", "--output", tmp_path / "r.json")
    assert "start_hour" in text and "30" in text


@pytest.mark.parametrize("args", [["--debug", "solve", "no_such_scenario"], ["solve", "no_such_scenario", "--debug"]])
def test_debug_shows_the_traceback_of_a_user_error(capsys, args):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ScenarioError" in err
    assert err.rstrip().splitlines()[-1].startswith("error: no_such_scenario")


def test_without_debug_a_user_error_is_one_line(capsys):
    assert main(["solve", "no_such_scenario"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: no_such_scenario: scenario not found")


def test_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--mip-gap", "nan"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "usage" not in err
    assert err.startswith("error: tsodso solve: argument --mip-gap") and "tsodso solve --help" in err


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch):
    import coordinator.session

    def broken(*_a, **_k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(coordinator.session.PlanningSession, "__init__", broken)
    with pytest.raises(RuntimeError, match="a bug"):  # propagates: the entry point prints it and exits 1
        main(["solve", *SMALL, "--output", "/nonexistent-folder-tsodso/r.json"])


# --- output paths -----------------------------------------------------------------------------------------------
@pytest.fixture
def no_solve(monkeypatch):
    """Fail the trial if a solve starts: output paths must be refused before any work."""
    import coordinator.session

    def refuse(*_a, **_k):
        raise AssertionError("the solve started before the output path was checked")

    monkeypatch.setattr(coordinator.session.PlanningSession, "__init__", refuse)


def test_output_is_a_directory(tmp_path, capsys, no_solve):
    text = user_error(capsys, "solve", *SMALL, "--output", tmp_path)
    assert f"--output {tmp_path}: is a directory" in text


def test_output_parent_is_a_file(tmp_path, capsys, no_solve):
    blocker = write(tmp_path / "file", "x")
    text = user_error(capsys, "solve", *SMALL, "--output", blocker / "sub" / "r.json")
    assert f"{blocker} is not a directory" in text


def test_output_folder_not_writable(tmp_path, capsys, no_solve):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode bits: use a folder nobody can create files in
            folder = Path("/proc")
        text = user_error(capsys, "solve", *SMALL, "--output", folder / "r.json")
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert f"--output {folder / 'r.json'}: cannot write in {folder}" in text


def test_existing_result_is_not_overwritten(tmp_path, capsys, no_solve):
    good = write(tmp_path / "r.json", '{"finished": true}')
    text = user_error(capsys, "solve", *SMALL, "--output", good)
    assert "file exists" in text and "--overwrite" in text
    assert good.read_text() == '{"finished": true}'


def test_bad_input_does_not_touch_an_existing_result(tmp_path, capsys):
    good = write(tmp_path / "r.json", '{"finished": true}')
    user_error(capsys, "solve", "no_such_scenario", "--output", good, "--overwrite")
    assert good.read_text() == '{"finished": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_overwrite_replaces_atomically(tmp_path, capsys):
    out = write(tmp_path / "r.json", "old")
    code, text = run_cli(capsys, "solve", *SMALL, "--output", out, "--overwrite")
    assert code == 0, text
    assert json.loads(out.read_text())["status"] in ("optimal", "feasible")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left behind
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # the mode a plain open() gives


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_solve_keeps_the_good_file_byte_identical(tmp_path, capsys):
    good = tmp_path / "r.json"
    code, text = run_cli(capsys, "solve", *SMALL, "--output", good)
    assert code == 0, text
    before = good.read_bytes()
    infeasible = write(tmp_path / "inf.yaml", INFEASIBLE_YAML)
    code, text = run_cli(capsys, "solve", infeasible, "--no-ac-check", "--output", good, "--overwrite")
    assert code == 1 and "infeasible" in text and "Traceback" not in text, text
    assert good.read_bytes() == before
    failed = tmp_path / "r.failed.json"
    assert f"{good} left unchanged" in text and str(failed) in text
    assert json.loads(failed.read_text())["status"] == "infeasible"


# --- solver limits and infeasible cases -------------------------------------------------------------------------
def test_infeasible_case_says_infeasible(tmp_path, capsys):
    """An ADN that can neither import nor cover its load: the model is infeasible, said as such (exit 1)."""
    infeasible = write(tmp_path / "inf.yaml", INFEASIBLE_YAML)
    out = tmp_path / "r.json"
    code, text = run_cli(capsys, "solve", infeasible, "--no-ac-check", "--output", out)
    assert code == 1 and "status infeasible" in text and "Traceback" not in text, text
    assert not out.exists() and (tmp_path / "r.failed.json").exists()


def test_infeasible_case_tso_led(tmp_path, capsys):
    infeasible = write(tmp_path / "inf.yaml", INFEASIBLE_YAML)
    code, text = run_cli(capsys, "solve", infeasible, "--scheme", "tso-led", "--no-ac-check",
                         "--output", tmp_path / "r.json")
    assert code == 1 and "infeasible" in text and "Traceback" not in text, text


def test_tiny_time_limit_reports_its_status(tmp_path, capsys):
    """A limit hit before (or after) the first incumbent: the status says which, and the exit code agrees."""
    out = tmp_path / "r.json"
    code, text = run_cli(capsys, "solve", *SMALL, "--time-limit", "1e-6", "--output", out)
    if out.exists():
        status = json.loads(out.read_text())["status"]
        assert code == 0 and status in ("optimal", "feasible"), text
    else:
        status = json.loads((tmp_path / "r.failed.json").read_text())["status"]
        assert code == 1 and status == "no_solution" and "status no_solution" in text, text
    assert "time limit" in text


# --- report inputs ----------------------------------------------------------------------------------------------
def _plan(plan_files) -> dict:
    return json.loads(plan_files["dso-led"].read_text())


def _damaged(tmp_path: Path, plan: dict, change) -> Path:
    change(plan)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(plan, allow_nan=True))
    return path


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p["adns"][1]["pcc_mw"].pop(), ["adns[1].pcc_mw", "has 3 values", "allowed: 4"]),
    (lambda p: p["adns"][0]["bess"][0]["soc_mwh"].pop(), ["adns[0].bess[0].soc_mwh", "has 3 values"]),
    (lambda p: p["tn"]["lmp"].update({"2": [1.0]}), ["tn.lmp.2", "has 1 values"]),
    (lambda p: p["adns"][0]["load_mw"].__setitem__(2, float("nan")), ["adns[0].load_mw[2]", "nan", "finite"]),
    (lambda p: p["adns"][0]["pv_used_mw"].__setitem__(0, "1.0"), ["adns[0].pv_used_mw[0]", "'1.0'", "finite"]),
    (lambda p: p["adns"][0].pop("v_max_pu"), ["adns[0].v_max_pu", "missing key"]),
    (lambda p: p.pop("tn"), ["tn", "missing key"]),
    (lambda p: p.update(periods="4"), ["periods", "must be an integer, not str"]),
    (lambda p: p.update(step_hours=0), ["step_hours", "> 0"]),
    (lambda p: p.update(adns=[]), ["adns", "is empty"]),
])
def test_damaged_plan_json(tmp_path, capsys, plan_files, change, expected):
    path = _damaged(tmp_path, _plan(plan_files), change)
    text = user_error(capsys, "report", path)
    assert str(path) in text and all(e in text for e in expected), text


@pytest.mark.parametrize(("content", "expected"), [
    ('{"adns": [', "not valid JSON"),
    ("[1, 2]", "top level is list"),
    ('{"status": "infeasible"}', "no solution"),
    ('{"hello": 1}', "missing key"),
])
def test_not_a_plan(tmp_path, capsys, content, expected):
    path = write(tmp_path / "x.json", content)
    text = user_error(capsys, "report", path)
    assert str(path) in text and expected in text, text


def test_report_missing_file_and_directory(tmp_path, capsys):
    assert "no such file" in user_error(capsys, "report", tmp_path / "none.json")
    assert "is a directory" in user_error(capsys, "report", tmp_path)
    assert "no such file" in user_error(capsys, "compare", tmp_path / "a.json", tmp_path / "b.json")


def test_hdf5_that_is_not_a_run(tmp_path, capsys):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.arange(3)
    text = user_error(capsys, "report", path)
    assert str(path) in text and "not a 'tsodso run' file" in text


def test_hdf5_with_a_short_series(tmp_path, capsys):
    path = tmp_path / "short.h5"
    with h5py.File(path, "w") as h5:
        h5["time"] = np.arange(3) * 3600
        h5["DSO/adn1/load_mw"] = np.ones(3)
        h5["DSO/adn1/pv_used_mw"] = np.ones(2)
    text = user_error(capsys, "report", path)
    assert "/DSO/adn1/pv_used_mw" in text and "has 2 rows" in text and "allowed: 3" in text


def test_text_file_named_h5(tmp_path, capsys):
    path = write(tmp_path / "fake.h5", "not hdf5")
    assert "not an HDF5 file" in user_error(capsys, "report", path)


def test_report_json_output_is_checked_first_and_not_overwritten(tmp_path, capsys, plan_files):
    kpis = write(tmp_path / "kpis.json", "keep")
    text = user_error(capsys, "report", tmp_path / "missing.json", "--json", kpis)
    assert "--json" in text and "file exists" in text  # refused before the (missing) input is even read
    code, text = run_cli(capsys, "report", plan_files["dso-led"], "--json", kpis, "--overwrite")
    assert code == 0, text
    assert "total" in json.loads(kpis.read_text())


def test_report_plots_must_be_a_folder(tmp_path, capsys, plan_files):
    blocker = write(tmp_path / "plots", "x")
    text = user_error(capsys, "report", plan_files["dso-led"], "--plots", blocker)
    assert f"--plots {blocker}: is a file" in text


# --- Ctrl-C -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["solve", "ieee30_5adn", "--no-ac-check"]])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, command):
    out = tmp_path / "r.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "scenarios.cli", *command, "--output", str(out)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = ""
    while "tsodso solve" not in started:  # the case is built and the solve starts: interrupt it
        line = proc.stderr.readline()
        assert line, "the command ended before it started solving"
        started += line
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --- packaging and structure ------------------------------------------------------------------------------------
def test_every_source_folder_is_a_package():
    for top in ("coordinator", "scenarios", "simulators"):
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__" or not any(folder.glob("*.py")):
                continue
            assert (folder / "__init__.py").is_file(), f"{folder} has modules but no __init__.py"


def test_package_data_is_shipped_and_found_by_importlib():
    from coordinator.networks import default_placement_csv, load_placements

    path = default_placement_csv()
    assert path.is_file() and path.parent.parent == ROOT / "coordinator"
    assert "adn1" in load_placements()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "data/*.csv" in cfg["options.package_data"]["coordinator"]
    packages = cfg["options.packages.find"]["include"].split()
    assert all(p.split(".")[0] in ("coordinator", "scenarios", "simulators") for p in packages), packages


def test_cli_modules_form_no_import_cycle():
    """``cli`` registers ``run_cli`` and ``report``; neither (nor ``cli_common``) imports ``scenarios.cli``."""
    for name in ("cli_common", "run_cli", "report", "results_io", "output_files"):
        tree = ast.parse((ROOT / "scenarios" / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "scenarios.cli" not in imported, name
