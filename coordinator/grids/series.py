"""Time series of a simbench ADN from simbench's own profiles (absolute MW / MVAr per element).

``simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)`` gives 15-minute series of every load
(P, Q) and sgen (P) over the profile year 2016; they are summed per case bus and cut to a horizon with the same
calendar and DST rules as :mod:`coordinator.profiles` (hourly periods are means of four quarter hours).

Available sgen power is clipped at 0 per bus: simbench's wind profiles (``WP4``, ``WP7``, ``WP10``) hold small
negative values (down to -2e-5 MW, the turbine's own consumption at standstill), which a curtailable unit's
availability cannot be and ``Case.validate`` refuses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from coordinator.grids.adn import adn_static
from coordinator.grids.source import GridError, NetSource, in_service, raw_net


@dataclass(frozen=True)
class FeederSeries:
    """Per-period data of one ADN: load P/Q per case bus and available power per own-sgen bus."""

    load_p: np.ndarray  # (T, n_bus) MW
    load_q: np.ndarray  # (T, n_bus) MVAr
    sgen_p: np.ndarray  # (T, n_sgen_bus) MW, columns in ``ADNStatic.sgen_bus`` order


def simbench_series(code: str, day_of_year: int, step_minutes: int, periods: int, start_hour: float) -> FeederSeries:
    from coordinator.profiles import horizon_rows

    rows = horizon_rows(day_of_year, step_minutes, periods, start_hour)
    load_p, load_q, sgen_p = _year(code)
    if len(load_p) <= int(rows.max()):
        raise GridError(f"{code}: simbench profiles have {len(load_p)} rows, the horizon needs row {int(rows.max())}")
    return FeederSeries(*(a[rows].mean(axis=1) for a in (load_p, load_q, sgen_p)))


@functools.lru_cache(maxsize=4)
def _year(code: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole profile year summed per case bus (and per own-sgen bus)."""
    import simbench as sb

    src = NetSource("simbench", code)
    net, grid = raw_net(src), adn_static(src)
    absolute = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)

    def per_bus(element: str, column: str, targets: list[int]) -> np.ndarray:
        table = in_service(net[element])
        frame = absolute.get((element, column))
        out = np.zeros((len(frame) if frame is not None else 0, len(targets)))
        pos = {b: k for k, b in enumerate(targets)}
        for idx, bus in table.bus.items():
            k = pos.get(grid.case_bus.get(int(bus), -1))
            if k is None or frame is None:
                continue
            nominal = float(table.at[idx, "p_mw" if column == "p_mw" else column])
            series = frame[idx].to_numpy(dtype=float) if idx in frame.columns else np.full(len(frame), nominal)
            out[:, k] += np.nan_to_num(series, nan=nominal)
        return out

    load_p = per_bus("load", "p_mw", list(grid.buses))
    load_q = per_bus("load", "q_mvar", list(grid.buses))
    sgen_p = np.maximum(per_bus("sgen", "p_mw", list(grid.sgen_bus)), 0.0)
    if not len(sgen_p):
        sgen_p = np.zeros((len(load_p), 0))
    for a in (load_p, load_q, sgen_p):
        a.flags.writeable = False
    return load_p, load_q, sgen_p
