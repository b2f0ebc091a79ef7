"""Result files shared by the report, compare and docs tests (built once per session)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# every test compiles and reads its inputs itself (a cached model would make "fresh build" comparisons vacuous);
# tests/test_diskcache.py turns the cache on in a folder of its own. Set here so that subprocesses inherit it.
os.environ["TSODSO_CACHE_DIR"] = "off"


@pytest.fixture(scope="session")
def plan_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``tsodso solve``-style JSON of both schemes on a 2-ADN, 4-period toy case."""
    from coordinator.dso_led import Formulation, build_dso_led
    from coordinator.results import collect
    from coordinator.solvers import solve
    from coordinator.solvers.base import SolveOptions
    from coordinator.toy import toy_case
    from coordinator.tso_led import solve_tso_led

    case = toy_case(periods=4, n_adns=2, fmax=40.0)
    options = SolveOptions(solver="fast", mip_gap=1e-6)
    model = build_dso_led(case, Formulation(follower="kkt"))
    results = {"dso-led": collect(model, case, solve(model.model, options), 0.0),
               "tso-led": solve_tso_led(case, options)}
    out = tmp_path_factory.mktemp("plans")
    files = {}
    for scheme, result in results.items():
        files[scheme] = out / f"{scheme}.json"
        files[scheme].write_text(json.dumps(result, allow_nan=True))
    return files


@pytest.fixture(scope="session")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step ``tsodso run`` of small_2adn with a 2 h horizon (about 15 s)."""
    from scenarios.cli import main

    path = tmp_path_factory.mktemp("run") / "small.h5"
    assert main(["run", "small_2adn", "--hours", "2", "--horizon", "2", "--output", str(path), "--no-progress"]) == 0
    return path
