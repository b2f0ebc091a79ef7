"""``tsodso run --resume FILE``: continue a run that did not end (killed, interrupted) from its last complete step.

The partial HDF5 file holds everything needed: the scenario (root attribute ``scenario``, checked against the
scenario file), the run's settings (``run``) and, in its last complete row, the agents' state: each BESS's SoC, each
ADN's P2P position and the TN dispatch. The resumed world starts mosaik at time 0 again, with the case data shifted
by the completed steps, and the recorder appends to the same file with its times shifted back: the file ends with
the same datasets as an uninterrupted run.

What cannot be restored, and is therefore refused or documented (``docs/cosimulation.md``): plugin simulators' own
state (refused), forecast-noise random streams (refused), and the coordinator's previous plan (a solve failure in the
first resumed step falls back to the passive plan instead of the shifted previous plan).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from scenarios.config import STEPS, ScenarioConfig, ScenarioError
from scenarios.runner import PARTIAL_SUFFIX, config_record
from simulators.recorder import ROWS_COMPLETE, TIME


@dataclass
class ResumeState:
    """The last complete step of a partial run file."""

    path: Path  # the partial file
    first_step: int  # steps already recorded = the first step to run
    run: dict[str, Any]
    scenario: str  # JSON of the scenario config as recorded
    soc: dict[str, list[float]] = field(default_factory=dict)
    p2p_positions: dict[str, float] = field(default_factory=dict)
    last_dispatch: dict[str, Any] = field(default_factory=dict)
    previous: list[dict[str, Any]] = field(default_factory=list)  # earlier resumes

    @property
    def target(self) -> Path:
        return self.path.with_name(self.path.name.removesuffix(PARTIAL_SUFFIX))

    def history(self, plan: Any) -> list[dict[str, Any]]:
        """Root attribute ``resumed``: every resume of this file (the step it continued from)."""
        import datetime as _dt

        return [*self.previous, {"at_step": self.first_step,
                                 "utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}]

    def check_and_apply(self, cfg: ScenarioConfig, plan: Any, plugins: Sequence[Any], run_case: Any
                        ) -> tuple[Any, int]:
        """Refuse what cannot be resumed exactly; return the run's case shifted to the first step to run."""
        where = str(self.path)
        def comparable(record: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in record.items() if k != "source"}  # the same file may be spelt differently

        if comparable(json.loads(json.dumps(config_record(cfg)))) != comparable(json.loads(self.scenario)):
            raise ScenarioError(where, "scenario", cfg.source, "differs from the scenario this run was started with",
                                "the unchanged scenario file")
        if plugins:
            raise ScenarioError(where, "plugins", [p.name for p in plugins],
                                "plugin simulators keep their own state, which cannot be restored",
                                "resume runs without plugins; rerun this one")
        if plan.noise.sigma > 0:
            raise ScenarioError(where, "coordinator.forecast.noise", plan.noise.sigma,
                                "the forecast-noise random streams cannot be restored", "noise 0; rerun this one")
        if self.first_step >= plan.steps:
            raise ScenarioError(where, ROWS_COMPLETE, self.first_step, f"all {plan.steps} steps are recorded",
                                f"nothing to resume: rename it to {self.target}")
        k = self.first_step
        return shift_case(run_case, k, self.soc, plan.step_hours), k


def shift_case(case: Any, k: int, soc: dict[str, list[float]], step_hours: float) -> Any:
    """The case from period ``k`` on, with each BESS starting at ``soc`` (the SoC at the end of step ``k - 1``)."""
    if k == 0:
        return case
    adns = []
    for adn in case.adns:
        bess = adn.bess
        if adn.name in soc:
            bess = [dataclasses.replace(b, e0=float(min(max(e, b.emin), b.emax)))
                    for b, e in zip(adn.bess, soc[adn.name], strict=True)]
        adns.append(dataclasses.replace(adn, load_p=adn.load_p[k:], load_q=adn.load_q[k:],
                                        pv_avail=adn.pv_avail[k:], bess=bess))
    tn = dataclasses.replace(case.tn, load_scale=case.tn.load_scale[k:])
    return dataclasses.replace(case, adns=adns, tn=tn, periods=case.periods - k,
                               start_hour=case.start_hour + k * step_hours)


def partial_file(path: Path) -> Path:
    """The partial file to resume: ``path`` itself (``x.h5.partial``) or ``x.h5.partial`` beside ``x.h5``."""
    if path.name.endswith(PARTIAL_SUFFIX) and path.is_file():
        return path
    candidate = path.with_name(path.name + PARTIAL_SUFFIX)
    if candidate.is_file():
        return candidate
    raise ScenarioError("--resume", "", str(path), "no partial run file found",
                        f"the {PARTIAL_SUFFIX} file a run left behind (or its target name)")


def read_resume(path: Path) -> ResumeState:
    """Read the run settings and the last complete step's state of a partial file; errors name the file."""
    path = partial_file(Path(path))
    try:
        with h5py.File(path, "r", locking=False) as h5:
            attrs = dict(h5.attrs)
            n = int(attrs.get(ROWS_COMPLETE, h5[TIME].shape[0]))
            state = ResumeState(path, n, json.loads(attrs["run"]), str(attrs["scenario"]),
                                previous=json.loads(attrs.get("resumed", "[]")))
            if n > 0:
                _read_state(h5, n - 1, state)
    except (OSError, KeyError, ValueError) as exc:
        raise ScenarioError("--resume", "", str(path), f"not a readable tsodso run file ({exc})") from None
    return state


def _read_state(h5: h5py.File, row: int, state: ResumeState) -> None:
    for name, group in h5.get("DSO", {}).items():
        if "soc_mwh" in group:
            state.soc[name] = [float(x) for x in np.atleast_1d(group["soc_mwh"][row])]
        if "p2p_position_mwh" in group:
            state.p2p_positions[name] = float(group["p2p_position_mwh"][row])
    tso = h5.get("TSO/tn")
    if tso is not None and "gen_mw" in tso:
        dispatch: dict[str, Any] = {"gen_mw": {g: float(ds[row]) for g, ds in tso["gen_mw"].items()}}
        dispatch["lmp"] = {b: float(ds[row]) for b, ds in tso["lmp"].items()} if "lmp" in tso else {}
        if "generation_cost" in tso:
            dispatch["generation_cost"] = float(tso["generation_cost"][row])
        if all(np.isfinite(v) for v in dispatch["gen_mw"].values()):
            state.last_dispatch = dispatch


def settings_of(state: ResumeState, **overrides: Any) -> Any:
    """The :class:`RunSettings` the run was started with (root attribute ``run``)."""
    from scenarios.runner import RunSettings

    run = state.run
    step = {m: s for s, m in STEPS.items()}[int(run["step_minutes"])]
    dt = int(run["step_minutes"]) / 60.0
    formulation = None
    if run.get("formulation"):
        from coordinator.dso_led import Formulation

        formulation = Formulation(**run["formulation"])
    solve = run["solve"]
    return RunSettings(hours=run["steps"] * dt, step=step, horizon_hours=run["horizon"] * dt,
                       solver=solve["solver"], time_limit=solve["time_limit"], mip_gap=solve["mip_gap"],
                       output=state.target, formulation=formulation, **overrides)


def scenario_of(state: ResumeState) -> ScenarioConfig:
    """The scenario of the run: its recorded source file (checked against the recorded config later)."""
    from scenarios.config import load_scenario

    source = json.loads(state.scenario).get("source", "")
    if not source or source.startswith("<") or not Path(source).is_file():
        raise ScenarioError(str(state.path), "scenario.source", source, "the scenario file is not available",
                            "give the scenario file: tsodso run SCENARIO --resume FILE")
    return load_scenario(source)


__all__ = ["ResumeState", "partial_file", "read_resume", "scenario_of", "settings_of", "shift_case"]
