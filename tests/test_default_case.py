"""The shipped default case shows what it is built for (docs/case-study.md, "Why the default case is built this way").

One day-ahead solve of ``ieee30_5adn`` (DSO-led, default solver), checked by ``scenarios.check_default``, which
recomputes the TN flows with an independent DC-OPF at the plan's PCC withdrawals.
"""

from __future__ import annotations

import json

import pytest

from scenarios.check_default import MIN_BINDING_PERIODS, MIN_LMP_RATIO, check_result, main
from scenarios.cli import main as tsodso

pytestmark = pytest.mark.slow  # one 24 h solve of the full case: ~20 s of CPU


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    path = tmp_path_factory.mktemp("default") / "plan.json"
    assert tsodso(["solve", "--output", str(path)]) == 0
    return json.loads(path.read_text()), str(path)


def test_a_tn_branch_binds_and_prices_separate(result: tuple[dict, str]) -> None:
    chk = check_result(result[0])
    assert chk.dispatch_gap_mw < 1e-2  # the plan's dispatch is the TSO's best response
    assert len(chk.binding) >= MIN_BINDING_PERIODS
    assert all(chk.lmp_ratio[t] >= MIN_LMP_RATIO for t in chk.binding)
    assert {name for names in chk.binding.values() for name in names} == {"line28"}  # the derated line


def test_inter_adn_p2p_and_optimal(result: tuple[dict, str]) -> None:
    plan = result[0]
    assert plan["status"] == "optimal"
    assert plan["kpis"]["p2p_inter_mwh"] > 1.0
    sellers = {a["name"] for a in plan["adns"] if sum(a["p2p_inter_out_mw"]) > 1e-3}
    assert sellers == {"adn1"}  # the rural ADN with 1.8x its load in PV


def test_check_default_cli(result: tuple[dict, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([result[1]]) == 0
    out = capsys.readouterr().out
    assert "all criteria hold" in out and "(a)" in out and "(d) status: optimal" in out


def test_check_default_cli_bad_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{")
    assert main([str(bad)]) == 2
    assert "x.json" in capsys.readouterr().err
