"""EV fleet: an example plugin simulator for tsodso (see ``docs/plugins.md``).

Each ``EVFleet`` entity is a group of EVs charging at the buses of one ADN, uncontrolled: an EV charges at its
charger power from arrival until its energy need is met or it leaves. Arrival, departure and energy need are drawn
per EV and per day from normal distributions with a seed, so a run is reproducible. The entity outputs the charging
power per bus, ``load_mw = {"<bus>": MW}``, ready for a DSO agent's ``extra_load_mw`` input, plus fleet totals.

Only numpy and mosaik-api-v3, JSON-safe outputs (string keys, plain floats): it runs in-process
(``python: scenarios.examples.ev_fleet:EVFleetSim``) or as a subprocess
(``cmd: "%(python)s -m scenarios.examples.ev_fleet %(addr)s"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mosaik_api_v3
import numpy as np

MODEL = "EVFleet"
OUTPUTS = ["load_mw", "total_mw", "n_plugged", "n_charging", "energy_mwh", "unmet_mwh"]
PARAMS = ["name", "buses", "charger_kw", "energy_kwh", "arrival_h", "departure_h", "seed"]
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {MODEL: {"public": True, "params": PARAMS, "attrs": OUTPUTS}},
}


@dataclass
class Session:
    """One EV's stay: absolute hours since midnight of the run's first day."""

    bus: int
    arrival: float
    departure: float
    need_mwh: float


class Fleet:
    """The EVs of one entity; ``power(h0, h1)`` charges every plugged EV over [h0, h1) and returns MW per bus."""

    def __init__(self, buses: Mapping[int, int], charger_mw: float, energy: tuple[float, float],
                 arrival: tuple[float, float], departure: tuple[float, float], seed: int) -> None:
        self.buses, self.charger_mw = dict(buses), charger_mw
        self.energy, self.arrival, self.departure, self.seed = energy, arrival, departure, seed
        self.sessions: list[Session] = []
        self.days: set[int] = set()
        self.energy_mwh = 0.0
        self.unmet_mwh = 0.0

    def _draw_day(self, day: int) -> None:
        """Sessions arriving on ``day`` (0 = the run's first day, -1 = the evening before)."""
        rng = np.random.default_rng([self.seed, day + 1000])
        for bus, count in sorted(self.buses.items()):
            for _ in range(count):
                a = float(np.clip(rng.normal(*self.arrival), 0.0, 23.99))
                d = float(np.clip(rng.normal(*self.departure), 0.0, 23.99))
                if d <= a:
                    d += 24.0  # leaves the next day
                need = max(0.0, float(rng.normal(*self.energy))) / 1000.0
                self.sessions.append(Session(bus, 24.0 * day + a, 24.0 * day + d, need))
        self.days.add(day)

    def start(self, h0: float) -> None:
        """Sessions already under way at the first step are assumed to have charged at full power since arrival."""
        for day in range(math.floor(h0 / 24) - 1, math.floor(h0 / 24) + 1):
            self._draw_day(day)
        self.sessions = [s for s in self.sessions if s.departure > h0]  # gone before the run starts
        for s in self.sessions:
            if s.arrival < h0:
                s.need_mwh = max(0.0, s.need_mwh - self.charger_mw * (h0 - s.arrival))

    def power(self, h0: float, h1: float) -> dict[int, float]:
        for day in range(math.floor(h0 / 24), math.floor(h1 / 24) + 1):
            if day not in self.days:
                self._draw_day(day)
        dt = h1 - h0
        load = {bus: 0.0 for bus in self.buses}
        self.n_plugged = self.n_charging = 0
        for s in self.sessions:
            overlap = min(h1, s.departure) - max(h0, s.arrival)
            if overlap <= 0:
                continue
            self.n_plugged += 1
            energy = min(self.charger_mw * overlap, s.need_mwh)
            if energy > 0:
                self.n_charging += 1
                s.need_mwh -= energy
                load[s.bus] += energy / dt
                self.energy_mwh += energy
            if s.departure <= h1 and s.need_mwh > 1e-12:
                self.unmet_mwh += s.need_mwh
                s.need_mwh = 0.0
        self.sessions = [s for s in self.sessions if s.departure > h1]
        return load


class EVFleetSim(mosaik_api_v3.Simulator):
    """init params: ``step_seconds`` (its own step; any value works with the run's), ``start_hour`` (clock hour of
    mosaik time 0). Entities ``EVFleet_<name>``."""

    def __init__(self) -> None:
        super().__init__(META)
        self.fleets: dict[str, Fleet] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.step_seconds, self.start_hour = 900, 0.0

    def init(self, sid: str, time_resolution: float = 1.0, step_seconds: int = 900, start_hour: float = 0.0) -> dict:
        self.time_resolution = float(time_resolution)
        self.step_seconds, self.start_hour = int(step_seconds), float(start_hour)
        return self.meta

    def create(self, num: int, model: str, buses: Mapping[Any, int] | None = None, name: str | None = None,
               charger_kw: float = 11.0, energy_kwh: Sequence[float] = (20.0, 6.0),
               arrival_h: Sequence[float] = (18.0, 1.5), departure_h: Sequence[float] = (7.5, 1.0),
               seed: int = 0) -> list[dict]:
        if not buses:
            raise ValueError("EVFleet needs buses: {bus: number of EVs}")
        parsed = {int(b): int(n) for b, n in buses.items()}
        if any(n < 0 for n in parsed.values()):
            raise ValueError("EVFleet: the number of EVs per bus must be >= 0")
        out = []
        for i in range(num):
            label = name if num == 1 and name else f"{name or 'fleet'}{len(self.fleets)}"
            eid = f"{MODEL}_{label}"
            if eid in self.fleets:
                raise ValueError(f"{eid} exists already")
            self.fleets[eid] = Fleet(parsed, charger_kw / 1000.0, _pair(energy_kwh, "energy_kwh"),
                                     _pair(arrival_h, "arrival_h"), _pair(departure_h, "departure_h"), seed + i)
            self.fleets[eid].start(self.start_hour)
            out.append({"eid": eid, "type": model})
        return out

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        h0 = self.start_hour + time * self.time_resolution / 3600.0
        h1 = h0 + self.step_seconds / 3600.0
        for eid, fleet in self.fleets.items():
            load = fleet.power(h0, h1)
            self.outputs[eid] = {
                "load_mw": {str(b): float(mw) for b, mw in load.items()},
                "total_mw": float(sum(load.values())),
                "n_plugged": fleet.n_plugged,
                "n_charging": fleet.n_charging,
                "energy_mwh": fleet.energy_mwh,
                "unmet_mwh": fleet.unmet_mwh,
            }
        return time + max(1, round(self.step_seconds / self.time_resolution))

    def get_data(self, outputs: dict) -> dict:
        return {eid: {a: self.outputs[eid][a] for a in attrs if a in self.outputs.get(eid, {})}
                for eid, attrs in outputs.items()}


def _pair(value: Sequence[float], name: str) -> tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f"EVFleet: {name} must be [mean, standard deviation]")
    return float(value[0]), float(value[1])


def main() -> None:
    """Entry point for ``python -m scenarios.examples.ev_fleet HOST:PORT`` (a mosaik ``cmd`` simulator)."""
    mosaik_api_v3.start_simulation(EVFleetSim(), "tsodso example: EV fleet")


if __name__ == "__main__":
    main()
