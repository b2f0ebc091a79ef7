"""TSO agent: the TN side of the co-simulation, one ``TSO_tn`` entity.

Same loop as the DSO agents (see ``simulators/dso.py``): the regular step offers the forecast of the TN base-load
scale for the horizon; the weak-triggered step takes the coordinator's generator dispatch and LMPs and outputs them
for the grid simulator (``gen_mw`` keyed ``gen<pandapower index>``, the grid's names) and the recorder.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import mosaik_api_v3
import numpy as np

from coordinator.case import TransmissionNetwork
from simulators.dso import ForecastNoise, agent_values

OUTPUTS = ["offer", "load_scale", "demand_mw", "gen_mw", "lmp", "generation_cost"]
META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "TSO": {
            "public": True,
            "params": [],
            "attrs": ["dispatch", *OUTPUTS],
            "trigger": ["dispatch"],
            "non-persistent": ["offer"],
        },
    },
}
EID = "TSO_tn"


def grid_gen_name(key: str) -> str:
    """Result-dict generator key (``ext_grid`` or the pandapower gen index ``"3"``) -> grid name ``gen3``;
    names already in grid form pass unchanged."""
    return f"gen{key}" if key.isdigit() else key


class TSOSim(mosaik_api_v3.Simulator):
    """init params: ``tn`` (:class:`TransmissionNetwork`, ``load_scale`` for ``steps + horizon - 1`` periods),
    ``step_seconds``, ``horizon``, ``noise`` (:class:`ForecastNoise`, applied to the load-scale forecast),
    ``last_dispatch`` (``{gen_mw, lmp, generation_cost}`` of the step before; resumed runs)."""

    def __init__(self) -> None:
        super().__init__(copy.deepcopy(META))
        self.tn: TransmissionNetwork | None = None
        self.step_seconds, self.horizon = 3600, 24
        self.noise = ForecastNoise()
        self._rng = np.random.default_rng()
        self._created = False
        self._regular_time: int | None = None
        self._offer: dict[str, Any] | None = None
        # empty until the first dispatch: persistent outputs must exist at every step (mosaik warns otherwise)
        self._outputs: dict[str, Any] = {"gen_mw": {}, "lmp": {}, "generation_cost": float("nan")}

    def init(self, sid: str, time_resolution: float = 1.0, tn: TransmissionNetwork | None = None,
             step_seconds: int = 3600, horizon: int = 24, noise: ForecastNoise | None = None,
             last_dispatch: Mapping[str, Any] | None = None) -> dict:
        if tn is None:
            raise ValueError("TSOSim needs the TN (start it in-process with tn=...)")
        if last_dispatch:  # a resumed run: the dispatch kept under a passive fallback
            self._apply(last_dispatch)
        self.tn, self.step_seconds, self.horizon = tn, int(step_seconds), int(horizon)
        self.noise = noise or ForecastNoise()
        self._rng = self.noise.rng(10_000)  # distinct from the DSO agents' streams
        return self.meta

    def create(self, num: int, model: str) -> list[dict]:
        if num != 1 or self._created:
            raise ValueError("a TSO simulator holds exactly one TSO entity")
        self._created = True
        return [{"eid": EID, "type": model}]

    def step(self, time: int, inputs: dict, max_advance: int) -> int | None:
        tn = self._tn()
        k = time // self.step_seconds
        if self._regular_time == time:  # weak-triggered: the dispatch of period k
            sources = [v for v in inputs.get(EID, {}).get("dispatch", {}).values() if v is not None]
            if len(sources) > 1:
                raise ValueError(f"{EID}: {len(sources)} dispatch sources; expected one coordinator")
            if sources:
                self._apply(sources[0])
            self._offer = None
            return None
        self._regular_time = time
        scale = np.asarray(tn.load_scale[k:k + self.horizon], dtype=float)
        if scale.shape[0] != self.horizon:
            raise ValueError(f"TN: no load scale for periods {k}..{k + self.horizon - 1}")
        if self.noise.sigma > 0:
            scale = np.clip(scale * (1.0 + self.noise.sigma * self._rng.standard_normal(scale.shape)), 0, None)
        self._offer = {"period": k, "load_scale": scale.tolist()}
        actual = float(tn.load_scale[k])
        self._outputs["load_scale"] = actual
        self._outputs["demand_mw"] = float(sum(tn.base_load.values()) * actual)
        return time + self.step_seconds

    def _apply(self, dispatch: Mapping[str, Any]) -> None:
        gen = dispatch.get("gen_mw")
        if gen:  # an empty dispatch (passive fallback) keeps the last one
            self._outputs["gen_mw"] = {grid_gen_name(str(k)): float(v) for k, v in gen.items()}
            self._outputs["lmp"] = {str(k): float(v) for k, v in (dispatch.get("lmp") or {}).items()}
            self._outputs["generation_cost"] = float(dispatch.get("generation_cost", np.nan))

    def get_data(self, outputs: dict) -> dict:
        return {eid: agent_values(attrs, self._offer, self._outputs) for eid, attrs in outputs.items()}

    def _tn(self) -> TransmissionNetwork:
        if self.tn is None:
            raise RuntimeError("TSOSim.init has not run")
        return self.tn
