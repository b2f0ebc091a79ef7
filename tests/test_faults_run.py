"""Faults of ``tsodso run``: bad input never touches results, signals / write errors / stuck plugins end a run
cleanly with every completed step readable, non-physical data is refused, a killed run resumes to the same file."""

from __future__ import annotations

import errno
import hashlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from test_plugins import BASE as PLUGIN_BASE

from coordinator.case import Bess
from scenarios.cli import main
from scenarios.config import ScenarioError, build_case, load_scenario
from scenarios.runner import RunSettings, resolve
from simulators.recorder import ROWS_COMPLETE, RunFile, read_run

ROOT = Path(__file__).resolve().parent.parent
CLI = "import sys; from scenarios.cli import main; sys.exit(main(sys.argv[1:]))"
SHORT = ["--hours", "2", "--horizon", "2", "--no-progress"]
BASE = {**PLUGIN_BASE, "name": "faults"}  # the small one-ADN scenario of the plugin tests
# a plugin that behaves for its first step, then misbehaves (NaN load, or a step that never returns)
PLUGIN = textwrap.dedent(
    """
    import time
    import mosaik_api_v3
    META = {"api_version": "3.0", "type": "time-based",
            "models": {"Bad": {"public": True, "params": [], "attrs": ["load_mw"]}}}
    class BadSim(mosaik_api_v3.Simulator):
        def __init__(self):
            super().__init__(META)
        def init(self, sid, time_resolution=1.0, mode="nan"):
            self.mode, self.time = mode, 0
            return self.meta
        def create(self, num, model):
            return [{"eid": "Bad_b", "type": model}]
        def step(self, time, inputs, max_advance):
            self.time = time
            if time > 0 and self.mode == "block":
                while True:
                    __import__("time").sleep(60)
            return time + 3600
        def get_data(self, outputs):
            value = float("nan") if self.time > 0 and self.mode == "nan" else 0.01
            return {"Bad_b": {"load_mw": {"5": value}}}
    if __name__ == "__main__":
        mosaik_api_v3.start_simulation(BadSim())
    """
)


def scenario(tmp_path: Path, name: str = "s.yaml", **sections) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**BASE, **sections}))
    return path


def with_plugin(tmp_path: Path, mode: str, kind: str, **sim) -> Path:
    (tmp_path / "badsim.py").write_text(PLUGIN)
    entry = {"python": "badsim:BadSim"} if kind == "python" else {"cmd": "%(python)s badsim.py %(addr)s",
                                                                   "cwd": str(tmp_path)}
    return scenario(tmp_path, simulators={"Bad": {**entry, "params": {"mode": mode}, **sim}},
                    plugins=[{"simulator": "Bad", "model": "Bad", "name": "b",
                              "connect": [{"to": "DSO_adn1", "attrs": {"load_mw": "extra_load_mw"}}]}])


def said(capsys) -> str:
    """Everything the command printed (the console writes to stderr), as one line."""
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.fixture(autouse=True)
def wide_console(monkeypatch) -> None:
    """No line wrapping in messages (paths stay whole): the in-process console and the subprocesses'."""
    from scenarios import cli

    monkeypatch.setattr(cli.console, "width", 1000)
    monkeypatch.setenv("COLUMNS", "1000")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path) -> int:
    with h5py.File(path, "r", locking=False) as h5:
        return int(h5.attrs.get(ROWS_COMPLETE, 0))


def wait_rows(path: Path, n: int, proc: subprocess.Popen) -> None:
    """Poll the growing partial file until ``n`` steps are complete (the run must still be going)."""
    while True:
        assert proc.poll() is None, "the run ended before it could be stopped"
        try:
            if rows(path) >= n:
                return
        except (OSError, KeyError):
            pass
        time.sleep(0.05)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# --- validate first, never lose a result -----------------------------------------------------------------------------
def test_bad_input_leaves_an_existing_result_byte_identical(tmp_path, run_file, capsys) -> None:
    out = tmp_path / "r.h5"
    out.write_bytes(run_file.read_bytes())
    before = digest(out)
    bad_connect = scenario(tmp_path, simulators={"EV": {"python": "scenarios.examples.ev_fleet:EVFleetSim"}},
                           plugins=[{"simulator": "EV", "model": "EVFleet", "name": "f",
                                     "params": {"name": "f", "buses": {5: 1}},
                                     "connect": [{"to": "DSO_nowhere", "attrs": {"load_mw": "extra_load_mw"}}]}])
    # the unknown entity is only found while the world is wired, after the recorder entity exists
    assert main(["run", str(bad_connect), "--output", str(out), "--overwrite", *SHORT]) == 2
    assert "plugins[0].connect[0].to" in said(capsys)
    assert main(["run", "small_2adn", "--hours", "1.5", "--output", str(out), "--overwrite", "--no-progress"]) == 2
    assert digest(out) == before
    assert not Path(str(out) + ".partial").exists()  # nothing was opened


def test_existing_result_is_refused_without_overwrite(tmp_path, run_file, capsys) -> None:
    out = tmp_path / "r.h5"
    out.write_bytes(run_file.read_bytes())
    before = digest(out)
    assert main(["run", "small_2adn", "--output", str(out), *SHORT]) == 2
    message = said(capsys)
    assert str(out) in message and "--overwrite" in message
    assert digest(out) == before
    partial = Path(str(out) + ".partial")
    partial.write_bytes(b"an earlier run's steps")
    assert main(["run", "small_2adn", "--output", str(tmp_path / "other.h5"), *SHORT]) == 0  # another target: fine
    out.unlink()
    assert main(["run", "small_2adn", "--output", str(out), *SHORT]) == 2  # a partial file is a result too
    assert "--resume" in said(capsys)


def test_overwrite_replaces_at_the_end(tmp_path) -> None:
    out = tmp_path / "r.h5"
    out.write_bytes(b"old")
    assert main(["run", "small_2adn", "--output", str(out), "--overwrite", "--hours", "1", "--horizon", "1",
                 "--no-progress"]) == 0
    assert list(read_run(out)["/time"]) == [0] and not Path(str(out) + ".partial").exists()


# --- signals -------------------------------------------------------------------------------------------------------
def stopped_by(sig: signal.Signals, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "sig.h5"
    proc = start("run", "small_2adn", "--hours", "24", "--horizon", "2", "--output", str(out), "--no-progress",
                 cwd=tmp_path)
    partial = Path(str(out) + ".partial")
    wait_rows(partial, 1, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), partial


def check_stopped(result: subprocess.CompletedProcess, partial: Path, name: str, code: int) -> None:
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-3000:]
    text = " ".join((result.stdout + result.stderr).split())
    assert f"interrupted by {name}" in text and str(partial) in text
    # no traceback of ours (Python may report a signal that landed in a __del__ as "Exception ignored")
    assert "Traceback" not in result.stderr or "Exception ignored" in result.stderr, result.stderr[-3000:]
    data = read_run(partial)  # closed and readable
    n = len(data["/time"])
    assert 1 <= n < 24 and rows(partial) == n
    assert all(v.shape[0] == n for k, v in data.items() if k != "/time")
    assert np.all(np.isfinite(data["/DSO/adn1/soc_mwh"]))
    assert not partial.with_name("sig.h5").exists()  # never renamed to the finished name


def test_sigterm_ends_the_run_with_every_completed_step(tmp_path) -> None:
    result, partial = stopped_by(signal.SIGTERM, tmp_path)
    check_stopped(result, partial, "SIGTERM", 143)


def test_sigint_ends_the_run_with_every_completed_step(tmp_path) -> None:
    result, partial = stopped_by(signal.SIGINT, tmp_path)
    check_stopped(result, partial, "SIGINT", 130)


# --- write errors ----------------------------------------------------------------------------------------------------
def test_write_error_ends_the_run_and_keeps_the_steps_before(tmp_path, monkeypatch, capsys) -> None:
    """The disk fills while step 2 is flushed (injected: a real full disk is not available in a test)."""
    real_sync = RunFile._sync

    def sync(self) -> None:
        if self.rows >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_sync(self)

    monkeypatch.setattr(RunFile, "_sync", sync)
    out = tmp_path / "full.h5"
    assert main(["run", "small_2adn", "--output", str(out), "--hours", "3", "--horizon", "2", "--no-progress"]) == 1
    text = said(capsys)
    partial = Path(str(out) + ".partial")
    assert f"cannot write results to {partial}: No space left on device" in text
    data = read_run(partial)
    assert list(data["/time"]) == [0]
    assert all(v.shape[0] == 1 for v in data.values())
    with h5py.File(partial, "r") as h5:  # rolled back on disk too, not only hidden by rows_complete
        assert h5["time"].shape == (1,) and h5["DSO/adn1/soc_mwh"].shape[0] == 1
    assert not out.exists()


# --- plugins: stuck steps, non-finite values -----------------------------------------------------------------------
def test_blocking_plugin_ends_the_run_past_its_step_limit(tmp_path, capsys) -> None:
    path = with_plugin(tmp_path, "block", "cmd", step_timeout_s=2)
    out = tmp_path / "b.h5"
    assert main(["run", str(path), "--output", str(out), "--no-progress"]) == 1
    text = said(capsys)
    assert "simulator Bad-0 exceeded its wall-clock limit of 2 s per step" in text
    data = read_run(Path(str(out) + ".partial"))
    assert list(data["/time"]) == [0]


def test_step_timeout_must_be_positive(tmp_path, capsys) -> None:
    assert main(["run", str(with_plugin(tmp_path, "nan", "python", step_timeout_s=0)), *SHORT]) == 2
    assert "simulators.Bad.step_timeout_s = 0" in said(capsys)
    path = scenario(tmp_path, coordinator={**BASE["coordinator"], "step_timeout_s": -1})
    assert main(["run", str(path), *SHORT]) == 2
    assert "coordinator.step_timeout_s = -1" in said(capsys)
    plan = resolve(load_scenario(str(scenario(tmp_path, "t.yaml"))), RunSettings())
    assert plan.coordinator_timeout_s == 600 + 2 * 60  # the documented default: 2 x time_limit + 600 s


def test_nan_from_a_plugin_stops_the_run_naming_plugin_and_attribute(tmp_path, capsys) -> None:
    out = tmp_path / "n.h5"
    assert main(["run", str(with_plugin(tmp_path, "nan", "python")), "--output", str(out), "--no-progress"]) == 1
    text = said(capsys)
    assert "Bad-0.Bad_b" in text and "extra_load_mw" in text and "nan" in text
    assert list(read_run(Path(str(out) + ".partial"))["/time"]) == [0]


# --- physical sanity -----------------------------------------------------------------------------------------------
def placement(tmp_path: Path, bess_row: str, pv_mw: str = "0.802") -> Path:
    csv = tmp_path / "placement.csv"
    csv.write_text("adn,kind,bus,p_mw,e_mwh,eta,soc_min,soc_max,soc0\n"
                   f"adn1,pv,6,{pv_mw},,,,,\nadn1,pv,9,0.7,,,,,\n{bess_row}\n")
    return scenario(tmp_path, placement_file=str(csv))


@pytest.mark.parametrize(("bess_row", "pv_mw", "expected"), [
    ("adn1,bess,6,0.3,1.2,1.2,0.1,0.9,0.5", "0.802", "adn1.bess[0].eta_c = 1.2: not physical; allowed: (0, 1]"),
    ("adn1,bess,6,0.3,1.2,0.95,0.1,0.9,0.5", "nan", "adn1.pv[0].peak_mw (bus 6) = nan"),
    ("adn1,bess,6,-0.3,1.2,0.95,0.1,0.9,0.5", "0.802", "adn1.bess[0].pmax = -0.3"),
    ("adn1,bess,6,0.3,1.2,0.95,0.9,0.1,0.5", "0.802", "need 0 <= soc_min <= soc0 <= soc_max <= 1"),
])
def test_non_physical_placement_is_a_user_error(tmp_path, capsys, bess_row, pv_mw, expected) -> None:
    out = tmp_path / "r.h5"
    out.write_bytes(b"keep me")
    assert main(["run", str(placement(tmp_path, bess_row, pv_mw)), "--output", str(out), "--overwrite", *SHORT]) == 2
    text = said(capsys)
    assert expected in text and "placement" in text
    assert out.read_bytes() == b"keep me"


def test_case_validate_physical_bounds() -> None:
    cfg = load_scenario("small_2adn")
    case = build_case(cfg, periods=2)
    case.validate()  # the shipped data is physical
    adn = case.adns[0]
    good = adn.bess[0]
    for bess, message in [
        (Bess(good.bus, 0.3, 1.0, 0.5, 0.2, 0.95, 0.95), r"\(emin, e0, emax\) = \(0.5, 0.2, 1.0\).*emin <= e0 <= emax"),
        (Bess(good.bus, 0.3, 1.0, 0.1, 0.5, 0.95, 0.0), r"bess\[0\].eta_d = 0.0.*\(0, 1\]"),
        (Bess(good.bus, 0.3, float("inf"), 0.1, 0.5), r"bess\[0\].emax = inf"),
    ]:
        adn.bess[0] = bess
        with pytest.raises(ValueError, match=message):
            case.validate()
    adn.bess[0] = good
    adn.vmin, adn.vmax = 1.05, 1.0
    with pytest.raises(ValueError, match=r"\(vmin, vmax\) = \(1.05, 1.0\).*vmin <= vmax"):
        case.validate()
    adn.vmin, adn.vmax = 0.9, 1.1
    adn.load_p[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"adn1.load_p\[1, 3\] = nan"):
        case.validate()


# --- long runs -----------------------------------------------------------------------------------------------------
def test_days_and_the_end_of_the_profile_year(tmp_path, capsys) -> None:
    cfg = load_scenario("small_2adn")
    assert resolve(cfg, RunSettings(days=2)).steps == 48
    assert resolve(cfg, RunSettings(days=2, step="15min")).steps == 192
    with pytest.raises(ScenarioError, match="give either --days or --hours"):
        resolve(cfg, RunSettings(days=2, hours=3))
    assert main(["run", "small_2adn", "--days", "200", "--no-progress"]) == 2
    assert "past their last day (366)" in said(capsys)
    # a run case over two days: day 2 carries the next calendar day's PV (the PV normaliser is the year's peak)
    two = build_case(cfg, periods=48, start_hour=0.0)
    nxt = build_case(cfg.__class__(**{**cfg.__dict__, "day_of_year": cfg.day_of_year + 1}), periods=24,
                     start_hour=0.0)
    np.testing.assert_allclose(two.adns[0].pv_avail[24:], nxt.adns[0].pv_avail, rtol=0, atol=1e-12)
    assert not np.allclose(two.adns[0].pv_avail[:24], nxt.adns[0].pv_avail)


# these datasets measure time or depend on the power flow's starting point, so they are compared separately
TIMING = ("solve_time_s", "solver_time_s", "model_time_s", "case_time_s", "post_time_s", "step_time_s", "pf_seconds")
# measures of the solver's accuracy (cone slack, follower cost gap, AC error): noise at 1e-6, not results
ACCURACY = ("soc_gap_max", "soc_gap_first_period", "follower_cost_rel_gap", "ac_voltage_error_max_pu")
AC_FLOW = ("/ADNGrid/", "/TNGrid/")  # the first resumed power flow starts flat, not from the previous solution


def test_resume_after_sigkill_gives_the_same_datasets(tmp_path) -> None:
    args = ["run", "small_2adn", "--hours", "4", "--horizon", "2", "--no-progress"]
    full = tmp_path / "full.h5"
    assert subprocess.run([sys.executable, "-c", CLI, *args, "--output", str(full)], cwd=tmp_path,
                          capture_output=True).returncode == 0
    out = tmp_path / "killed.h5"
    partial = Path(str(out) + ".partial")
    proc = start(*args, "--output", str(out), cwd=tmp_path)
    wait_rows(partial, 2, proc)
    proc.kill()
    proc.communicate()
    killed_at = rows(partial)
    assert 2 <= killed_at < 4
    resumed = subprocess.run([sys.executable, "-c", CLI, "run", "--resume", str(partial), "--no-progress"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resuming at step" in resumed.stdout + resumed.stderr and not partial.exists()
    a, b = read_run(full), read_run(out)
    assert sorted(a) == sorted(b)
    compared = 0
    for key in sorted(a):
        assert a[key].shape == b[key].shape, key
        if key.rsplit("/", 1)[-1] in TIMING + ACCURACY:
            continue
        if a[key].dtype.kind in "OUS":
            assert list(a[key]) == list(b[key]), key
        else:
            # the resumed run builds its model from the step it resumes at (the purchase big-M is sized on that
            # horizon's peaks), so the interior-point solutions agree to the solver's tolerance (1e-8), not bit by bit
            atol = 1e-6 if key.startswith(AC_FLOW) else 1e-7
            np.testing.assert_allclose(b[key], a[key], rtol=1e-7, atol=atol, equal_nan=True, err_msg=key)
        compared += 1
    assert compared > 100
    with h5py.File(out, "r") as h5:
        assert [r["at_step"] for r in json.loads(h5.attrs["resumed"])] == [killed_at]
        assert h5.attrs[ROWS_COMPLETE] == 4


def test_resume_refuses_what_it_cannot_restore(tmp_path, capsys) -> None:
    assert main(["run", "--resume", str(tmp_path / "none.h5"), "--no-progress"]) == 2
    assert "no partial run file found" in said(capsys)
    assert main(["run", "--resume", str(tmp_path / "none.h5"), "--hours", "3", "--no-progress"]) == 2
    assert "--hours cannot be given" in said(capsys)


def test_a_run_where_every_step_falls_back_is_not_a_success(tmp_path, monkeypatch, capsys) -> None:
    from simulators import coordinator_sim

    def broken(self, case):
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(coordinator_sim.SessionPlanner, "plan", broken)
    out = tmp_path / "fb.h5"
    assert main(["run", "small_2adn", "--output", str(out), *SHORT]) == 1
    assert "every one of the 2 steps fell back" in said(capsys)
    assert list(read_run(out)["/Coordinator/hub/fallback"]) == [2, 2]  # finished: the file has its final name


def test_a_coordinator_step_past_its_limit_ends_the_run(tmp_path) -> None:
    from scenarios.run_guard import RunStopped
    from scenarios.runner import run_scenario

    class Stuck:
        def plan(self, case):
            time.sleep(120)  # model building that never ends, as far as the run can tell

    path = scenario(tmp_path, coordinator={**BASE["coordinator"], "step_timeout_s": 1})
    out = tmp_path / "c.h5"
    t0 = time.monotonic()
    with pytest.raises(RunStopped, match="simulator Coordinator-0 exceeded its wall-clock limit of 1 s") as stop:
        run_scenario(load_scenario(str(path)), RunSettings(planner=Stuck(), output=out))
    assert time.monotonic() - t0 < 100  # ended by the limit, not by the sleep
    assert stop.value.exit_code == 1 and "no step was completed" in stop.value.message
    assert not out.exists()
