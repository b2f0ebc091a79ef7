"""Tests for simulators.recorder: layout, alignment, value kinds, crash safety, and real mosaik runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import h5py
import mosaik
import mosaik_api_v3
import numpy as np
import pytest

from simulators.recorder import RunFile, entity_path, read_attrs, read_run

REPO = Path(__file__).resolve().parents[1]

SOURCE_META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Meter": {
            "public": True,
            "params": ["name"],
            "attrs": ["p", "vec", "gens", "status", "odd", "nothing"],
            "persistent": ["p", "vec", "gens", "status", "nothing"],
            "non-persistent": ["odd"],
        },
    },
}


class Source(mosaik_api_v3.Simulator):
    """Emits every value kind the recorder handles; ``crash_at`` raises, ``exit_at`` kills the process hard."""

    def __init__(self) -> None:
        super().__init__(SOURCE_META)
        self.names: list[str] = []
        self.time = 0

    def init(self, sid, time_resolution=1.0, crash_at=None, exit_at=None):
        self.crash_at, self.exit_at = crash_at, exit_at
        return self.meta

    def create(self, num, model, name="m"):
        self.names.append(name)
        return [{"eid": f"Meter_{name}", "type": model}]

    def step(self, time, inputs, max_advance):
        if time == self.crash_at:
            raise RuntimeError(f"test crash at t={time}")
        if time == self.exit_at:
            import os

            os._exit(3)
        self.time = time
        return time + 1

    def get_data(self, outputs):
        t = float(self.time)
        data = {}
        for eid, attrs in outputs.items():
            values = {
                "p": t,
                "vec": [t, 2 * t, 3 * t],
                "gens": {"gen0": t, "gen1": -t},
                "status": "optimal" if self.time % 2 == 0 else "infeasible",
                "nothing": None,
            }
            if self.time % 2 == 1:
                values["odd"] = t
            data[eid] = {a: values[a] for a in attrs if a in values}
        return data


SIM_CONFIG = {
    "Source": {"python": f"{__name__}:Source"},
    "Recorder": {"python": "simulators.recorder:Recorder"},
}

ATTRS = ["p", "vec", "gens", "status", "odd", "nothing"]


def run_world(path: Path, until: int, crash_at: int | None = None, names: tuple[str, ...] = ("m1",)) -> None:
    with mosaik.World(SIM_CONFIG, skip_greetings=True, configure_logging=False) as world:
        src = world.start("Source", crash_at=crash_at)
        rec = world.start("Recorder").Recorder(path=str(path), attrs={"scenario": {"adns": 5}, "seed": 7})
        for name in names:
            world.connect(src.Meter(name=name), rec, *ATTRS)
        world.run(until=until, print_progress=False)


def test_entity_path() -> None:
    assert entity_path("Sim-0.Type_x") == ("Type", "x")
    assert entity_path("DSO-0.DSO_adn_1") == ("DSO", "adn_1")
    assert entity_path("Input-0.Constant-0") == ("Constant", "0")
    assert entity_path("Grid.net") == ("net", "Grid")
    assert entity_path("S.a/b_c") == ("a_b", "c")


def test_mosaik_run_layout_and_values(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    run_world(path, until=5, names=("m1", "m2"))
    data = read_run(str(path))
    t = np.arange(5.0)
    np.testing.assert_array_equal(data["/time"], np.arange(5))
    assert data["/time"].dtype == np.int64
    for name in ("m1", "m2"):
        np.testing.assert_array_equal(data[f"/Meter/{name}/p"], t)
        np.testing.assert_array_equal(data[f"/Meter/{name}/vec"], np.outer(t, [1, 2, 3]))
        np.testing.assert_array_equal(data[f"/Meter/{name}/gens/gen0"], t)
        np.testing.assert_array_equal(data[f"/Meter/{name}/gens/gen1"], -t)
        assert list(data[f"/Meter/{name}/status"]) == ["optimal", "infeasible"] * 2 + ["optimal"]
        np.testing.assert_array_equal(data[f"/Meter/{name}/odd"], [np.nan, 1, np.nan, 3, np.nan])
        assert f"/Meter/{name}/nothing" not in data  # None never creates a dataset
    attrs = read_attrs(str(path))
    assert json.loads(attrs["scenario"]) == {"adns": 5}
    assert attrs["seed"] == 7
    assert attrs["version_mosaik"] == version("mosaik")
    for pkg in ("numpy", "h5py", "pandapower", "python"):
        assert attrs[f"version_{pkg}"]
    assert read_attrs(str(path), "/time")["time_resolution_s"] == 1.0
    assert read_attrs(str(path), "/Meter/m1")["full_id"] == "Source-0.Meter_m1"


def test_crash_in_process_keeps_steps_before(tmp_path: Path) -> None:
    path = tmp_path / "crash.h5"
    with pytest.raises(Exception, match="test crash at t=3"):
        run_world(path, until=10, crash_at=3)
    data = read_run(str(path))
    np.testing.assert_array_equal(data["/time"], [0, 1, 2])
    np.testing.assert_array_equal(data["/Meter/m1/p"], [0.0, 1.0, 2.0])


def test_hard_crash_without_close_keeps_steps_before(tmp_path: Path) -> None:
    """The process dies (os._exit) at t=3 without finalize: flushed steps must still be readable."""
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(
        f"""
        import mosaik
        from tests.test_recorder import SIM_CONFIG, ATTRS
        with mosaik.World(SIM_CONFIG, skip_greetings=True, configure_logging=False) as world:
            src = world.start("Source", exit_at=3)
            rec = world.start("Recorder").Recorder(path={str(path)!r})
            world.connect(src.Meter(name="m1"), rec, *ATTRS)
            world.run(until=10, print_progress=False)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    data = read_run(str(path))
    np.testing.assert_array_equal(data["/time"], [0, 1, 2])
    np.testing.assert_array_equal(data["/Meter/m1/vec"][2], [2.0, 4.0, 6.0])
    assert list(data["/Meter/m1/status"]) == ["optimal", "infeasible", "optimal"]


def test_basic_input_simulator(tmp_path: Path) -> None:
    path = tmp_path / "basic.h5"
    config = {
        "Input": {"python": "mosaik.basic_simulators:InputSimulator"},
        "Recorder": {"python": "simulators.recorder:Recorder"},
    }
    with mosaik.World(config, skip_greetings=True, configure_logging=False, time_resolution=900.0) as world:
        inp = world.start("Input", step_size=2)
        fn = inp.Function(function=lambda t: t * 0.5)
        rec = world.start("Recorder").Recorder(path=str(path), start="2016-07-24T00:00:00", step_seconds=3600)
        world.connect(fn, rec, "value")
        world.run(until=7, print_progress=False)
    data = read_run(str(path))
    np.testing.assert_array_equal(data["/time"], [0, 2, 4, 6])
    np.testing.assert_array_equal(data["/Function/0/value"], [0.0, 1.0, 2.0, 3.0])
    time_attrs = read_attrs(str(path), "/time")
    assert time_attrs == {"time_resolution_s": 900.0, "step_seconds": 3600.0, "start": "2016-07-24T00:00:00"}


def test_runfile_alignment_and_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "unit.h5"
    run = RunFile(str(path), {"config": {"a": [1, 2]}, "note": "x"})
    run.write(0, "S-0.A_x", "v", 1.0)
    run.write(0, "S-0.A_x", "v", 1.5)  # same-time re-step overwrites the same row
    run.write(5, "S-0.A_x", "v", 2.0)
    run.write(5, "S-0.A_x", "late", [1.0, 2.0])  # created lazily at row 1: row 0 is NaN
    run.write(7, "S-0.A_x", "late", [3.0, 4.0, 5.0])  # wider than first sight: cut, warned
    run.write(7, "T-0.A_x", "v", 9.0)  # same (type, name) from another simulator: kept apart
    run.write(7, "S-0.A_x", "flag", True)
    run.write(7, "S-0.A_x", "v", "text")  # kind change: dropped, warned, not fatal
    run.write(7, "S-0.A_x", "mixed", ["a", 1])  # not numeric: stored as JSON text
    with pytest.raises(ValueError, match="before the last recorded time"):
        run.write(6, "S-0.A_x", "v", 0.0)
    run.flush()
    data = read_run(str(path))  # readable while still open for writing
    assert run.rows == 3
    np.testing.assert_array_equal(data["/time"], [0, 5, 7])
    np.testing.assert_array_equal(data["/A/x/v"], [1.5, 2.0, np.nan])
    np.testing.assert_array_equal(data["/A/x/late"], [[np.nan, np.nan], [1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(data["/A/x@T-0/v"], [np.nan, np.nan, 9.0])
    np.testing.assert_array_equal(data["/A/x/flag"], [np.nan, np.nan, 1.0])
    assert json.loads(data["/A/x/mixed"][2]) == ["a", 1]
    assert all(len(v) == 3 for v in data.values())
    run.close()
    run.close()  # idempotent
    with h5py.File(path, "r") as h5:
        ds = h5["A/x/v"]
        assert ds.maxshape == (None,) and ds.chunks is not None and np.isnan(ds.fillvalue)
        assert json.loads(h5.attrs["config"]) == {"a": [1, 2]}
        assert h5.attrs["schema"] == "tsodso-run/1"


def test_recorder_as_separate_process(tmp_path: Path) -> None:
    """``cmd`` start: everything crosses the wire as JSON, the file must look the same."""
    path = tmp_path / "cmd.h5"
    config = {
        "Input": {"python": "mosaik.basic_simulators:InputSimulator"},
        "Recorder": {"cmd": f"{sys.executable} -m simulators.recorder %(addr)s", "cwd": str(REPO)},
    }
    with mosaik.World(config, skip_greetings=True, configure_logging=False) as world:
        const = world.start("Input").Constant(constant={"gen0": 1.5, "gen1": [1, 2]})
        rec = world.start("Recorder").Recorder(path=str(path), attrs={"scenario": {"adns": 2}})
        world.connect(const, rec, "value")
        world.run(until=3, print_progress=False)
    data = read_run(str(path))
    np.testing.assert_array_equal(data["/time"], [0, 1, 2])
    np.testing.assert_array_equal(data["/Constant/0/value/gen0"], [1.5] * 3)
    np.testing.assert_array_equal(data["/Constant/0/value/gen1"], [[1.0, 2.0]] * 3)
    assert json.loads(read_attrs(str(path))["scenario"]) == {"adns": 2}
