"""Issue 14: every combination of solver, scheme and formulation options runs or is refused with a clear message.

The expected verdict of each combination is written down here from what the code does (``coordinator/pipeline``:
the fast strategy refuses SOS1; ``coordinator/tso_led``: neither stage has a follower KKT block or voltage cuts), not
computed by ``cli_common.combination_problem``; the parser and the check are run over the whole product.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from test_faults import run_cli

from coordinator.blocks.complementarity import STRATEGIES as COMPLEMENTARITY
from coordinator.solvers import STRATEGIES as SOLVERS
from scenarios.cli import build_parser
from scenarios.cli_common import UsageError, check_combination
from scenarios.sweep import parse_sweep

SMALL = "scenarios/small_2adn.yaml"
ROOT = Path(__file__).resolve().parent.parent
FOLLOWER = [None, "auto", "kkt"]  # None: the option is not given
COMPL = [None, *sorted(COMPLEMENTARITY)]
CUTS = [False, True]


def argv_of(follower: str | None, complementarity: str | None, cuts: bool) -> list[str]:
    argv = [] if follower is None else ["--follower", follower]
    argv += [] if complementarity is None else ["--complementarity", complementarity]
    return argv + (["--voltage-cuts"] if cuts else [])


def expected(solver: str, schemes: tuple[str, ...], follower, complementarity, cuts) -> list[str] | None:
    """The words a refusal must contain, or None when the combination is valid (the table of the docs)."""
    if "dso-led" in schemes:
        if solver == "fast" and complementarity == "sos1":
            return ["--solver fast", "--complementarity sos1", "--complementarity bigm", "scip"]
        return None
    given = argv_of(follower, complementarity, cuts)
    return None if not given else ["TSO-led", *[a for a in given if a.startswith("--")]]


def test_the_table_covers_every_solver_and_complementarity() -> None:
    """A new solver or complementarity strategy must be put into the table (and the docs) on purpose."""
    assert set(SOLVERS) == {"fast", "scip", "gurobi"}
    assert set(COMPLEMENTARITY) == {"bigm", "sos1"}


@pytest.mark.parametrize(("solver", "scheme", "follower", "complementarity", "cuts"),
                         list(itertools.product(sorted(SOLVERS), ["dso-led", "tso-led"], FOLLOWER, COMPL, CUTS)))
@pytest.mark.parametrize("command", ["solve", "run"])
def test_every_solve_and_run_combination(command: str, solver: str, scheme: str, follower, complementarity,
                                         cuts: bool) -> None:
    args = build_parser().parse_args([command, SMALL, "--solver", solver, "--scheme", scheme,
                                      *argv_of(follower, complementarity, cuts)])
    words = expected(solver, (scheme,), follower, complementarity, cuts)
    if words is None:
        check_combination(args)
        return
    with pytest.raises(UsageError) as refused:
        check_combination(args)
    for word in words:
        assert word in str(refused.value), (word, str(refused.value))


@pytest.mark.parametrize("schemes", [("dso-led",), ("tso-led",), ("dso-led", "tso-led"), ("tso-led", "dso-led")])
@pytest.mark.parametrize(("solver", "follower", "complementarity", "cuts"),
                         list(itertools.product(sorted(SOLVERS), FOLLOWER, COMPL, CUTS)))
def test_every_study_combination(schemes: tuple[str, ...], solver: str, follower, complementarity, cuts) -> None:
    """A study with both schemes applies the formulation options to its DSO-led days: they are not refused."""
    args = build_parser().parse_args(["study", SMALL, "--schemes", ",".join(schemes), "--solver", solver,
                                      *argv_of(follower, complementarity, cuts)])
    words = expected(solver, schemes, follower, complementarity, cuts)
    if words is None:
        check_combination(args, schemes=list(schemes))
        return
    with pytest.raises(UsageError) as refused:
        check_combination(args, schemes=list(schemes))
    assert all(word in str(refused.value) for word in words), str(refused.value)


def test_run_checks_the_scenarios_own_solver() -> None:
    """``run`` without --solver uses coordinator.solver (or fast): the message says where the solver came from."""
    args = build_parser().parse_args(["run", SMALL, "--complementarity", "sos1"])
    with pytest.raises(UsageError, match=r"^solver fast \(the scenario's coordinator.solver or the default\) with "
                       "--complementarity sos1"):
        check_combination(args, solver="fast")
    check_combination(args, solver="scip")


# --- end to end through the CLI --------------------------------------------------------------------------------------
def test_solve_fast_sos1_exits_2_and_writes_nothing(capsys, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, text = run_cli(capsys, "solve", ROOT / SMALL, "--periods", "2", "--solver", "fast",
                         "--complementarity", "sos1", "--no-ac-check", "--time-limit", "60", "--output", out)
    assert code == 2, text
    assert text.startswith("error: --solver fast with --complementarity sos1") and "--complementarity bigm" in text
    assert "Traceback" not in text and "solving" not in text  # refused before the case is built or solved
    assert not list(tmp_path.iterdir())  # neither r.json nor r.failed.json


@pytest.mark.parametrize("extra", [["--follower", "kkt"], ["--voltage-cuts"], ["--complementarity", "bigm"]])
def test_tso_led_refuses_formulation_options(capsys, tmp_path: Path, extra: list[str]) -> None:
    code, text = run_cli(capsys, "solve", ROOT / SMALL, "--periods", "2", "--scheme", "tso-led", *extra,
                         "--no-ac-check", "--time-limit", "60", "--output", tmp_path / "r.json")
    assert code == 2 and "TSO-led" in text and extra[0] in text, text
    assert not list(tmp_path.iterdir())


def test_run_and_study_refuse_before_solving(capsys, tmp_path: Path) -> None:
    code, text = run_cli(capsys, "run", ROOT / SMALL, "--hours", "1", "--solver", "fast", "--complementarity", "sos1",
                         "--time-limit", "60", "--no-progress", "--output", tmp_path / "r.h5")
    assert code == 2 and "--complementarity sos1" in text, text
    code, text = run_cli(capsys, "study", ROOT / SMALL, "--days", "15,", "--periods", "1", "--schemes", "tso-led",
                         "--follower", "kkt", "--time-limit", "60", "--json", tmp_path / "s.json")
    assert code == 2 and "--follower kkt" in text and "TSO-led" in text, text
    assert not list(tmp_path.iterdir())


def test_resume_refuses_formulation_options(capsys, tmp_path: Path) -> None:
    """A resumed run keeps its own formulation and scheme: giving them is refused, not ignored."""
    for extra in (["--follower", "kkt"], ["--scheme", "tso-led"], ["--voltage-cuts"]):
        code, text = run_cli(capsys, "run", "--resume", tmp_path / "missing.h5.partial", *extra)
        assert code == 2 and f"{extra[0]} cannot be given" in text, text


@pytest.mark.parametrize(("solver", "follower", "complementarity"), [("fast", "kkt", "bigm"), ("scip", "auto", "sos1")])
def test_valid_combination_still_solves(capsys, tmp_path: Path, solver: str, follower: str,
                                        complementarity: str) -> None:
    out = tmp_path / "r.json"
    code, text = run_cli(capsys, "solve", ROOT / SMALL, "--periods", "1", "--solver", solver, "--follower", follower,
                         "--complementarity", complementarity, "--no-ac-check", "--time-limit", "60", "--output", out)
    assert code == 0, text
    result = json.loads(out.read_text())
    assert result["status"] in ("optimal", "feasible")
    assert result["formulation"]["follower"] == follower
    assert result["formulation"]["complementarity"] == complementarity


# --- sweeps: every grid point is checked, with the solver it would run -----------------------------------------------
def test_sweep_names_the_refused_grid_point() -> None:
    data = {"scenario": str(ROOT / SMALL), "mode": "run", "options": {"complementarity": "sos1", "hours": 1},
            "grid": {"coordinator.solver": ["scip", "fast"]}}
    with pytest.raises(UsageError) as refused:
        parse_sweep(data)
    text = str(refused.value)
    assert "grid point 1 (coordinator.solver=fast)" in text and "--complementarity sos1" in text, text
    data["grid"] = {"coordinator.solver": ["scip", "gurobi"]}
    assert len(parse_sweep(data).runs) == 2


def test_sweep_formulation_options_need_a_dso_led_point() -> None:
    data = {"scenario": str(ROOT / SMALL), "mode": "solve", "options": {"follower": "kkt"},
            "grid": {"scheme": ["dso-led", "tso-led"]}}
    assert len(parse_sweep(data).runs) == 2  # as in a study: the option is for the DSO-led point
    data["grid"] = {"scheme": ["tso-led"], "day_of_year": [15]}
    with pytest.raises(UsageError, match=r"grid point 0 \(scheme=tso-led, day_of_year=15\).*--follower kkt"):
        parse_sweep(data)
