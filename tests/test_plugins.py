"""Plugin simulators from the scenario file: the EV fleet example as a subprocess, crashes, and clear errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from scenarios import cli
from scenarios.config import ScenarioError, load_scenario
from scenarios.examples.ev_fleet import Fleet
from scenarios.runner import RunFailed, RunSettings, run_scenario
from simulators.recorder import read_run

ROOT = Path(__file__).resolve().parent.parent
BASE = {
    "name": "plug",
    "tn": {"case": "case30", "load_profile": "G0-A"},
    "day_of_year": 196,
    "step": "1h",
    "periods": 2,
    "start_hour": 10,
    "adns": [{"name": "adn1", "tn_bus": 7, "placement": "adn1", "load_profile": "H0-A", "pv_profile": "PV3"}],
    "coordinator": {"horizon_hours": 2, "solver": "fast", "time_limit": 60},
}
EV_SIM = {"EV": {"python": "scenarios.examples.ev_fleet:EVFleetSim",
                 "params": {"step_seconds": "$step_seconds", "start_hour": "$start_hour"}}}
EV_PLUGIN = {"simulator": "EV", "model": "EVFleet", "name": "f1",
             "params": {"name": "f1", "buses": {5: 3}, "arrival_h": [9, 0.5], "departure_h": [17, 0.5]},
             "connect": [{"to": "DSO_adn1", "attrs": {"load_mw": "extra_load_mw"}}]}


def write(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({**BASE, **sections}))
    return path


def tsodso(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scenarios.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


# --- the example's model -------------------------------------------------------------------------------------------
def test_ev_fleet_charges_within_limits_and_conserves_energy() -> None:
    fleet = Fleet({3: 4, 7: 2}, charger_mw=0.011, energy=(20.0, 5.0), arrival=(10.0, 1.0), departure=(15.0, 1.0),
                  seed=3)
    fleet.start(8.0)
    need = sum(s.need_mwh for s in fleet.sessions)
    delivered = 0.0
    for h in np.arange(8.0, 23.5, 0.25):  # one day: every session has left by 23:30, none of the next day drawn
        load = fleet.power(h, h + 0.25)
        assert load[3] <= 4 * 0.011 + 1e-12 and load[7] <= 2 * 0.011 + 1e-12  # charger power limits
        delivered += sum(load.values()) * 0.25
    assert delivered == pytest.approx(fleet.energy_mwh)
    assert delivered + fleet.unmet_mwh == pytest.approx(need)  # every need is either delivered or unmet
    assert delivered > 0.05 and not fleet.sessions


# --- subprocess plugin end to end ----------------------------------------------------------------------------------
def test_ev_fleet_as_subprocess_plugin(tmp_path) -> None:
    out = tmp_path / "ev.h5"
    proc = tsodso("run", "small_2adn_ev", "--hours", "2", "--horizon", "2", "--output", str(out), "--no-progress",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tsodso run" in proc.stdout and f"results: {out}" in proc.stdout
    data = read_run(out)
    assert list(data["/time"]) == [0, 3600]
    ev = data["/EVFleet/adn1/total_mw"]
    assert np.all(ev > 0)
    assert np.allclose(data["/DSO/adn1/extra_load_mw_total"], ev)
    assert np.allclose(data["/EVFleet/adn1/load_mw/24"] >= 0, True)
    # the EV load is in the forecast the coordinator planned with: the AC PCC still matches the plan
    ac, plan = data["/ADNGrid/adn1/pcc_p_mw"], data["/ADNPlan/adn1/pcc_mw"]
    assert np.all(np.abs(ac - plan) <= 0.05 + 0.05 * np.abs(plan))


CRASHY = textwrap.dedent('''
    import mosaik_api_v3

    META = {"api_version": "3.0", "type": "time-based",
            "models": {"Crashy": {"public": True, "params": [], "attrs": ["load_mw"]}}}


    class Crashy(mosaik_api_v3.Simulator):
        def __init__(self):
            super().__init__(META)

        def create(self, num, model):
            return [{"eid": "Crashy_x", "type": model}]

        def step(self, time, inputs, max_advance):
            if time >= 3600:
                raise RuntimeError("boom: the plugin crashed on purpose")
            return time + 3600

        def get_data(self, outputs):
            return {"Crashy_x": {"load_mw": {"5": 0.1}}}


    if __name__ == "__main__":
        mosaik_api_v3.start_simulation(Crashy())
''')


def test_crashing_plugin_fails_the_run_and_keeps_the_steps_before(tmp_path) -> None:
    (tmp_path / "crashy.py").write_text(CRASHY)
    scenario = write(tmp_path, simulators={"Crash": {"cmd": "%(python)s crashy.py %(addr)s"}},
                     plugins=[{"simulator": "Crash", "model": "Crashy",
                               "connect": [{"to": "DSO_adn1", "attrs": {"load_mw": "extra_load_mw"}}]}])
    out = tmp_path / "crash.h5"
    proc = tsodso("run", str(scenario), "--hours", "3", "--output", str(out), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "run failed" in proc.stderr and "boom: the plugin crashed on purpose" in proc.stderr
    assert not out.exists()  # a failed run never takes the finished name
    data = read_run(tmp_path / "crash.h5.partial")  # readable, with the step before the crash
    assert list(data["/time"]) == [0]
    assert data["/DSO/adn1/extra_load_mw_total"][0] == pytest.approx(0.1)


def test_crash_in_library_call_raises_run_failed(tmp_path) -> None:
    (tmp_path / "crashy.py").write_text(CRASHY)
    scenario = write(tmp_path, simulators={"Crash": {"cmd": "%(python)s crashy.py %(addr)s", "cwd": str(tmp_path)}},
                     plugins=[{"simulator": "Crash", "model": "Crashy"}])
    with pytest.raises(RunFailed, match="Crash-0 aborted"):
        run_scenario(load_scenario(scenario), RunSettings(hours=2, output=tmp_path / "c.h5"))


# --- clear errors ----------------------------------------------------------------------------------------------------
def errors(tmp_path: Path, **sections) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        run_scenario(load_scenario(write(tmp_path, **sections)), RunSettings(output=tmp_path / "e.h5"))
    return info.value


def test_unknown_simulator(tmp_path) -> None:
    err = errors(tmp_path, simulators=EV_SIM, plugins=[{**EV_PLUGIN, "simulator": "EVs"}])
    assert err.path == "plugins[0].simulator" and "unknown simulator" in str(err) and "EV" in str(err)


def test_unknown_plugin_output_attribute(tmp_path) -> None:
    plugin = {**EV_PLUGIN, "connect": [{"to": "DSO_adn1", "attrs": {"load_kw": "extra_load_mw"}}]}
    err = errors(tmp_path, simulators=EV_SIM, plugins=[plugin])
    assert err.path == "plugins[0].connect[0].attrs" and err.value == "load_kw"
    assert "not an output attribute of EVFleet_f1" in str(err) and "load_mw" in str(err)


def test_unknown_target_attribute_and_loop_attributes(tmp_path) -> None:
    plugin = {**EV_PLUGIN, "connect": [{"to": "DSO_adn1", "attrs": {"load_mw": "extra_load"}}]}
    err = errors(tmp_path, simulators=EV_SIM, plugins=[plugin])
    assert err.value == "extra_load" and "not an input attribute of DSO_adn1" in str(err)
    assert "extra_load_mw" in str(err)
    plugin = {**EV_PLUGIN, "connect": [{"to": "DSO_adn1", "attrs": {"load_mw": "setpoint"}}]}
    err = errors(tmp_path, simulators=EV_SIM, plugins=[plugin])
    assert "coordinator loop" in str(err)


def test_unknown_model_entity_and_module(tmp_path) -> None:
    err = errors(tmp_path, simulators=EV_SIM, plugins=[{**EV_PLUGIN, "model": "EVFlet"}])
    assert err.path == "plugins[0].model" and "EVFleet" in str(err)
    plugin = {**EV_PLUGIN, "connect": [{"to": "DSO_adn9", "attrs": ["load_mw"]}]}
    err = errors(tmp_path, simulators=EV_SIM, plugins=[plugin])
    assert err.path == "plugins[0].connect[0].to" and "DSO_adn1" in str(err)
    err = errors(tmp_path, simulators={"EV": {"python": "scenarios.examples.no_such_module:X"}}, plugins=[EV_PLUGIN])
    assert err.path == "simulators.EV.python" and "cannot import" in str(err)
    err = errors(tmp_path, simulators={"EV": {"python": "x:Y", "cmd": "z"}})
    assert err.path == "simulators.EV" and "exactly one" in str(err)
    err = errors(tmp_path, coordinator={"horizon": 3})
    assert err.path == "coordinator.horizon" and "horizon_hours" in str(err)


def test_bad_scenario_on_the_command_line(tmp_path, capsys) -> None:
    def err() -> str:
        return " ".join(capsys.readouterr().err.split())  # rich wraps long lines

    assert cli.main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "scenario not found" in err()
    bad = write(tmp_path, plugins=[{**EV_PLUGIN, "simulator": "Nope"}])
    assert cli.main(["run", str(bad), "--no-progress"]) == 2
    text = err()
    assert "plugins[0].simulator" in text and "unknown simulator" in text
    bad.write_text("name: x\nadns: [\n")
    assert cli.main(["run", str(bad)]) == 2
    assert "not valid YAML" in err()


def test_in_process_plugin_runs(tmp_path) -> None:
    res = run_scenario(load_scenario(write(tmp_path, simulators=EV_SIM, plugins=[EV_PLUGIN])),
                       RunSettings(hours=1, horizon_hours=1, output=tmp_path / "p.h5"))
    data = read_run(res.path)
    assert data["/EVFleet/f1/load_mw/5"][0] > 0  # recorded by default: the connected attribute
    assert data["/DSO/adn1/extra_load_mw_total"][0] == pytest.approx(data["/EVFleet/f1/load_mw/5"][0])
